//! `POST /v1/chat/completions`: the OpenAI-compatible gateway. `model: "switchyard"` (or `"auto"`) routes;
//! a catalog model name passes straight through. The request goes to each candidate's `base_url` in the
//! decision's order until one answers: connection errors, timeouts, 408, 429 and 5xx fall back to the next
//! candidate; other client errors are the client's and are returned as they are. Streams are passed through
//! chunk by chunk; a failure before the first byte falls back, after it the client gets an SSE error event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};
use switchyard_core::{estimate_input_tokens, Knob, ModelCard, Policy};

use crate::app::{embed_prompt, read_body, user_prompt, AppState};
use crate::error::ApiError;

/// Names that ask the gateway to route.
const ROUTED_NAMES: [&str; 2] = ["switchyard", "auto"];

/// Monotonic part of request ids.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

fn request_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("sy-{nanos:x}-{:x}", REQUESTS.fetch_add(1, Ordering::Relaxed))
}

/// Per-request policy settings (from a `/v1/route` body, or a gateway request's metadata and headers).
pub(crate) struct RequestKnobs {
    /// The knob, if the request sets one.
    pub knob: Option<Knob>,
    /// Only these models, if given.
    pub allowed: Option<Vec<String>>,
    /// Never these models.
    pub denied: Vec<String>,
    /// Skip models whose recent average upstream latency is above this (milliseconds).
    pub max_latency_ms: Option<f64>,
}

impl RequestKnobs {
    /// `default` with these settings on top, validated. Models too slow right now for `max_latency_ms` are
    /// denied, unless that would leave none.
    pub fn apply(self, default: &Policy, state: &AppState) -> Result<Policy, ApiError> {
        let mut policy = default.clone();
        if let Some(k) = self.knob {
            k.validate().map_err(|e| ApiError::invalid("invalid_knob", e.to_string()))?;
            policy.knob = k;
        }
        if self.allowed.is_some() {
            policy.allowed = self.allowed;
        }
        if !self.denied.is_empty() {
            policy.denied = self.denied;
        }
        if let Some(max) = self.max_latency_ms {
            if !max.is_finite() || max <= 0.0 {
                return Err(ApiError::invalid("invalid_knob", format!("max_latency_ms must be > 0, got {max}")));
            }
            let known = &state.router.manifest.models;
            let slow: Vec<String> =
                state.health.slower_than(max).into_iter().filter(|m| known.iter().any(|k| &k.model == m)).collect();
            let remaining = known
                .iter()
                .filter(|m| !policy.denied.contains(&m.model) && !slow.contains(&m.model))
                .filter(|m| policy.allowed.as_ref().is_none_or(|a| a.contains(&m.model)))
                .count();
            if remaining > 0 {
                policy.denied.extend(slow);
            }
        }
        Ok(policy)
    }
}

/// Knobs from the body's `metadata` or from `x-switchyard-*` headers (headers win).
fn knobs(body: &Value, headers: &HeaderMap) -> Result<RequestKnobs, ApiError> {
    let meta = body.get("metadata").cloned().unwrap_or(Value::Null);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let number = |key: &str, header_name: &str| -> Result<Option<f64>, ApiError> {
        match header(header_name) {
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid("invalid_knob", format!("{header_name} must be a number"))),
            None => match meta.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                // OpenAI metadata values are strings.
                Some(Value::String(s)) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ApiError::invalid("invalid_knob", format!("metadata.{key} must be a number"))),
                Some(_) => Err(ApiError::invalid("invalid_knob", format!("metadata.{key} must be a number"))),
            },
        }
    };
    let list = |key: &str, header_name: &str| -> Option<Vec<String>> {
        let split = |s: &str| s.split(',').map(|m| m.trim().to_string()).filter(|m| !m.is_empty()).collect();
        header(header_name).map(|h| split(&h)).or_else(|| match meta.get(key) {
            Some(Value::String(s)) => Some(split(s)),
            Some(Value::Array(a)) => Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()),
            _ => None,
        })
    };
    let q = number("min_quality", "x-switchyard-min-quality")?;
    let l = number("willingness_to_pay", "x-switchyard-willingness-to-pay")?;
    if q.is_some() && l.is_some() {
        return Err(ApiError::invalid("conflicting_knobs", "set min_quality or willingness_to_pay, not both"));
    }
    let max_latency_ms = number("max_latency_ms", "x-switchyard-max-latency-ms")?;
    Ok(RequestKnobs {
        max_latency_ms,
        knob: q.map(Knob::MinQuality).or(l.map(Knob::WillingnessToPay)),
        allowed: list("allowed_models", "x-switchyard-allowed-models"),
        denied: list("denied_models", "x-switchyard-denied-models").unwrap_or_default(),
    })
}

