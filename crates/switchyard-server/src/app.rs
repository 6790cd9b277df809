//! The HTTP application: routes, handlers and the authentication layer, built apart from `main` so tests
//! call it in-process.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use switchyard_core::{message_text, Knob, RouteReport, Router};
use switchyard_encoder::{Embedding, Encoder};
use switchyard_store::{DecisionRecord, Estimate, LogWriter, WriterOptions};

use crate::config::Config;
use crate::decide::{decide, Decided, DecisionInput, Tags};
use crate::embedder::{EmbedError, Embedder, EmbedderOptions};
use crate::error::ApiError;
use crate::knobs::RequestKnobs;
use crate::routing::{load_router, ReloadReport, Routers, StartError};
use crate::rules::Rule;

/// What every handler shares.
pub struct AppState {
    /// The prompt encoder.
    pub encoder: Arc<dyn Encoder>,
    /// The validated configuration.
    pub config: Config,
    /// The HTTP client for upstream calls (connection pools are shared).
    pub http: reqwest::Client,
    /// Permits for requests in flight on `/v1/*` (`server.max_concurrency`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Upstream health: consecutive failures, cooldowns and latency, by deployment.
    pub health: crate::health::Health,
    /// Each catalog model's deployments and fallbacks.
    pub deployments: crate::deployments::Deployments,
    /// Counters and latency histograms for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The config's rules, compiled, in order.
    pub rules: Vec<Rule>,
    /// The decision log's writer (absent when `log.enabled = false`).
    pub log: Option<LogWriter>,
    /// The prompt embedder: cache, queue and inference thread.
    pub embedder: Embedder,
    routers: RwLock<Arc<Routers>>,
    reloading: Mutex<()>,
}

impl AppState {
    /// State for a loaded router, an encoder and a validated config: the config's default knob goes on the
    /// router, experiment arms' routers are loaded, rules compiled, and the decision log opened.
    pub fn new(router: Router, encoder: Arc<dyn Encoder>, config: Config) -> Result<Self, StartError> {
        let routers = Routers::assemble(router, &config, encoder.as_ref(), 1)?;
        let rules = config.rules.iter().filter_map(|r| Rule::new(r.clone(), &config.tiers).ok()).collect::<Vec<_>>();
        let log = if config.log.enabled {
            Some(LogWriter::start(&WriterOptions {
                path: config.log.path.clone(),
                queue_capacity: config.log.queue_capacity,
                retention_days: (config.log.retention_days > 0).then_some(config.log.retention_days),
            })?)
        } else {
            None
        };
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.server.max_concurrency));
        let embedder = Embedder::start(
            encoder.clone(),
            EmbedderOptions {
                batch_tokens: config.encoder.batch_tokens,
                queue_capacity: config.encoder.queue_capacity,
                cache_entries: config.encoder.cache_entries,
                batch_wait: std::time::Duration::from_secs_f64(config.encoder.batch_wait_ms / 1e3),
            },
        )
        .map_err(StartError::Thread)?;
        for line in config.deprecations() {
            tracing::warn!("{line}");
        }
        let deployments = crate::deployments::Deployments::new(&config.models);
        for up in deployments.all() {
            if let Some(var) = up.api_key_env.as_deref().filter(|v| std::env::var_os(v).is_none()) {
                tracing::warn!(
                    model = up.model,
                    deployment = up.name,
                    "api_key_env {var} is not set: calls to this deployment go without a key"
                );
            }
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.server.connect_timeout())
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        Ok(Self {
            embedder,
            encoder,
            deployments,
            config,
            http,
            in_flight,
            health: crate::health::Health::default(),
            metrics: crate::metrics::Metrics::default(),
            rules,
            log,
            routers: RwLock::new(Arc::new(routers)),
            reloading: Mutex::new(()),
        })
    }

    /// The routers in service now (a request keeps the set it started with).
    pub fn routers(&self) -> Arc<Routers> {
        match self.routers.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the routers again from the configured folders and swaps them in. Requests in flight finish on
    /// the routers they started with; on any error the routers in service stay.
    pub fn reload(&self) -> Result<ReloadReport, StartError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let generation = self.routers().generation + 1;
        let main = load_router(&self.config.router.path, "router.path", self.encoder.as_ref())?;
        let routers = Arc::new(Routers::assemble(main, &self.config, self.encoder.as_ref(), generation)?);
        let report = routers.report();
        match self.routers.write() {
            Ok(mut r) => *r = routers,
            Err(poisoned) => *poisoned.into_inner() = routers,
        }
        self.metrics.reload(generation);
        Ok(report)
    }

    /// Hands a finished request to the decision log (dropped and counted if its queue is full).
    pub fn log_request(&self, record: DecisionRecord) {
        if let (Some(experiment), Some(arm)) = (&record.experiment, &record.arm) {
            self.metrics.arm(experiment, arm, record.cost_usd.or(record.expected_cost_usd), record.fell_back());
        }
        if let Some(log) = &self.log {
            log.log(record);
        }
    }

    /// A log record for a request, with the prompt as `log.prompts` says.
    pub(crate) fn new_record(&self, request_id: &str, endpoint: &str, prompt: &str) -> DecisionRecord {
        let mut record = DecisionRecord {
            request_id: request_id.to_string(),
            ts_ms: switchyard_store::now_ms(),
            endpoint: endpoint.to_string(),
            messages_count: 1,
            ..DecisionRecord::default()
        };
        record.set_prompt(prompt, self.config.log.prompts);
        record
    }
}

