//! switchyard's HTTP server.
//!
//! This crate owns the configuration file (`switchyard.toml`, validated at start-up), the axum application
//! ([`app`], built apart from `main` so tests drive it in-process): routing decisions and the
//! OpenAI-compatible gateway with its upstream calls and fallbacks, OpenAI-shaped errors, and serving with a
//! graceful shutdown. It knows nothing of training.

mod app;
mod config;
mod error;
mod gateway;
mod health;
mod metrics;

use std::sync::Arc;

pub use app::{app, AppState};
pub use config::{Config, ConfigError, EncoderConfig, RouterConfig, ServerConfig};
pub use error::ApiError;
pub use health::Health;
pub use metrics::Metrics;

/// Serves `state` on the configured address until Ctrl-C or SIGTERM, then drains in-flight requests.
pub async fn serve(state: Arc<AppState>) -> std::io::Result<()> {
    let addr = state.config.listen_addr().map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let models = state.router.manifest.models.len();
    tracing::info!("switchyard listening on http://{} ({models} models)", listener.local_addr()?);
    axum::serve(listener, app(state)).with_graceful_shutdown(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
