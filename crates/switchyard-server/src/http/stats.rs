//! `GET /admin/stats`: the decision log's view of a range (`docs/admin-stats.md`), with the prices, keys and
//! deployments this server knows.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchyard_store::{Budget, Limit, PromptLogging};

use crate::dashboard::params::StatsParams;
use crate::dashboard::{DashboardError, Live, LiveDeployment, LiveKey};
use crate::http::error::ApiError;
use crate::state::AppState;

/// `GET /admin/stats`.
pub(super) async fn stats(
    State(state): State<Arc<AppState>>,
    params: Result<Query<StatsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::Invalid {
        code: "invalid_query",
        message: format!("{}; the parameters are from, to, bucket, reference and recent", e.body_text()),
    })?;
    let view = view(&state, &params).await.map_err(|e| match e {
        DashboardError::BadQuery(message) => ApiError::Invalid { code: "invalid_query", message },
        DashboardError::LogOff => ApiError::NotFound { code: "log_disabled", message: e.to_string() },
        DashboardError::Log(_) => ApiError::Unavailable { code: "log_unavailable", message: e.to_string() },
    })?;
    let mut response = Json(view).into_response();
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The view `params` asks for, read on a blocking thread, with this server's live state filled in.
async fn view(state: &Arc<AppState>, params: &StatsParams) -> Result<switchyard_store::Dashboard, DashboardError> {
    if !state.config.log.enabled {
        return Err(DashboardError::LogOff);
    }
    let now = switchyard_store::now_ms();
    let query = params.query(now).map_err(DashboardError::BadQuery)?;
    let prices = crate::dashboard::prices(&state.routers().main, &state.config.models);
    crate::dashboard::check_reference(&prices, params.reference.as_deref(), "`reference`")
        .map_err(DashboardError::BadQuery)?;
    let (worker, reference) = (state.clone(), params.reference.clone());
    let mut view = tokio::task::spawn_blocking(move || {
        worker.dashboard.read(&worker.config.log.location(), &query, &prices, reference)
    })
    .await
    .map_err(|e| DashboardError::Log(format!("the reading thread failed: {e}")))??;
    live(state, now).apply(&mut view);
    Ok(view)
}

/// Keys' limits and use, deployments' cooldowns, and whether prompts may be shown, as of now.
fn live(state: &AppState, now_ms: i64) -> Live {
    let now = std::time::Instant::now();
    let keys = state
        .keys
        .all()
        .iter()
        .map(|key| {
            let (requests, tokens) = key.minute_use(now);
            LiveKey {
                name: key.name.clone(),
                budget: key.budget().map(|usd| Budget {
                    usd,
                    period: key.budget_period().word().to_string(),
                    spent_usd: key.spend_at(now_ms),
                }),
                rpm: key.rpm().map(|limit| Limit { limit: u64::from(limit), used: requests }),
                tpm: key.tpm().map(|limit| Limit { limit, used: tokens }),
            }
        })
        .collect();
    let deployments = state
        .deployments
        .all()
        .map(|up| LiveDeployment {
            name: up.name.clone(),
            model: up.model.clone(),
            cooling: state.health.cooling(&up.name),
        })
        .collect();
    Live { keys, deployments, prompts_full: state.config.log.prompts == PromptLogging::Full }
}
