//! `POST /v1/chat/completions`: the OpenAI-compatible gateway. `model: "switchyard"` (or `"auto"`) routes;
//! a catalog model name goes to that model, then its `fallbacks`. The candidates ([`crate::gateway::candidates`])
//! are tried in order by the attempt loop ([`crate::gateway::attempts`]); what an answer is charged is
//! [`crate::gateway::billing`]'s. Streams are passed through chunk by chunk; a failure before the first event
//! falls back, after it the client gets an SSE error event.
//!
//! The handler reads like the contract: parse the request, decide its candidates, try them, deliver the answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use switchyard_core::ModelCard;
use switchyard_store::{DecisionRecord, ResponseLogging};

use crate::cache::{ResponseCache, Ticket};
use crate::gateway::attempts::{Gateway, Reply};
use crate::gateway::billing::{self, StreamEnd};
use crate::gateway::candidates;
use crate::gateway::sse::SseTap;
use crate::gateway::upstream::Forwarded;
use crate::gateway::usage::request_tokens;
use crate::http::cached::{self, CacheOutcome};
use crate::http::error::ApiError;
use crate::http::request::{check_prompt, query_of, read_json, request_id, user_prompt, KnobsIn};
use crate::http::tags::Tags;
use crate::limits::keys::Caller;
use crate::routing::query::Needs;
use crate::routing::service::resolve;
use crate::routing::stages::Learned;
use crate::state::{expected_cost, record_decision, AppState};

/// Names that ask the gateway to route.
const ROUTED_NAMES: [&str; 2] = ["switchyard", "auto"];

/// What a gateway request leaves behind for the decision log and the response headers.
#[derive(Default)]
struct Trace {
    /// The log record, once the request got as far as a decision (a stream takes it along to its end).
    record: Option<DecisionRecord>,
    /// What steered the request.
    tags: Tags,
    /// The model that answered, the upstream's error included.
    answered: Option<String>,
    /// What the response cache did, when there is one.
    cache: Option<CacheOutcome>,
}

/// A chat request as the gateway forwards it.
struct ChatRequest {
    /// The body, changed as it is forwarded (`model`, and `stream_options` on streams).
    body: Value,
    /// The `model` asked for.
    model: String,
    /// The turn it routes on.
    prompt: String,
    /// Whether the client asked for a stream.
    stream: bool,
    /// Whether the client asked for the stream's usage itself (else it is asked for, and taken out).
    client_wants_usage: bool,
}

/// The gateway handler.
pub async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    match read_json(body, state.config.server.max_body_bytes).await {
        Ok(body) => serve(&state, &parts, body, "chat").await,
        Err(e) => e.into_response(),
    }
}

/// Serves a chat request (`body`, in OpenAI's shape) for `endpoint` (the log's name for the API it came
/// in by): decide its candidates, try them, deliver the answer. The Messages API comes here translated.
pub(crate) async fn serve(state: &Arc<AppState>, parts: &Parts, body: Value, endpoint: &'static str) -> Response {
    let started = Instant::now();
    let id = request_id();
    let mut trace = Trace::default();
    let mut response = match handle(state, parts, body, endpoint, &id, &mut trace, started).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    trace.tags.put(&mut response, &id, trace.answered.as_deref());
    if let Some(outcome) = trace.cache {
        put(response.headers_mut(), "x-switchyard-cache", outcome.as_str().into());
    }
    if let Some(mut record) = trace.record {
        record.status = response.status().as_u16();
        record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
        state.log_request(record);
    }
    response
}

