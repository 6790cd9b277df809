//! The operator's endpoints: `GET /metrics` (Prometheus text), `GET /readyz`, `GET /v1/models` and
//! `POST /admin/reload`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::limits::keys::Caller;
use crate::routing::routers::ReloadReport;
use crate::state::AppState;

/// `POST /admin/reload`: loads the routers again from disk and swaps them in without dropping requests.
pub(super) async fn reload(State(state): State<Arc<AppState>>) -> Result<Json<ReloadReport>, ApiError> {
    let worker = state.clone();
    let result = tokio::task::spawn_blocking(move || worker.reload())
        .await
        .map_err(|e| ApiError::internal(format!("reload task failed: {e}")))?;
    match result {
        Ok(report) => {
            tracing::info!(generation = report.generation, "router reloaded");
            Ok(Json(report))
        }
        Err(e) => Err(ApiError::Unprocessable {
            code: "reload_failed",
            message: format!("{e}; the routers in service are unchanged"),
        }),
    }
}

/// `GET /metrics`: every counter and gauge, behind `server.metrics_keys` when set.
pub(super) async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if !super::auth::may_read_metrics(&state.config.server, &headers) {
        return ApiError::unauthorized("/metrics needs `Authorization: Bearer <one of server.metrics_keys>`")
            .into_response();
    }
    let mut text = state.metrics.render();
    state.health.render(&mut text);
    if let Some(log) = &state.log {
        crate::metrics::render_log(&mut text, log.stats());
    }
    crate::metrics::render_embedder(&mut text, &state.embedder);
    if let Some(cache) = &state.cache {
        cache.render(&mut text);
    }
    if let Some(shared) = &state.shared {
        shared.render(&mut text);
    }
    crate::metrics::render_budgets(&mut text, &state.keys, state.config.server.metrics_key_labels);
    state.connections.render(&mut text);
    if let Some(learning) = &state.learning {
        learning.render(&mut text);
    }
    crate::metrics::render_supervision(&mut text, &state.embedder, state.log.as_ref());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Ready when the inference thread and the decision log's writer are running; 503 naming what is down
/// (between a panic and its restart) otherwise.
pub(super) async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let routers = state.routers();
    let mut down = Vec::new();
    if !state.embedder.is_up() {
        down.push("inference");
    }
    if state.log.as_ref().is_some_and(|l| !l.is_up()) {
        down.push("log_writer");
    }
    if !down.is_empty() {
        let body = json!({"status": "unavailable", "down": down, "router_generation": routers.generation});
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    Json(json!({
        "status": "ready",
        "models": routers.main.manifest.models.len(),
        "encoder": state.encoder.id(),
        "router_generation": routers.generation,
        "router_fingerprint": routers.main.manifest.training.fingerprint,
    }))
    .into_response()
}

/// `GET /v1/models`: "switchyard" (routing), and the router's models the caller's key may use.
pub(super) async fn models(State(state): State<Arc<AppState>>, caller: Option<axum::Extension<Caller>>) -> Json<Value> {
    let key = caller.and_then(|c| c.0 .0);
    let mut data = vec![json!({"id": "switchyard", "object": "model", "owned_by": "switchyard"})];
    data.extend(
        state
            .routers()
            .main
            .manifest
            .models
            .iter()
            .filter(|m| key.as_ref().is_none_or(|k| k.allows(&m.model)))
            .map(|m| json!({"id": m.model, "object": "model", "owned_by": "switchyard-catalog"})),
    );
    Json(json!({"object": "list", "data": data}))
}
