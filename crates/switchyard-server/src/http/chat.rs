//! `POST /v1/chat/completions`: the OpenAI-compatible gateway. `model: "switchyard"` (or `"auto"`) routes;
//! a catalog model name goes to that model, then its `fallbacks`. Each model's deployments are tried in
//! turn ([`crate::gateway::deployments`]), models in the decision's order, until one answers: connection errors,
//! timeouts, redirects (never followed), 401, 402, 403, 404, 408, 429, 5xx and a success that is not JSON
//! are the upstream's problem and fall back; other client errors are the client's and are returned as they
//! are. What an answer is charged is [`crate::gateway::billing`]'s. Streams are passed through chunk by chunk; a failure
//! before the first event falls back, after it the client gets an SSE error event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchyard_core::ModelCard;
use switchyard_store::{Attempt, DecisionRecord};

use crate::gateway::billing::{self, StreamEnd};
use crate::http::error::ApiError;
use crate::http::tags::Tags;
use crate::limits::keys::Caller;
use crate::routing::service::resolve;

use crate::gateway::sse::SseTap;
use crate::gateway::upstream::{forward, request_tokens, Failure, Limits};
use crate::http::request::{query_of, read_body, request_id, user_prompt, KnobsIn};
use crate::state::{expected_cost, record_decision, AppState};

/// Names that ask the gateway to route.
const ROUTED_NAMES: [&str; 2] = ["switchyard", "auto"];

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

/// What a gateway request leaves behind for the decision log and the response headers.
#[derive(Default)]
struct Trace {
    /// The log record, once the request got as far as a decision (a stream takes it along to its end).
    record: Option<DecisionRecord>,
    /// What steered the request.
    tags: Tags,
    /// The model that answered, the upstream's error included.
    answered: Option<String>,
}

/// The gateway handler.
pub async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let started = Instant::now();
    let id = request_id();
    let mut trace = Trace::default();
    let mut response = match handle(&state, request, &id, &mut trace, started).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    trace.tags.put(&mut response, &id, trace.answered.as_deref());
    if let Some(mut record) = trace.record {
        record.status = response.status().as_u16();
        record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
        state.log_request(record);
    }
    response
}

