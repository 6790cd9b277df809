//! The HTTP application: which handler answers which path, and the layers around them (authentication,
//! the concurrency limit, request metrics), built apart from `main` so tests call it in-process. The
//! shared state is in [`crate::state`]; the big handlers have their own modules.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::keys::{Admission, Caller};
use crate::routing::ReloadReport;
use crate::state::AppState;

/// Builds the application: `POST /v1/route`, `POST /v1/chat/completions`, `GET /v1/models`,
/// `POST /v1/feedback` (behind the client keys), `POST /admin/reload` (behind the admin keys), `GET /healthz`,
/// `GET /readyz`, `GET /metrics`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let v1 = axum::Router::new()
        .route("/v1/route", post(crate::route::route))
        .route("/v1/chat/completions", post(crate::gateway::chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/feedback", post(crate::feedback::feedback))
        // Outermost last: metrics, then the concurrency limit (so a request refused for it never takes a key's
        // rate-limit slot), then authentication and the key's limits.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_concurrency))
        .route_layer(middleware::from_fn_with_state(state.clone(), record));
    let admin = axum::Router::new()
        .route("/admin/reload", post(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate_admin));
    axum::Router::new()
        .merge(v1)
        .merge(admin)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .fallback(|| async {
            ApiError::NotFound { code: "not_found", message: "no such endpoint; see the README for the API".into() }
        })
        .with_state(state)
}

/// Refuses a request with 429 when `server.max_concurrency` requests are already in flight. The permit is
/// held until the response body (a stream, possibly) has been sent.
async fn limit_concurrency(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError::RateLimited {
            code: "too_many_requests",
            message: format!(
                "the server is handling {} requests already (server.max_concurrency); retry shortly",
                state.config.server.max_concurrency
            ),
            retry_after_s: Some(1),
        }
        .into_response();
    };
    let (parts, body) = next.run(request).await.into_parts();
    let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// Finds the caller's key (when keys are configured) and holds it to its limits: `/v1/chat/completions` to
/// its budget, rpm and tpm, `/v1/route` to its rpm. The key goes to the handler and, on the response, to the
/// metrics layer as a [`Caller`] extension. A refusal is logged like any request.
async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    if state.keys.is_open() {
        request.extensions_mut().insert(Caller(None));
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let key = match presented.map(|p| state.keys.find(p)) {
        Some(Some(key)) => key,
        Some(None) => return ApiError::unauthorized("invalid API key; use one of the server's keys").into_response(),
        None => return ApiError::unauthorized("missing API key; send `Authorization: Bearer <key>`").into_response(),
    };
    let endpoint = request.uri().path();
    let admission = match endpoint {
        "/v1/chat/completions" => Some(Admission::Spend),
        "/v1/route" => Some(Admission::Decide),
        _ => None,
    };
    let caller = Caller(Some(key.clone()));
    if let Some(admission) = admission {
        let now_ms = switchyard_store::now_ms();
        // The shared limits decide while Redis answers; this replica's own count otherwise.
        let shared = match &state.shared {
            Some(shared) => shared.admit(&key, admission, now_ms, &state.health, &state.deployments).await,
            None => None,
        };
        if let Some(Ok(true)) = shared {
            request.extensions_mut().insert(crate::shared::HealthRead);
        }
        let verdict = shared.map_or_else(|| key.admit(admission, std::time::Instant::now(), now_ms), |v| v.map(drop));
        if let Err(refused) = verdict {
            state.metrics.key_refusal(&key.name, refused.code());
            tracing::info!(key = key.name, "refused: {refused}");
            let id = crate::gateway::request_id();
            let kind = if admission == Admission::Spend { "chat" } else { "route" };
            let mut record = state.new_record(&id, kind, "");
            record.prompt = None;
            record.api_key = Some(key.name.clone());
            record.status = refused.status().as_u16();
            state.log_request(record);
            let mut response = refused.into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
                response.headers_mut().insert("x-switchyard-request-id", v);
            }
            response.extensions_mut().insert(caller);
            return response;
        }
    }
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    response
}

/// Admin endpoints need one of `server.admin_keys`; without any configured they are off.
async fn authenticate_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let keys = &state.config.server.admin_keys;
    if keys.is_empty() {
        return ApiError::Forbidden {
            code: "admin_disabled",
            message: "admin endpoints are off: set server.admin_keys (or send SIGHUP to reload)".into(),
        }
        .into_response();
    }
    let presented =
        request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| keys.iter().any(|k| k == p.trim())) {
        next.run(request).await
    } else {
        ApiError::unauthorized("admin endpoints need `Authorization: Bearer <one of server.admin_keys>`")
            .into_response()
    }
}

/// `POST /admin/reload`: loads the routers again from disk and swaps them in without dropping requests.
async fn reload(State(state): State<Arc<AppState>>) -> Result<Json<ReloadReport>, ApiError> {
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

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    state.health.render(&mut text);
    if let Some(log) = &state.log {
        crate::metrics::render_log(&mut text, log.stats());
    }
    crate::metrics::render_embedder(&mut text, &state.embedder);
    if let Some(shared) = &state.shared {
        shared.render(&mut text);
    }
    crate::metrics::render_budgets(&mut text, &state.keys);
    if let Some(learning) = &state.learning {
        learning.render(&mut text);
    }
    crate::metrics::render_supervision(&mut text, &state.embedder, state.log.as_ref());
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// Ready when the inference thread and the decision log's writer are running; 503 naming what is down
/// (between a panic and its restart) otherwise.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
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

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut data = vec![json!({"id": "switchyard", "object": "model", "owned_by": "switchyard"})];
    data.extend(
        state
            .routers()
            .main
            .manifest
            .models
            .iter()
            .map(|m| json!({"id": m.model, "object": "model", "owned_by": "switchyard-catalog"})),
    );
    Json(json!({"object": "list", "data": data}))
}

/// Counts every answered `/v1/*` request by endpoint, chosen model (`-` when none), status and experiment arm,
/// as the handler's [`Served`](crate::decide::Served) extension tells them.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = request.uri().path().to_string();
    let response = next.run(request).await;
    let served = response.extensions().get::<crate::decide::Served>().cloned().unwrap_or_default();
    let arm = match (&served.experiment, &served.arm) {
        (Some(e), Some(a)) => format!("{e}/{a}"),
        _ => "-".to_string(),
    };
    let status = response.status().as_u16();
    state.metrics.request(&endpoint, served.model.as_deref().unwrap_or("-"), status, &arm);
    if let Some(Caller(Some(key))) = response.extensions().get::<Caller>() {
        state.metrics.key_request(&key.name, status);
    }
    response
}
