//! The HTTP edge: which handler answers which path, the layers around them (authentication, the concurrency
//! limits, request metrics), connections and serving. Handlers read like the HTTP contract: they parse the
//! request, call the routing core ([`crate::routing`]) or the gateway ([`crate::gateway`]), and map what comes
//! back to a response; [`ApiError`] is the one error type that becomes an HTTP status, here and nowhere else.
//! The application is built apart from `main` ([`app`]) so tests call it in-process; the shared state is in
//! [`crate::state`].

pub(crate) mod body;
pub(crate) mod chat;
pub(crate) mod connection;
pub(crate) mod error;
pub(crate) mod feedback;
pub(crate) mod request;
pub(crate) mod route;
pub(crate) mod serve;
pub(crate) mod tags;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::limits::keys::{Admission, Caller};
use crate::routing::routers::ReloadReport;
use crate::state::AppState;

/// Builds the application: `POST /v1/route`, `POST /v1/chat/completions`, `GET /v1/models`,
/// `POST /v1/feedback` (behind the client keys), `POST /admin/reload` (behind the admin keys), `GET /healthz`,
/// `GET /readyz`, `GET /metrics`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let v1 = axum::Router::new()
        .route("/v1/route", post(crate::http::route::route))
        .route("/v1/chat/completions", post(crate::http::chat::chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/feedback", post(crate::http::feedback::feedback))
        // Outermost last: metrics, the body's time limit, then authentication with the concurrency limits and
        // the key's other limits.
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::map_request_with_state(state.clone(), time_body))
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

/// Starts the clock on the request's body: it must arrive within `server.body_timeout_ms`.
async fn time_body(State(state): State<Arc<AppState>>, request: Request) -> Request {
    let limit = state.connections.limits().body;
    request.map(|body| crate::http::body::timed_body(body, limit))
}

/// The permits a request holds until its answer (a stream, possibly) has been sent: one of the server's
/// (`server.max_concurrency`) and one of its key's (`server.max_concurrency_per_key`).
type Slots = (tokio::sync::OwnedSemaphorePermit, Option<tokio::sync::OwnedSemaphorePermit>);

/// Keeps `slots` until the response's body has been sent or dropped.
fn hold(response: Response, slots: Slots) -> Response {
    let (parts, body) = response.into_parts();
    let body = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _held = &slots;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

/// A slot of the server's pool, or the 429 that says it is full.
fn server_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.in_flight.clone().try_acquire_owned().map_err(|_| ApiError::RateLimited {
        code: "too_many_requests",
        message: format!(
            "the server is handling {} requests already (server.max_concurrency); retry shortly",
            state.config.server.max_concurrency
        ),
        retry_after_s: Some(1),
    })
}

/// Finds the caller's key (when keys are configured) and holds it to its limits: its share of the requests
/// in flight, then the server's pool, then `/v1/chat/completions` to its budget, rpm and tpm, `/v1/route`
/// and `/v1/feedback` to its rpm. A request refused for concurrency never takes an rpm slot. The key goes to
/// the handler and, on the response, to the metrics layer as a [`Caller`] extension. A refused decision is
/// logged like any request.
async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let connection = request.extensions().get::<crate::http::connection::ConnectionHandle>().cloned();
    if state.keys.is_open() {
        let slot = match server_slot(&state) {
            Ok(slot) => slot,
            Err(busy) => return busy.into_response(),
        };
        connection.inspect(crate::http::connection::ConnectionHandle::authenticated);
        request.extensions_mut().insert(Caller(None));
        return hold(next.run(request).await, (slot, None));
    }
    let key = match crate::limits::keys::bearer(request.headers().get(AUTHORIZATION)).map(|p| state.keys.find(p)) {
        Some(Some(key)) => key,
        Some(None) => return ApiError::unauthorized("invalid API key; use one of the server's keys").into_response(),
        None => return ApiError::unauthorized("missing API key; send `Authorization: Bearer <key>`").into_response(),
    };
    let caller = Caller(Some(key.clone()));
    let endpoint = request.uri().path().to_string();
    let Some(key_slot) = key.try_slot() else {
        let limit = state.config.server.per_key_concurrency(state.keys.all().len());
        let busy = ApiError::RateLimited {
            code: "concurrency_limit_exceeded",
            message: format!(
                "key {:?} has {limit} requests in flight already (server.max_concurrency_per_key); wait for one \
                 to finish",
                key.name
            ),
            retry_after_s: Some(1),
        };
        return refuse(&state, &caller, &endpoint, busy);
    };
    let slots = match server_slot(&state) {
        Ok(slot) => (slot, Some(key_slot)),
        Err(busy) => return refuse(&state, &caller, &endpoint, busy),
    };
    let admission = match endpoint.as_str() {
        "/v1/chat/completions" => Some(Admission::Spend),
        "/v1/route" | "/v1/feedback" => Some(Admission::Decide),
        _ => None,
    };
    if let Some(admission) = admission {
        let now_ms = switchyard_store::now_ms();
        // The shared limits decide while Redis answers; this replica's own count otherwise.
        let shared = match &state.shared {
            Some(shared) => {
                let health_key = crate::gateway::replicated::health_key(shared);
                shared.admit(&key, admission, now_ms, &health_key).await
            }
            None => None,
        };
        let verdict = match shared {
            Some(admitted) => {
                if let Some(read) = &admitted.health {
                    crate::gateway::replicated::apply_health(read, &state.health, &state.deployments);
                    if admitted.verdict.is_ok() {
                        request.extensions_mut().insert(crate::replicas::HealthRead);
                    }
                }
                admitted.verdict
            }
            None => key.admit(admission, std::time::Instant::now(), now_ms),
        };
        if let Err(refused) = verdict {
            return refuse(&state, &caller, &endpoint, refused);
        }
    }
    // Only an admitted request takes its connection out of the unauthenticated pool: a key refused for its
    // limits cannot keep connections open past their eviction.
    connection.inspect(crate::http::connection::ConnectionHandle::authenticated);
    request.extensions_mut().insert(caller.clone());
    let mut response = next.run(request).await;
    response.extensions_mut().insert(caller);
    hold(response, slots)
}

