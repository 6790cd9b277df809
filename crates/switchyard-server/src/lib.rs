//! switchyard's HTTP server.
//!
//! This crate owns the configuration file (`switchyard.toml`, validated at start-up), the axum application
//! ([`app`], built apart from `main` so tests drive it in-process): routing decisions and the
//! OpenAI-compatible gateway with its upstream calls and fallbacks, OpenAI-shaped errors, and serving with a
//! graceful shutdown; the rules and A/B experiments that steer decisions; the decision log's feedback
//! endpoint; and hot reloads of the routers. It knows nothing of training.

mod anthropic;
pub mod cache;
mod config;
pub mod dashboard;
mod embedder;
mod gateway;
mod http;
pub mod learning;
mod limits;
mod metrics;
mod replicas;
mod routing;
mod state;
pub mod ui;

pub use config::{
    ClientTimeouts, Config, ConfigError, EncoderConfig, KeyLabels, LogConfig, RouterConfig, ServerConfig,
    SessionsConfig,
};
pub use embedder::{EmbedError, EmbedTiming, Embedder, EmbedderOptions, EmbedderStats};
pub use gateway::health::{Health, SharedHealth};
pub use http::app;
pub use http::error::ApiError;
pub use http::serve::serve;
pub use learning::{Learning, LearningConfig};
pub use limits::keys::{Admission, BudgetPeriod, Caller, ClientKey, KeyConfig, KeyRing, MissingSecret};
pub use metrics::Metrics;
pub use replicas::{SharedState, SharedStats, StateConfig};
pub use routing::experiment::{ArmConfig, ExperimentConfig, StickyKey};
pub use routing::knobs::RequestKnobs;
pub use routing::query::{Conversation, Needs, Query};
pub use routing::routers::{encoder_info, load_router, ReloadReport, Routers, StartError};
pub use routing::rules::{Action, Condition, Examples, Rule, RuleConfig, RuleMatch};
pub use routing::sessions::{PinAction, SessionPin, Sessions};
pub use routing::stages::{decide, ArmChoice, Decided, Learned, Steering};
pub use routing::RouteError;
pub use state::AppState;
