//! switchyard's shared vocabulary, used by training, benchmarking and serving alike.
//!
//! This crate owns the model [`Catalog`] (prices, endpoints; validated at load), labelled-log rows and their
//! streaming reader ([`LabelledRow`], [`read_logs`]), the trained [`Router`] artifact and what it predicts,
//! and the [`Policy`] that turns predictions into a [`Decision`]. It knows nothing of HTTP, training loops
//! or the encoder's internals.

mod catalog;
mod cost;
mod explore;
mod familiarity;
mod logs;
mod online;
mod policy;
mod predictor;
mod router;
mod row;

pub use catalog::{Catalog, CatalogError, Deployment, ModelCard, UpstreamApi};
pub use cost::{estimate_input_tokens, CostSource, ModelCost, CHARS_PER_TOKEN};

/// The upper edges of the low and middle bands of the router's complexity score (in [0, 1]), as the decision
/// log's views and `logs failures` group requests: low below 1/3, mid below 2/3, high from 2/3.
pub const COMPLEXITY_BAND_EDGES: [f64; 2] = [1.0 / 3.0, 2.0 / 3.0];
pub use explore::{explore, seed_of, thompson_shares, Exploration, Rng};
pub use familiarity::{Familiarity, Placement, OOD_START};
pub use logs::{read_logs, LogError, LogReader, ReadSummary, RowError};
pub use online::{Cell, ModelSummary, OnlineSettings, Posteriors};
pub use policy::{Decision, Knob, ModelEstimate, Policy, PolicyError, TIE_EPSILON};
pub use predictor::{
    dot, logit, sigmoid, softmax, softplus, Dense, Factorized, Heads, ItemResponse, KnnMemory, Platt, Predictor,
    PredictorKind,
};
pub use router::{
    AddedProfile, CandidateMetrics, DomainScore, EncoderInfo, FileFingerprint, LengthReport, Manifest, ModelHead,
    ModelProfile, NewModel, Prediction, ProfileBasis, RosterError, RouteReport, Router, RouterError, Timing,
    TrainingInfo, Utility, FORMAT_VERSION, MANIFEST_FILE, TOP_DOMAINS, WEIGHTS_FILE,
};
pub use row::{message_text, normalize_prompt, routed_turn, Evidence, LabelledRow, Outcome, Preference, Split, Winner};
