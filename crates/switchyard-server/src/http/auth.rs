//! Who may call what: client keys on `/v1/*` with their concurrency, rate and budget limits, the admin keys on
//! `/admin/*`, and the metrics keys on `/metrics`. Keys are compared as SHA-256 digests in constant time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::server::ServerConfig;
use crate::http::body::holding;
use crate::http::error::ApiError;
use crate::limits::keys::{bearer, digest, parse_digest, same_digest, Admission, Caller};
use crate::state::AppState;

/// The permits a request holds until its answer (a stream, possibly) has been sent: one of the server's
/// (`server.max_concurrency`) and one of its key's (`server.max_concurrency_per_key`).
type Slots = (tokio::sync::OwnedSemaphorePermit, Option<tokio::sync::OwnedSemaphorePermit>);

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
pub(super) async fn authenticate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let connection = request.extensions().get::<crate::http::connection::ConnectionHandle>().cloned();
    if state.keys.is_open() {
        let slot = match server_slot(&state) {
            Ok(slot) => slot,
            Err(busy) => return busy.into_response(),
        };
        connection.inspect(crate::http::connection::ConnectionHandle::authenticated);
        request.extensions_mut().insert(Caller(None));
        let slots: Slots = (slot, None);
        return holding(next.run(request).await, slots);
    }
    let key = match presented_key(request.headers()).map(|p| state.keys.find(p)) {
        Some(Some(key)) => key,
        Some(None) => return ApiError::unauthorized("invalid API key; use one of the server's keys").into_response(),
        None => {
            let missing = "missing API key; send `Authorization: Bearer <key>` (or `x-api-key: <key>`, as Anthropic's \
                           clients do)";
            return ApiError::unauthorized(missing).into_response();
        }
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
        "/v1/chat/completions" | "/v1/messages" => Some(Admission::Spend),
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
    holding(response, slots)
}

/// Answers a request its key's limits refuse: counted, logged (a chat or a decision, as a record without
/// its prompt) and tagged with a request id.
fn refuse(state: &AppState, caller: &Caller, endpoint: &str, refused: ApiError) -> Response {
    let name = caller.name().unwrap_or_default();
    state.metrics.key_refusal(&name, refused.code());
    tracing::info!(key = name, "refused: {refused}");
    let kind = match endpoint {
        "/v1/chat/completions" => Some("chat"),
        "/v1/messages" => Some("messages"),
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
pub(super) async fn authenticate_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(off) = admin_off(&state.config.server) {
        return off.into_response();
    }
    if is_admin(&state.config.server, request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthorized("admin endpoints need `Authorization: Bearer <one of server.admin_keys>`")
            .into_response()
    }
}

/// `GET /admin/stats` takes an admin key, or the dashboard's session cookie (`POST /ui/login`).
pub(super) async fn authenticate_dashboard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let server = &state.config.server;
    if let Some(off) = admin_off(server) {
        return off.into_response();
    }
    if is_admin(server, request.headers()) || has_session(&state, request.headers()) {
        next.run(request).await
    } else {
        ApiError::unauthorized(
            "the dashboard's data needs `Authorization: Bearer <one of server.admin_keys>` or a session from /ui",
        )
        .into_response()
    }
}

/// The refusal when no admin key is configured.
pub(super) fn admin_off(server: &ServerConfig) -> Option<ApiError> {
    (server.admin_keys.is_empty() && server.admin_keys_sha256.is_empty()).then(|| ApiError::Forbidden {
        code: "admin_disabled",
        message: "admin endpoints and the dashboard are off: set server.admin_keys (or send SIGHUP to reload)".into(),
    })
}

/// The digests of the admin keys.
pub(super) fn admin_digests(server: &ServerConfig) -> Vec<[u8; 32]> {
    let plain = server.admin_keys.iter().map(|k| digest(k.trim()));
    let hashed = server.admin_keys_sha256.iter().filter_map(|h| parse_digest(h));
    plain.chain(hashed).collect()
}

/// Whether the request carries a live dashboard session.
pub(super) fn has_session(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    crate::dashboard::session::from_headers(headers).is_some_and(|token| {
        let digests = admin_digests(&state.config.server);
        crate::dashboard::session::valid(&state.session_secret, token, &digests, switchyard_store::now_ms())
    })
}

/// The client key a request presents: `Authorization: Bearer <key>` (OpenAI's clients), else `x-api-key`
/// (Anthropic's).
fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    bearer(headers.get(AUTHORIZATION))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim).filter(|k| !k.is_empty()))
}

/// Whether the request's bearer key is one of the admin keys: digests compared in constant time, every key
/// compared whatever the first ones say.
fn is_admin(server: &ServerConfig, headers: &axum::http::HeaderMap) -> bool {
    let Some(presented) = bearer(headers.get(AUTHORIZATION)) else { return false };
    admin_digest(server, presented).is_some()
}

/// The digest of the admin key `presented`, if it is one: every key compared in constant time, whatever the
/// first ones say.
pub(super) fn admin_digest(server: &ServerConfig, presented: &str) -> Option<[u8; 32]> {
    let presented = digest(presented.trim());
    let found = admin_digests(server).iter().fold(false, |found, d| same_digest(d, &presented) | found);
    found.then_some(presented)
}

/// Whether the request may read `/metrics`: anyone when `server.metrics_keys` is empty, else a metrics key
/// or an admin key.
pub(super) fn may_read_metrics(server: &ServerConfig, headers: &axum::http::HeaderMap) -> bool {
    if server.metrics_keys.is_empty() {
        return true;
    }
    let Some(presented) = bearer(headers.get(AUTHORIZATION)).map(digest) else {
        return false;
    };
    let metrics = server.metrics_keys.iter().map(|k| digest(k.trim()));
    metrics.fold(false, |found, d| same_digest(&d, &presented) | found) || is_admin(server, headers)
}