fn last_user_text(body: &Value) -> Result<String, ApiError> {
    let messages = body.get("messages").and_then(Value::as_array).ok_or_else(|| {
        ApiError::invalid("missing_messages", "`messages` must be a non-empty array of chat messages")
    })?;
    if messages.is_empty() {
        return Err(ApiError::invalid("missing_messages", "`messages` must be a non-empty array of chat messages"));
    }
    const NULL: Value = Value::Null;
    user_prompt(
        messages
            .iter()
            .map(|m| (m.get("role").and_then(Value::as_str).unwrap_or(""), m.get("content").unwrap_or(&NULL))),
    )
}

/// The gateway handler.
pub async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let id = request_id();
    let mut response = match handle(&state, request, &id).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-switchyard-request-id", v);
    }
    response
}

async fn handle(state: &Arc<AppState>, request: Request, id: &str) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let bytes = read_body(request.into_body(), state.config.server.max_body_bytes).await?;
    let mut body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("invalid_json", format!("request body is not valid JSON: {e}")))?;
    if !body.is_object() {
        return Err(ApiError::invalid("invalid_type", "the request body must be a JSON object"));
    }
    let model = body.get("model").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
        ApiError::invalid("missing_model", "`model` must be a string: \"switchyard\" to route, or a catalog model")
    })?;
    let prompt = last_user_text(&body)?;
    let limit = state.config.server.max_prompt_chars;
    if prompt.chars().count() > limit {
        return Err(ApiError::too_large(format!("prompt is longer than {limit} characters (server.max_prompt_chars)")));
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);

    let decision_start = Instant::now();
    let candidates: Vec<String> = if ROUTED_NAMES.contains(&model.as_str()) {
        let policy = knobs(&body, &headers)?.apply(&state.router.manifest.default_policy, state)?;
        let embedding = embed_prompt(state, &prompt).await?;
        let (_, decision) = state
            .router
            .route(&embedding.vector, estimate_input_tokens(&prompt), &policy)
            .map_err(|e| ApiError::invalid("invalid_policy", e.to_string()))?;
        decision.ranking
    } else if state.config.models.iter().any(|m| m.name == model) {
        vec![model.clone()]
    } else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code: "model_not_found",
            message: format!("model {model:?} is not in the catalog; use \"switchyard\" to route, or GET /v1/models"),
        });
    };
    let decision_ms = decision_start.elapsed().as_secs_f64() * 1e3;
    if ROUTED_NAMES.contains(&model.as_str()) {
        state.metrics.decision(decision_ms / 1e3);
    }

    // Models whose context window is too small for the conversation plus the requested output are skipped.
    let needed = request_tokens(&body);
    let reachable: Vec<&ModelCard> = candidates
        .iter()
        .filter_map(|name| state.config.models.iter().find(|m| &m.name == name && m.base_url.is_some()))
        .filter(|m| m.context_window.is_none_or(|w| w as f64 >= needed))
        .collect();
    // Upstreams in cooldown are skipped, unless that leaves none.
    let healthy: Vec<&ModelCard> = reachable.iter().copied().filter(|m| !state.health.cooling(&m.name)).collect();
    let upstreams: Vec<&ModelCard> = if healthy.is_empty() { reachable } else { healthy }
        .into_iter()
        .take(state.config.server.max_attempts)
        .collect();
    if upstreams.is_empty() {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "no_upstream",
            message: format!(
                "none of the candidate models ({}) has a base_url in the config's [[models]] and a context window \
                 of at least {needed:.0} tokens",
                candidates.join(", ")
            ),
        });
    }
    let mut failures: Vec<String> = Vec::new();
    for card in upstreams {
        body["model"] = Value::String(card.name.clone());
        let attempt_start = Instant::now();
        let result = forward(state, card, &body, stream).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Attempt::ClientError(_)) => "client_error",
            Err(Attempt::Retryable(_)) => "failed",
        };
        let elapsed = attempt_start.elapsed();
        state.metrics.upstream(&card.name, outcome, elapsed.as_secs_f64());
        match result {
            Ok(mut response) => {
                state.health.success(&card.name, elapsed);
                let h = response.headers_mut();
                let put = |h: &mut HeaderMap, k: &'static str, v: String| {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        h.insert(k, v);
                    }
                };
                put(h, "x-switchyard-model", card.name.clone());
                put(h, "x-switchyard-decision-ms", format!("{decision_ms:.3}"));
                put(h, "x-switchyard-fallbacks", failures.len().to_string());
                tracing::info!(request = id, model = %card.name, fallbacks = failures.len(), "forwarded");
                return Ok(response);
            }
            Err(Attempt::ClientError(mut response)) => {
                if let Ok(v) = HeaderValue::from_str(&card.name) {
                    response.headers_mut().insert("x-switchyard-model", v);
                }
                return Ok(response);
            }
            Err(Attempt::Retryable(why)) => {
                let server = &state.config.server;
                state.metrics.fallback();
                let cooled = state.health.failure(
                    &card.name,
                    elapsed,
                    server.cooldown_failures,
                    Duration::from_millis(server.cooldown_ms),
                );
                if cooled {
                    state.metrics.cooldown();
                }
                tracing::warn!(request = id, model = %card.name, "upstream failed, falling back: {why}");
                failures.push(format!("{}: {why}", card.name));
            }
        }
    }
    Err(ApiError {
        status: StatusCode::BAD_GATEWAY,
        kind: "server_error",
        code: "upstreams_failed",
        message: format!("every upstream failed: {}", failures.join("; ")),
    })
}