/// Answers a request its key's limits refuse: counted, logged (a chat or a decision, as a record without
/// its prompt) and tagged with a request id.
fn refuse(state: &AppState, caller: &Caller, endpoint: &str, refused: ApiError) -> Response {
    let name = caller.name().unwrap_or_default();
    state.metrics.key_refusal(&name, refused.code());
    tracing::info!(key = name, "refused: {refused}");
    let kind = match endpoint {
        "/v1/chat/completions" => Some("chat"),
        "/v1/route" => Some("route"),
        _ => None,
    };
    let id = crate::http::request::request_id();
    if let Some(kind) = kind {
        let mut record = state.new_record(&id, kind, "");
        record.prompt = None;
        record.api_key = Some(name);
        record.status = refused.status().as_u16();
        state.log_request(record);
    }
    let mut response = refused.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-switchyard-request-id", v);
    }
    response.extensions_mut().insert(caller.clone());
    response
}

/// Admin endpoints need one of `server.admin_keys` or `server.admin_keys_sha256`; without any configured
/// they are off.
async fn authenticate_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let server = &state.config.server;
    if server.admin_keys.is_empty() && server.admin_keys_sha256.is_empty() {
        return ApiError::Forbidden {
            code: "admin_disabled",
            message: "admin endpoints are off: set server.admin_keys (or send SIGHUP to reload)".into(),
        }
        .into_response();
    }
    if is_admin(server, request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthorized("admin endpoints need `Authorization: Bearer <one of server.admin_keys>`")
            .into_response()
    }
}

/// Whether the request's bearer key is one of the admin keys: digests compared in constant time, every key
/// compared whatever the first ones say.
fn is_admin(server: &crate::config::ServerConfig, headers: &axum::http::HeaderMap) -> bool {
    let Some(presented) = crate::limits::keys::bearer(headers.get(AUTHORIZATION)) else { return false };
    let presented = crate::limits::keys::digest(presented);
    let plain = server.admin_keys.iter().map(|k| crate::limits::keys::digest(k.trim()));
    let hashed = server.admin_keys_sha256.iter().filter_map(|h| crate::limits::keys::parse_digest(h));
    plain.chain(hashed).fold(false, |found, d| crate::limits::keys::same_digest(&d, &presented) | found)
}

/// Whether the request may read `/metrics`: anyone when `server.metrics_keys` is empty, else a metrics key
/// or an admin key.
fn may_read_metrics(server: &crate::config::ServerConfig, headers: &axum::http::HeaderMap) -> bool {
    if server.metrics_keys.is_empty() {
        return true;
    }
    let Some(presented) = crate::limits::keys::bearer(headers.get(AUTHORIZATION)).map(crate::limits::keys::digest)
    else {
        return false;
    };
    let metrics = server.metrics_keys.iter().map(|k| crate::limits::keys::digest(k.trim()));
    metrics.fold(false, |found, d| crate::limits::keys::same_digest(&d, &presented) | found)
        || is_admin(server, headers)
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

async fn metrics(State(state): State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Response {
    if !may_read_metrics(&state.config.server, &headers) {
        return ApiError::unauthorized("/metrics needs `Authorization: Bearer <one of server.metrics_keys>`")
            .into_response();
    }
    let mut text = state.metrics.render();
    state.health.render(&mut text);
    if let Some(log) = &state.log {
        crate::metrics::render_log(&mut text, log.stats());
    }
    crate::metrics::render_embedder(&mut text, &state.embedder);
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

/// `GET /v1/models`: "switchyard" (routing), and the router's models the caller's key may use.
async fn models(State(state): State<Arc<AppState>>, caller: Option<axum::Extension<Caller>>) -> Json<Value> {
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

/// Counts every answered `/v1/*` request by endpoint, chosen model (`-` when none), status and experiment arm,
/// as the handler's [`Served`](crate::http::tags::Served) extension tells them.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = request.uri().path().to_string();
    let response = next.run(request).await;
    let served = response.extensions().get::<crate::http::tags::Served>().cloned().unwrap_or_default();
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
