//! The HTTP edge: which handler answers which path, the layers around them (authentication, the concurrency
//! limits, request metrics), connections and serving. Handlers read like the HTTP contract: they parse the
//! request, call the routing core ([`crate::routing`]) or the gateway ([`crate::gateway`]), and map what comes
//! back to a response; [`ApiError`] is the one error type that becomes an HTTP status, here and nowhere else.
//! The application is built apart from `main` ([`app`]) so tests call it in-process; the shared state is in
//! [`crate::state`].

mod auth;
pub(crate) mod body;
mod cached;
pub(crate) mod chat;
pub(crate) mod connection;
pub(crate) mod error;
pub(crate) mod feedback;
mod messages;
mod ops;
pub(crate) mod request;
pub(crate) mod route;
pub(crate) mod serve;
mod stats;
pub(crate) mod tags;
mod ui;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Json;
use serde_json::json;

use crate::http::error::ApiError;
use crate::limits::keys::Caller;
use crate::state::AppState;

/// Builds the application: `POST /v1/route`, `POST /v1/chat/completions`, `GET /v1/models`,
/// `POST /v1/feedback`, `POST /v1/messages` and `POST /v1/messages/count_tokens` (behind the client keys),
/// `POST /admin/reload` and `GET /admin/stats` (behind the admin keys), the dashboard (`/ui`, its assets,
/// `POST /ui/login` and `/ui/logout`), `GET /healthz`, `GET /readyz`, `GET /metrics`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let v1 = client_layers(
        axum::Router::new()
            .route("/v1/route", post(crate::http::route::route))
            .route("/v1/chat/completions", post(crate::http::chat::chat_completions))
            .route("/v1/models", get(ops::models))
            .route("/v1/feedback", post(crate::http::feedback::feedback)),
        &state,
    );
    // Anthropic's Messages API: the same layers, and every error in Anthropic's shape.
    let anthropic = client_layers(
        axum::Router::new()
            .route("/v1/messages", post(messages::messages))
            .route("/v1/messages/count_tokens", post(messages::count_tokens)),
        &state,
    )
    .route_layer(middleware::from_fn(messages::anthropic_errors));
    let admin = axum::Router::new()
        .route("/admin/reload", post(ops::reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate_admin));
    let dashboard = axum::Router::new()
        .route("/admin/stats", get(stats::stats))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate_dashboard));
    axum::Router::new()
        .merge(v1)
        .merge(anthropic)
        .merge(admin)
        .merge(dashboard)
        .route("/ui", get(ui::index))
        .route("/ui/app.js", get(ui::app_js))
        .route("/ui/charts.js", get(ui::charts_js))
        .route("/ui/app.css", get(ui::app_css))
        .route("/ui/login", post(ui::login))
        .route("/ui/logout", post(ui::logout))
        .route("/metrics", get(ops::metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ops::ready))
        .fallback(|| async {
            ApiError::NotFound { code: "not_found", message: "no such endpoint; see the README for the API".into() }
        })
        .with_state(state)
}

/// The layers around every client route; outermost last: metrics, the body's time limit, then authentication
/// with the concurrency limits and the key's other limits.
fn client_layers(routes: axum::Router<Arc<AppState>>, state: &Arc<AppState>) -> axum::Router<Arc<AppState>> {
    routes
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .route_layer(middleware::map_request_with_state(state.clone(), time_body))
        .route_layer(middleware::from_fn_with_state(state.clone(), record))
}

/// Starts the clock on the request's body: it must arrive within `server.body_timeout_ms`.
async fn time_body(State(state): State<Arc<AppState>>, request: Request) -> Request {
    let limit = state.connections.limits().body;
    request.map(|body| crate::http::body::timed_body(body, limit))
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