/// How one upstream call ended, when it did not succeed.
enum Attempt {
    /// Worth trying the next candidate.
    Retryable(String),
    /// The upstream rejected the request itself: pass its answer on.
    ClientError(Response),
}

async fn forward(state: &AppState, card: &ModelCard, body: &Value, stream: bool) -> Result<Response, Attempt> {
    let base = card.base_url.as_deref().unwrap_or_default().trim_end_matches('/');
    let mut request = state
        .http
        .post(format!("{base}/chat/completions"))
        .timeout(Duration::from_millis(state.config.server.upstream_timeout_ms))
        .json(body);
    if let Some(var) = &card.api_key_env {
        if let Ok(key) = std::env::var(var) {
            request = request.bearer_auth(key);
        }
    }
    let upstream = request.send().await.map_err(|e| Attempt::Retryable(describe(&e)))?;
    let status = upstream.status();
    if status.is_server_error() || matches!(status.as_u16(), 402 | 408 | 429) {
        return Err(Attempt::Retryable(format!("HTTP {}", status.as_u16())));
    }
    let content_type = upstream.headers().get("content-type").cloned();
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    if !status.is_success() {
        let bytes = upstream.bytes().await.map_err(|e| Attempt::Retryable(describe(&e)))?;
        // A 400 that says the account's budget or quota is spent is the upstream's problem, not the request's.
        if status.as_u16() == 400 && budget_exhausted(&bytes) {
            return Err(Attempt::Retryable("HTTP 400 (budget or quota exhausted)".into()));
        }
        return Err(Attempt::ClientError(builder.body(Body::from(bytes)).unwrap_or_default()));
    }
    if stream {
        let mut chunks = upstream.bytes_stream();
        // Wait for the first chunk: a failure before it falls back to the next model.
        let first = match chunks.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Err(Attempt::Retryable(describe(&e))),
            None => return Err(Attempt::Retryable("empty stream".into())),
        };
        let rest = chunks.map(|item| {
            Ok::<_, std::convert::Infallible>(match item {
                Ok(bytes) => bytes,
                Err(e) => {
                    let event = json!({"error": {"message": format!("upstream stream failed: {}", describe(&e)), "type": "server_error", "code": "upstream_stream_error"}});
                    axum::body::Bytes::from(format!("data: {event}\n\n"))
                }
            })
        });
        let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(first) }).chain(rest);
        return Ok(builder.body(Body::from_stream(body)).unwrap_or_default());
    }
    let bytes = upstream.bytes().await.map_err(|e| Attempt::Retryable(describe(&e)))?;
    record_usage(state, card, &bytes);
    Ok(builder.body(Body::from(bytes)).unwrap_or_default())
}

/// Counts the tokens an upstream reports in `usage`, and their list-price cost.
fn record_usage(state: &AppState, card: &ModelCard, body: &[u8]) {
    let Ok(reply) = serde_json::from_slice::<Value>(body) else { return };
    let count = |key: &str| reply.get("usage").and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
    let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
    if input + output > 0 {
        let cost = card.cost_usd(input as f64, output as f64);
        state.metrics.tokens(&card.name, input, output, cost);
    }
}

/// Tokens a request needs: its messages' text (characters / 4) plus the requested output tokens.
fn request_tokens(body: &Value) -> f64 {
    let text: usize = body
        .get("messages")
        .and_then(Value::as_array)
        .map(|messages| messages.iter().map(|m| m.get("content").map_or(0, |c| c.to_string().len())).sum())
        .unwrap_or(0);
    let output =
        ["max_completion_tokens", "max_tokens"].iter().find_map(|k| body.get(*k).and_then(Value::as_u64)).unwrap_or(0);
    (text as f64 / switchyard_core::CHARS_PER_TOKEN).ceil() + output as f64
}

/// Whether an upstream error body says the account ran out of budget, quota or credit.
fn budget_exhausted(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    ["insufficient_quota", "quota", "budget", "credit", "billing"].iter().any(|k| text.contains(k))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}