async fn handle(
    state: &Arc<AppState>,
    parts: &Parts,
    body: Value,
    endpoint: &'static str,
    id: &str,
    trace: &mut Trace,
    started: Instant,
) -> Result<Response, ApiError> {
    let headers = &parts.headers;
    let caller = parts.extensions.get::<Caller>().cloned().unwrap_or_default();
    let health_read = parts.extensions.get::<crate::replicas::HealthRead>().is_some();
    let mut chat = ChatRequest::parse(body, state.config.server.max_prompt_chars)?;
    let mut record = state.new_record(id, endpoint, &chat.prompt);
    record.messages_count = chat.body.get("messages").and_then(Value::as_array).map_or(0, |m| m.len() as u32);
    let log = &state.config.log;
    record.set_messages(chat.body.get("messages"), log.prompts, log.response_logging(), log.max_response_chars);
    record.stream = chat.stream;
    record.api_key = caller.name();

    let decision_start = Instant::now();
    let (models, learned) = if ROUTED_NAMES.contains(&chat.model.as_str()) {
        let query = query_of(headers, &chat.body, chat.prompt.clone(), KnobsIn::Metadata, id, &caller)?;
        let decided = resolve(state, &query, health_read).await?;
        record_decision(&mut record, &decided);
        trace.tags = Tags::of(&decided);
        arm_system_prompt(state, decided.arm.as_ref(), &mut chat.body);
        (candidates::with_fallbacks(&decided.report.ranking, &state.deployments), decided.learned)
    } else {
        named_model(state, &chat.model, &caller, health_read).await?;
        record.decided_model = Some(chat.model.clone());
        (state.deployments.with_fallbacks(&chat.model), None)
    };
    let decision_ms = decision_start.elapsed().as_secs_f64() * 1e3;
    let ticket = match from_cache(state, headers, &chat, &caller, &mut record, trace).await {
        Cached::Hit(response) => {
            trace.record = Some(record);
            return Ok(response);
        }
        Cached::Miss(ticket) => ticket,
    };
    let record = trace.record.insert(record);

    let allows = |m: &str| caller.0.as_ref().is_none_or(|k| k.allows(m));
    let needed = request_tokens(&chat.body);
    let cards = candidates::reachable(&models, |m| state.config.model(m), allows, Needs::of(&chat.body), needed)?;
    let gateway = Gateway {
        http: &state.http,
        deployments: &state.deployments,
        health: &state.health,
        metrics: &state.metrics,
        shared: state.shared.as_ref(),
        server: &state.config.server,
    };
    let answered = gateway.attempt(&cards, &mut chat.body, chat.stream, &mut record.attempts, id).await?;
    // Only the resolved model's answer is kept under its scope (not a fallback's).
    let ticket = ticket.filter(|_| record.decided_model.as_deref() == Some(answered.card.name.as_str()));
    trace.answered = Some(answered.card.name.clone());
    let deployment = answered.upstream.name.clone();
    let forwarded = match answered.reply {
        Reply::Forwarded(forwarded) => forwarded,
        Reply::ClientError(mut response) => {
            put(response.headers_mut(), "x-switchyard-deployment", deployment);
            return Ok(response);
        }
    };
    tracing::info!(request = id, model = %answered.card.name, deployment = %deployment, fallbacks = answered.fallbacks, "forwarded");
    let delivery = Delivery { state, card: answered.card, caller: &caller, learned, started, id, ticket };
    let mut response = delivery.deliver(&chat, forwarded, trace).await;
    let h = response.headers_mut();
    put(h, "x-switchyard-deployment", deployment);
    put(h, "x-switchyard-decision-ms", format!("{decision_ms:.3}"));
    put(h, "x-switchyard-fallbacks", answered.fallbacks.to_string());
    Ok(response)
}

/// What the response cache did for a request.
enum Cached {
    /// The answer, from the cache.
    Hit(Response),
    /// Not there (or not looked up): where to keep the answer, if it may be kept.
    Miss(Option<(Arc<ResponseCache>, Ticket)>),
}

/// The response cache's part of a request, once its model is decided: the request's ticket, and a hit's
/// response (the record then says so).
async fn from_cache(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    chat: &ChatRequest,
    caller: &Caller,
    record: &mut DecisionRecord,
    trace: &mut Trace,
) -> Cached {
    let (Some(cache), Some(model)) = (&state.cache, record.decided_model.as_deref()) else {
        return Cached::Miss(None);
    };
    let key = caller.name();
    let ticket = cached::ticket(state, cache, headers, &chat.body, &chat.prompt, key.as_deref(), model).await;
    let Some(ticket) = ticket else {
        trace.cache = Some(CacheOutcome::Bypass);
        return Cached::Miss(None);
    };
    trace.cache = Some(CacheOutcome::Miss);
    if ticket.lookup {
        if let Some(hit) = cache.lookup(&ticket).await {
            cached::record_hit(record, &hit, &state.config.log);
            trace.answered = Some(hit.entry.model.clone());
            trace.cache = Some(CacheOutcome::Hit);
            return Cached::Hit(cached::response(&hit, chat.stream, chat.client_wants_usage));
        }
    }
    Cached::Miss(Some((cache.clone(), ticket)))
}