async fn handle(
    state: &Arc<AppState>,
    request: Request,
    id: &str,
    trace: &mut Trace,
    started: Instant,
) -> Result<Response, ApiError> {
    let headers = request.headers().clone();
    let caller = request.extensions().get::<Caller>().cloned().unwrap_or_default();
    let health_read = request.extensions().get::<crate::replicas::HealthRead>().is_some();
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
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(other) => {
            let kind = match other {
                Value::String(_) => "a string",
                Value::Number(_) => "a number",
                Value::Array(_) => "an array",
                _ => "an object",
            };
            return Err(ApiError::invalid(
                "invalid_type",
                format!("`stream` must be true or false, not {kind}; leave it out (or false) for a whole answer"),
            ));
        }
    };
    let mut record = state.new_record(id, "chat", &prompt);
    record.messages_count = body.get("messages").and_then(Value::as_array).map_or(0, |m| m.len() as u32);
    record.stream = stream;
    record.api_key = caller.name();
    // Streams are asked for their usage, so that they are counted like whole answers; the client gets it
    // only if it asked.
    let client_wants_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    if stream && !client_wants_usage {
        match body.get_mut("stream_options").and_then(Value::as_object_mut) {
            Some(options) => {
                options.insert("include_usage".into(), Value::Bool(true));
            }
            None => body["stream_options"] = serde_json::json!({"include_usage": true}),
        }
    }

    let needs = crate::routing::query::Needs::of(&body);
    let decision_start = Instant::now();
    let mut learned = None;
    let candidates: Vec<String> = if ROUTED_NAMES.contains(&model.as_str()) {
        let query = query_of(&headers, &body, prompt.clone(), KnobsIn::Metadata, id, &caller)?;
        let decided = resolve(state, &query, health_read).await?;
        record_decision(&mut record, &decided);
        trace.tags = Tags::of(&decided);
        learned = decided.learned.clone();
        // Each ranked model brings its own fallbacks right after it.
        let mut models: Vec<String> = Vec::new();
        for name in &decided.report.ranking {
            for m in state.deployments.with_fallbacks(name) {
                if !models.contains(&m) {
                    models.push(m);
                }
            }
        }
        models
    } else if state.config.models.iter().any(|m| m.name == model) {
        if let Some(key) = caller.0.as_ref().filter(|k| !k.allows(&model)) {
            return Err(ApiError::Forbidden {
                code: "model_not_allowed",
                message: format!(
                    "key {:?} may not use {model:?}; it may use {} (allowed_models), or \"switchyard\" to route",
                    key.name,
                    key.allowed_models().unwrap_or_default().join(", ")
                ),
            });
        }
        record.decided_model = Some(model.clone());
        if let Some(shared) = &state.shared {
            shared.sync(&state.health, &state.deployments, &state.sessions, None, health_read).await;
        }
        state.deployments.with_fallbacks(&model)
    } else {
        return Err(ApiError::NotFound {
            code: "model_not_found",
            message: format!("model {model:?} is not in the catalog; use \"switchyard\" to route, or GET /v1/models"),
        });
    };
    let decision_ms = decision_start.elapsed().as_secs_f64() * 1e3;
    let record = trace.record.insert(record);

    // Models without a deployment, or whose context window is too small for the conversation plus the
    // requested output, are skipped.
    let needed = request_tokens(&body);
    let allowed: Vec<&ModelCard> = candidates
        .iter()
        .filter(|name| caller.0.as_ref().is_none_or(|k| k.allows(name)))
        .filter_map(|name| state.config.models.iter().find(|m| &m.name == name && m.has_deployment()))
        .collect();
    // Never a model that cannot take the request's tools, images or JSON schema.
    let capable: Vec<&ModelCard> = allowed.iter().copied().filter(|m| needs.missing(m).is_empty()).collect();
    if capable.is_empty() && !allowed.is_empty() {
        let lacking = needs.missing(allowed[0]).join(" and ");
        return Err(ApiError::invalid(
            "unsupported_request",
            format!(
                "this request sends {}, but {} lacks {lacking} in [[models]]; send it to a model that declares it, \
                 or to \"switchyard\" to route among those that do",
                needs.describe(),
                allowed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let reachable: Vec<&ModelCard> =
        capable.into_iter().filter(|m| m.context_window.is_none_or(|w| w as f64 >= needed)).collect();
    if reachable.is_empty() {
        return Err(ApiError::Unavailable {
            code: "no_upstream",
            message: format!(
                "none of the candidate models ({}) has a base_url or deployments in the config's [[models]] and a \
                 context window of at least {needed:.0} tokens",
                candidates.join(", ")
            ),
        });
    }
    // Deployments in cooldown are skipped, unless every candidate's are.
    let all_cooling =
        reachable.iter().all(|m| state.deployments.of(&m.name).iter().all(|d| state.health.cooling(&d.name)));
    let server = &state.config.server;
    let limits = Limits { first_byte: server.first_byte_timeout(), idle: server.idle_timeout() };
    let mut failures: Vec<String> = Vec::new();
    let mut tried = 0;
    for card in reachable {
        if tried == server.max_attempts {
            break;
        }
        // Asked only when the request reaches this model, so the weighted shares count real tries.
        for up in state.deployments.order(&card.name, &state.health, all_cooling) {
            if tried == server.max_attempts {
                break;
            }
            tried += 1;
            body["model"] = Value::String(up.upstream_model.clone());
            let attempt_start = Instant::now();
            let result = forward(&state.http, &up, &body, stream, limits).await;
            let elapsed = attempt_start.elapsed();
            let (outcome, status, error) = match &result {
                Ok(f) => ("ok", Some(f.response.status().as_u16()), None),
                Err(Failure::ClientError(r)) => {
                    ("client_error", Some(r.status().as_u16()), Some("client error".into()))
                }
                Err(Failure::Upstream(f)) => (f.outcome, f.status, Some(f.why.clone())),
            };
            state.metrics.upstream(&card.name, &up.name, outcome, elapsed.as_secs_f64());
            let latency_ms = elapsed.as_secs_f64() * 1e3;
            let deployment = Some(up.name.clone());
            record.attempts.push(Attempt { model: card.name.clone(), deployment, status, latency_ms, error });
            match result {
                Ok(forwarded) => {
                    state.health.success(&up, elapsed);
                    observe_shared(state, &up.name, elapsed);
                    record.chosen_model = Some(card.name.clone());
                    record.expected_cost_usd = expected_cost(record, &card.name);
                    // Online learning: what was predicted for the model that answered, and what a whole
                    // answer says about its quality.
                    let capped = body.get("max_tokens").or_else(|| body.get("max_completion_tokens")).is_some();
                    let answer =
                        forwarded.answer.as_ref().map(|(text, finish)| (text.as_str(), finish.as_deref(), capped));
                    state.learn(id, learned.as_ref(), &card.name, answer);
                    // A whole answer is charged here (an estimate when it reports no usage); a stream as it ends.
                    let estimated = !stream && {
                        let generated = forwarded.generated_chars;
                        let estimate = || billing::estimate(billing::input_estimate(&body), generated);
                        billing::charge_whole(state, card, &caller, record, forwarded.usage, estimate).await
                    };
                    let mut response = forwarded.response;
                    let h = response.headers_mut();
                    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
                        if let Ok(v) = HeaderValue::from_str(&v) {
                            h.insert(k, v);
                        }
                    };
                    if estimated {
                        put(h, "x-switchyard-usage", "estimated".into());
                    }
                    put(h, "x-switchyard-deployment", up.name.clone());
                    put(h, "x-switchyard-decision-ms", format!("{decision_ms:.3}"));
                    put(h, "x-switchyard-fallbacks", failures.len().to_string());
                    tracing::info!(request = id, model = %card.name, deployment = %up.name, fallbacks = failures.len(), "forwarded");
                    trace.answered = Some(card.name.clone());
                    if stream {
                        // The record goes with the stream and is logged when it ends, with the usage it reported.
                        let mut record = trace.record.take().unwrap_or_default();
                        record.status = response.status().as_u16();
                        let end = StreamEnd {
                            state: state.clone(),
                            card: card.clone(),
                            caller: caller.clone(),
                            record: Some(record),
                            tap: SseTap::new(!client_wants_usage),
                            started,
                            input_estimate: billing::input_estimate(&body),
                            learned: learned.clone(),
                            capped,
                        };
                        response = end.attach(response);
                    }
                    return Ok(response);
                }
                Err(Failure::ClientError(mut response)) => {
                    state.health.success(&up, elapsed);
                    observe_shared(state, &up.name, elapsed);
                    if let Ok(v) = HeaderValue::from_str(&up.name) {
                        response.headers_mut().insert("x-switchyard-deployment", v);
                    }
                    trace.answered = Some(card.name.clone());
                    return Ok(response);
                }
                Err(Failure::Upstream(fault)) => {
                    state.metrics.fallback();
                    let cooldown = Duration::from_millis(server.cooldown_ms);
                    let cooled_here = state.health.failure(&up, elapsed, server.cooldown_failures, cooldown);
                    // With a shared state, its count of failures in a row (every replica's) decides.
                    let cooled = match &state.shared {
                        Some(shared) => shared
                            .observe(&up.name, false, elapsed, server.cooldown_failures, cooldown)
                            .await
                            .unwrap_or(cooled_here),
                        None => cooled_here,
                    };
                    if cooled {
                        state.metrics.cooldown();
                    }
                    tracing::warn!(
                        request = id,
                        model = %card.name,
                        deployment = %up.name,
                        outcome = fault.outcome,
                        "upstream failed, falling back: {}",
                        fault.why
                    );
                    failures.push(format!("{}: {}", up.name, fault.why));
                }
            }
        }
    }
    Err(ApiError::BadGateway {
        code: "upstreams_failed",
        message: format!("every upstream failed: {}", failures.join("; ")),
    })
}

/// Records a successful call in the shared health, when there is a shared state: in the background, so the
/// answer does not wait for Redis (a failure is recorded before the next attempt, see the caller).
fn observe_shared(state: &AppState, deployment: &str, elapsed: Duration) {
    if let Some(shared) = state.shared.clone() {
        let server = &state.config.server;
        let (threshold, cooldown) = (server.cooldown_failures, Duration::from_millis(server.cooldown_ms));
        let deployment = deployment.to_string();
        tokio::spawn(async move { shared.observe(&deployment, true, elapsed, threshold, cooldown).await });
    }
}
