//! The HTTP application: routes, handlers and the authentication layer, built apart from `main` so tests
//! call it in-process.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_core::{estimate_input_tokens, message_text, Knob, Policy, RouteReport, Router, Timing};
use switchyard_encoder::{Embedding, Encoder};

use crate::config::Config;
use crate::error::ApiError;
use crate::gateway::RequestKnobs;

/// What every handler shares.
pub struct AppState {
    /// The trained router.
    pub router: Router,
    /// The prompt encoder.
    pub encoder: Arc<dyn Encoder>,
    /// The validated configuration.
    pub config: Config,
    /// The HTTP client for upstream calls (connection pools are shared).
    pub http: reqwest::Client,
    /// Permits for requests in flight on `/v1/*` (`server.max_concurrency`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Upstream health: consecutive failures and cooldowns, by model.
    pub health: crate::health::Health,
    /// Counters and latency histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
}

impl AppState {
    /// State for a router, an encoder and a validated config.
    pub fn new(router: Router, encoder: Arc<dyn Encoder>, config: Config) -> Self {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrency));
        Self {
            router,
            encoder,
            config,
            http: reqwest::Client::new(),
            in_flight,
            health: crate::health::Health::default(),
            metrics: crate::metrics::Metrics::default(),
        }
    }
}

/// Builds the application: `POST /v1/route`, `POST /v1/chat/completions`, `GET /v1/models` (behind the
/// client keys), `GET /healthz`, `GET /readyz`, `GET /metrics`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let v1 = axum::Router::new()
        .route("/v1/route", post(route))
        .route("/v1/chat/completions", post(crate::gateway::chat_completions))
        .route("/v1/models", get(models))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_concurrency))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route_layer(middleware::from_fn_with_state(state.clone(), record));
    axum::Router::new()
        .merge(v1)
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .fallback(|| async {
            ApiError {
                status: axum::http::StatusCode::NOT_FOUND,
                kind: "invalid_request_error",
                code: "not_found",
                message: "no such endpoint; see the README for the API".into(),
            }
        })
        .with_state(state)
}

/// Refuses a request with 429 when `server.max_concurrency` requests are already in flight. The permit is
/// held until the response body (a stream, possibly) has been sent.
async fn limit_concurrency(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
        return ApiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "too_many_requests",
            message: format!(
                "the server is handling {} requests already (server.max_concurrency); retry shortly",
                state.config.server.max_concurrency
            ),
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

async fn authenticate(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let keys = &state.config.server.client_keys;
    if keys.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(key) if keys.iter().any(|k| k == key) => next.run(request).await,
        Some(_) => ApiError::unauthorized("invalid API key; use one of the server's client_keys").into_response(),
        None => ApiError::unauthorized("missing API key; send `Authorization: Bearer <key>`").into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    state.health.render(&mut text);
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({"status": "ready", "models": state.router.manifest.models.len(), "encoder": state.encoder.id()}))
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let mut data = vec![json!({"id": "switchyard", "object": "model", "owned_by": "switchyard"})];
    data.extend(
        state
            .router
            .manifest
            .models
            .iter()
            .map(|m| json!({"id": m.model, "object": "model", "owned_by": "switchyard-catalog"})),
    );
    Json(json!({"object": "list", "data": data}))
}

/// The body of `POST /v1/route`: an OpenAI chat request or `{"prompt": ...}`, plus optional knobs.
#[derive(Debug, Deserialize)]
struct RouteRequest {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    min_quality: Option<f64>,
    willingness_to_pay: Option<f64>,
    allowed_models: Option<Vec<String>>,
    #[serde(default)]
    denied_models: Vec<String>,
    max_latency_ms: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    #[serde(default)]
    content: Value,
}

impl RouteRequest {
    fn prompt(&self) -> Result<String, ApiError> {
        match (&self.prompt, &self.messages) {
            (Some(p), _) if p.trim().is_empty() => Err(ApiError::invalid("empty_prompt", "the prompt is empty")),
            (Some(p), _) => Ok(p.clone()),
            (None, Some(messages)) => user_prompt(messages.iter().map(|m| (m.role.as_str(), &m.content))),
            (None, None) => Err(ApiError::invalid(
                "missing_prompt",
                "send `prompt` (a string) or `messages` (OpenAI chat messages)",
            )),
        }
    }