impl ChatRequest {
    /// Checks a chat request body: a JSON object with a string `model`, `messages` with a user turn
    /// to route on (at most `max_prompt_chars`), and a boolean `stream` if any. A stream is asked for its usage,
    /// so that it is counted like a whole answer; the client gets the usage only if it asked.
    fn parse(mut body: Value, max_prompt_chars: usize) -> Result<Self, ApiError> {
        if !body.is_object() {
            return Err(ApiError::invalid("invalid_type", "the request body must be a JSON object"));
        }
        let model = body.get("model").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
            ApiError::invalid("missing_model", "`model` must be a string: \"switchyard\" to route, or a catalog model")
        })?;
        let prompt = last_user_text(&body)?;
        check_prompt(&prompt, max_prompt_chars)?;
        let stream = stream_flag(&body)?;
        let client_wants_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        if stream && !client_wants_usage {
            match body.get_mut("stream_options").and_then(Value::as_object_mut) {
                Some(options) => {
                    options.insert("include_usage".into(), Value::Bool(true));
                }
                None => body["stream_options"] = serde_json::json!({"include_usage": true}),
            }
        }
        Ok(Self { body, model, prompt, stream, client_wants_usage })
    }

    /// Whether the request caps its output (`max_tokens` or `max_completion_tokens`): a cut answer is then the
    /// client's choice, not the model's failure.
    fn capped(&self) -> bool {
        self.body.get("max_tokens").or_else(|| self.body.get("max_completion_tokens")).is_some()
    }
}

/// The turn a chat request routes on.
fn last_user_text(body: &Value) -> Result<String, ApiError> {
    let messages = body.get("messages").and_then(Value::as_array).filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::invalid("missing_messages", "`messages` must be a non-empty array of chat messages")
    })?;
    const NULL: Value = Value::Null;
    user_prompt(
        messages
            .iter()
            .map(|m| (m.get("role").and_then(Value::as_str).unwrap_or(""), m.get("content").unwrap_or(&NULL))),
    )
}

/// The request's `stream`: absent, null or a boolean.
fn stream_flag(body: &Value) -> Result<bool, ApiError> {
    let kind = match body.get("stream") {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Bool(stream)) => return Ok(*stream),
        Some(Value::String(_)) => "a string",
        Some(Value::Number(_)) => "a number",
        Some(Value::Array(_)) => "an array",
        Some(_) => "an object",
    };
    Err(ApiError::invalid(
        "invalid_type",
        format!("`stream` must be true or false, not {kind}; leave it out (or false) for a whole answer"),
    ))
}

/// An experiment arm's system prompt on the request as it is forwarded (and as the cache scopes it).
fn arm_system_prompt(state: &AppState, arm: Option<&crate::routing::stages::ArmChoice>, body: &mut Value) {
    let experiment = state.config.experiment.as_ref();
    let Some(config) = arm.and_then(|a| experiment?.arms.iter().find(|c| c.name == a.arm)) else { return };
    if let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) {
        config.apply_system_prompt(messages);
    }
}

/// A request that names a catalog model: the caller's key must allow it. The shared health is read, as a
/// routed request's decision reads it.
async fn named_model(state: &AppState, model: &str, caller: &Caller, health_read: bool) -> Result<(), ApiError> {
    if state.config.model(model).is_none() {
        return Err(ApiError::NotFound {
            code: "model_not_found",
            message: format!("model {model:?} is not in the catalog; use \"switchyard\" to route, or GET /v1/models"),
        });
    }
    if let Some(key) = caller.0.as_ref().filter(|k| !k.allows(model)) {
        return Err(ApiError::Forbidden {
            code: "model_not_allowed",
            message: format!(
                "key {:?} may not use {model:?}; it may use {} (allowed_models), or \"switchyard\" to route",
                key.name,
                key.allowed_models().unwrap_or_default().join(", ")
            ),
        });
    }
    if let Some(shared) = &state.shared {
        crate::routing::replicated::sync(shared, &state.health, &state.deployments, &state.sessions, None, health_read)
            .await;
    }
    Ok(())
}