/// Fills a log record from a decision.
pub(crate) fn record_decision(record: &mut DecisionRecord, decided: &Decided) {
    let report = &decided.report;
    record.user.clone_from(&decided.user);
    record.experiment = decided.arm.as_ref().map(|a| a.experiment.clone());
    record.arm = decided.arm.as_ref().map(|a| a.arm.clone());
    record.rule.clone_from(&decided.rule);
    record.policy = serde_json::to_value(&report.policy).ok();
    record.estimates = report
        .models
        .iter()
        .map(|m| Estimate { model: m.model.clone(), p: m.p_success, cost_usd: m.expected_cost_usd })
        .collect();
    record.decided_model = Some(report.model.clone());
    record.decision_ms = Some(report.timing_ms.encode + report.timing_ms.decide);
}

/// The decision's expected cost for `model`.
pub(crate) fn expected_cost(record: &DecisionRecord, model: &str) -> Option<f64> {
    record.estimates.iter().find(|e| e.model == model).map(|e| e.cost_usd)
}

/// Builds the application: `POST /v1/route`, `POST /v1/chat/completions`, `GET /v1/models`,
/// `POST /v1/feedback` (behind the client keys), `POST /admin/reload` (behind the admin keys), `GET /healthz`,
/// `GET /readyz`, `GET /metrics`.
pub fn app(state: Arc<AppState>) -> axum::Router {
    let v1 = axum::Router::new()
        .route("/v1/route", post(route))
        .route("/v1/chat/completions", post(crate::gateway::chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/feedback", post(crate::feedback::feedback))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit_concurrency))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
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

/// Admin endpoints need one of `server.admin_keys`; without any configured they are off.
async fn authenticate_admin(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let keys = &state.config.server.admin_keys;
    if keys.is_empty() {
        return ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            kind: "permission_error",
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
        Err(e) => Err(ApiError {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            kind: "invalid_request_error",
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
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Json<Value> {
    let routers = state.routers();
    Json(json!({
        "status": "ready",
        "models": routers.main.manifest.models.len(),
        "encoder": state.encoder.id(),
        "router_generation": routers.generation,
        "router_fingerprint": routers.main.manifest.training.fingerprint,
    }))
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

    fn knobs(&self) -> Result<RequestKnobs, ApiError> {
        if self.min_quality.is_some() && self.willingness_to_pay.is_some() {
            return Err(ApiError::invalid("conflicting_knobs", "set `min_quality` or `willingness_to_pay`, not both"));
        }
        Ok(RequestKnobs {
            knob: Knob::from_options(self.min_quality, self.willingness_to_pay),
            allowed: self.allowed_models.clone(),
            denied: self.denied_models.clone(),
            max_latency_ms: self.max_latency_ms,
        })
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

/// The answer of `POST /v1/route`: the decision, its request id (for feedback), and what steered it.
#[derive(serde::Serialize)]
struct RouteResponse {
    request_id: String,
    #[serde(flatten)]
    report: RouteReport,
    rule: Option<String>,
    experiment: Option<String>,
    arm: Option<String>,
}

async fn route(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request_id = crate::gateway::request_id();
    let (parts, body) = request.into_parts();
    let bytes = read_body(body, state.config.server.max_body_bytes).await?;
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("invalid_json", format!("request body is not valid JSON: {e}")))?;
    let request = RouteRequest::deserialize(&body)
        .map_err(|e| ApiError::invalid("invalid_type", format!("request body is not a valid route request: {e}")))?;
    let prompt = request.prompt()?;
    let limit = state.config.server.max_prompt_chars;
    if prompt.chars().count() > limit {
        return Err(ApiError::too_large(format!("prompt is longer than {limit} characters (server.max_prompt_chars)")));
    }
    let input = DecisionInput {
        prompt: &prompt,
        headers: &parts.headers,
        body: &body,
        knobs: request.knobs()?,
        request_id: &request_id,
    };
    let decided = decide(&state, input).await?;

    let mut record = state.new_record(&request_id, "route", &prompt);
    record.messages_count = request.messages.as_ref().map_or(1, |m| m.len() as u32);
    record_decision(&mut record, &decided);
    record.chosen_model = Some(decided.report.model.clone());
    record.expected_cost_usd = expected_cost(&record, &decided.report.model);
    record.status = 200;
    record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    state.log_request(record);

    let tags = Tags::of(&decided);
    let model = decided.report.model.clone();
    let answer = RouteResponse {
        request_id: request_id.clone(),
        report: decided.report,
        rule: tags.rule.clone(),
        experiment: tags.experiment.clone(),
        arm: tags.arm.clone(),
    };
    let mut response = Json(answer).into_response();
    tags.put(response.headers_mut(), &request_id, Some(&model));
    Ok(response)
}

/// Embeds one prompt through the embedder, recording the time in the metrics.
pub(crate) async fn embed_prompt(state: &AppState, prompt: &str) -> Result<Embedding, ApiError> {
    let start = Instant::now();
    let (embedding, timing) = state.embedder.embed(prompt).await.map_err(|e| match e {
        EmbedError::Busy(_) => ApiError {
            status: axum::http::StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "encoder_busy",
            message: e.to_string(),
        },
        EmbedError::Failed(_) => ApiError::internal(e.to_string()),
    })?;
    if !timing.cached {
        state.metrics.encode_parts(Some(timing.tokenize.as_secs_f64()), timing.inference.as_secs_f64());
        state.metrics.encode_queue(timing.queue.as_secs_f64());
    }
    state.metrics.encode(start.elapsed().as_secs_f64());
    Ok(embedding)
}

/// Counts every answered `/v1/*` request by endpoint, chosen model (`-` when none), status and experiment arm.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = request.uri().path().to_string();
    let response = next.run(request).await;
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-");
    let arm = format!("{}/{}", header("x-switchyard-experiment"), header("x-switchyard-arm"));
    let arm = if arm == "-/-" { "-" } else { arm.as_str() };
    state.metrics.request(&endpoint, header("x-switchyard-model"), response.status().as_u16(), arm);
    response
}