    fn policy(&self, default: &Policy, state: &AppState) -> Result<Policy, ApiError> {
        if self.min_quality.is_some() && self.willingness_to_pay.is_some() {
            return Err(ApiError::invalid("conflicting_knobs", "set `min_quality` or `willingness_to_pay`, not both"));
        }
        RequestKnobs {
            knob: self.min_quality.map(Knob::MinQuality).or(self.willingness_to_pay.map(Knob::WillingnessToPay)),
            allowed: self.allowed_models.clone(),
            denied: self.denied_models.clone(),
            max_latency_ms: self.max_latency_ms,
        }
        .apply(default, state)
    }
}

/// The text of the last message with role "user" (`no_user_message` if none, `empty_prompt` if it is empty).
pub(crate) fn user_prompt<'a>(
    mut messages: impl DoubleEndedIterator<Item = (&'a str, &'a Value)>,
) -> Result<String, ApiError> {
    let content = messages
        .rfind(|(role, _)| *role == "user")
        .map(|(_, content)| content)
        .ok_or_else(|| ApiError::invalid("no_user_message", "`messages` has no message with role \"user\""))?;
    let text = message_text(content);
    if text.trim().is_empty() {
        return Err(ApiError::invalid("empty_prompt", "the last user message is empty"));
    }
    Ok(text)
}

/// Reads the whole body, refusing more than the configured limit with a 413.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(format!("request body is larger than {limit} bytes (server.max_body_bytes)")))
}

async fn route(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let bytes = read_body(request.into_body(), state.config.server.max_body_bytes).await?;
    let request: RouteRequest = serde_json::from_slice(&bytes).map_err(|e| {
        let code = if e.is_data() { "invalid_type" } else { "invalid_json" };
        ApiError::invalid(code, format!("request body is not a valid route request: {e}"))
    })?;
    let prompt = request.prompt()?;
    let limit = state.config.server.max_prompt_chars;
    if prompt.chars().count() > limit {
        return Err(ApiError::too_large(format!("prompt is longer than {limit} characters (server.max_prompt_chars)")));
    }
    let policy = request.policy(&state.router.manifest.default_policy, &state)?;

    let start = Instant::now();
    let embedding = embed_prompt(&state, &prompt).await?;
    let encoded = Instant::now();
    let (prediction, decision) = state
        .router
        .route(&embedding.vector, estimate_input_tokens(&prompt), &policy)
        .map_err(|e| ApiError::invalid("invalid_policy", e.to_string()))?;
    state.metrics.decision(start.elapsed().as_secs_f64());
    let timing =
        Timing { encode: (encoded - start).as_secs_f64() * 1e3, decide: encoded.elapsed().as_secs_f64() * 1e3 };
    let report = RouteReport::new(prediction, decision, policy, embedding.tokens, embedding.truncated, timing);
    let model = report.model.clone();
    let mut response = Json(report).into_response();
    if let Ok(v) = HeaderValue::from_str(&model) {
        response.headers_mut().insert("x-switchyard-model", v);
    }
    Ok(response)
}

/// Embeds one prompt off the async threads, recording the time in the metrics.
pub(crate) async fn embed_prompt(state: &AppState, prompt: &str) -> Result<Embedding, ApiError> {
    let start = Instant::now();
    let encoder = state.encoder.clone();
    let text = prompt.to_string();
    let (embeddings, timing) = tokio::task::spawn_blocking(move || encoder.embed_batch_timed(&[text.as_str()]))
        .await
        .map_err(|e| ApiError::internal(format!("encoder task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("encoder failed: {e}")))?;
    let embedding = embeddings.into_iter().next().ok_or_else(|| ApiError::internal("encoder returned no embedding"))?;
    state.metrics.encode_parts(timing.tokenize.map(|d| d.as_secs_f64()), timing.inference.as_secs_f64());
    state.metrics.encode(start.elapsed().as_secs_f64());
    Ok(embedding)
}

/// Counts every answered `/v1/*` request by endpoint, chosen model (`-` when none) and status.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = request.uri().path().to_string();
    let response = next.run(request).await;
    let model = response.headers().get("x-switchyard-model").and_then(|v| v.to_str().ok()).unwrap_or("-");
    state.metrics.request(&endpoint, model, response.status().as_u16());
    response
}