/// An upstream's successful answer on its way to the client.
struct Delivery<'a> {
    state: &'a Arc<AppState>,
    card: &'a ModelCard,
    caller: &'a Caller,
    learned: Option<Learned>,
    started: Instant,
    id: &'a str,
    /// Where to keep the answer in the response cache.
    ticket: Option<(Arc<ResponseCache>, Ticket)>,
}

impl Delivery<'_> {
    /// Records who answered, learns from a whole answer, charges it (a stream is charged, learned from and
    /// logged as it ends, by [`StreamEnd`]), and returns the response to pass on.
    async fn deliver(self, chat: &ChatRequest, forwarded: Forwarded, trace: &mut Trace) -> Response {
        let state = self.state;
        let Some(record) = trace.record.as_mut() else { return forwarded.response };
        record.chosen_model = Some(self.card.name.clone());
        record.expected_cost_usd = expected_cost(record, &self.card.name);
        let capped = chat.capped();
        // Online learning: what was predicted for the model that answered, and what a whole answer says about
        // its quality.
        let answer = forwarded.answer.as_ref().map(|(text, finish)| (text.as_str(), finish.as_deref(), capped));
        state.learn(self.id, self.learned.as_ref(), &self.card.name, answer);
        let mut response = forwarded.response;
        if !chat.stream {
            let generated = forwarded.generated_chars;
            let estimate = || billing::estimate(billing::input_estimate(&chat.body), generated);
            if billing::charge_whole(state, self.card, self.caller, record, forwarded.usage, estimate).await {
                put(response.headers_mut(), "x-switchyard-usage", "estimated".into());
            }
            if let Some(answer) = forwarded.whole {
                let log = &state.config.log;
                record.set_response(&answer, log.response_logging(), log.max_response_chars);
                if let Some((cache, ticket)) = self.ticket {
                    cache.store(ticket, answer, &self.card.name, record.cost_usd.unwrap_or(0.0));
                }
            }
            return response;
        }
        // The record goes with the stream and is logged when it ends, with the usage it reported.
        let mut record = trace.record.take().unwrap_or_default();
        record.status = response.status().as_u16();
        let end = StreamEnd {
            state: state.clone(),
            card: self.card.clone(),
            caller: self.caller.clone(),
            record: Some(record),
            tap: SseTap::new(!chat.client_wants_usage),
            started: self.started,
            input_estimate: billing::input_estimate(&chat.body),
            learned: self.learned,
            capped,
            answer: billing::StreamAnswer::new(
                state.config.log.enabled && state.config.log.response_logging() != ResponseLogging::Off,
                self.ticket,
            ),
        };
        response = end.attach(response);
        response
    }
}

/// Sets a response header when the value is a valid header value.
fn put(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_chat_request_is_checked_and_a_stream_asks_for_its_usage() {
        let body = json!({"model": "switchyard", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let chat = ChatRequest::parse(body, 100).unwrap();
        assert_eq!((chat.model.as_str(), chat.prompt.as_str(), chat.stream), ("switchyard", "hi", true));
        assert!(!chat.client_wants_usage);
        assert_eq!(chat.body["stream_options"]["include_usage"], json!(true), "usage is asked for, then taken out");
        assert!(!chat.capped());

        let asked = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}]});
        let chat = ChatRequest::parse(asked, 100).unwrap();
        assert!(chat.client_wants_usage && chat.capped());

        let code = |body: Value, max: usize| ChatRequest::parse(body, max).err().map(|e| e.code());
        let user = json!([{"role": "user", "content": "hello there"}]);
        assert_eq!(code(json!([1]), 100), Some("invalid_type"));
        assert_eq!(code(json!({"messages": user}), 100), Some("missing_model"));
        assert_eq!(code(json!({"model": "m", "messages": []}), 100), Some("missing_messages"));
        assert_eq!(code(json!({"model": "m", "messages": user}), 5), Some("request_too_large"));
        assert_eq!(code(json!({"model": "m", "messages": user, "stream": "yes"}), 100), Some("invalid_type"));
        assert_eq!(code(json!({"model": "m", "messages": user, "stream": null}), 100), None);
    }
}
