//! `POST /v1/route`: a routing decision without a model call, for clients that call the model themselves.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use switchyard_core::RouteReport;

use crate::http::error::ApiError;
use crate::http::request::{check_prompt, query_of, read_json, request_id, user_prompt, KnobsIn};
use crate::http::tags::Tags;
use crate::limits::keys::Caller;
use crate::routing::service::resolve;
use crate::state::{expected_cost, record_decision, AppState};

/// The body of `POST /v1/route`: an OpenAI chat request or `{"prompt": ...}`, plus optional knobs at the top
/// level (`min_quality`, `willingness_to_pay`, `allowed_models`, `denied_models`, `max_latency_ms`; read by
/// [`query_of`], as `x-switchyard-*` headers are).
#[derive(Debug, Deserialize)]
struct RouteRequest {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
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
}

/// The answer of `POST /v1/route`: the decision, its request id (for feedback), and what steered it.
#[derive(serde::Serialize)]
struct RouteResponse {
    request_id: String,
    #[serde(flatten)]
    report: RouteReport,
    rule: Option<String>,
    /// A `similar_to` rule's similarity to its nearest example.
    #[serde(skip_serializing_if = "Option::is_none")]
    similarity: Option<f32>,
    experiment: Option<String>,
    arm: Option<String>,
    /// The conversation's session pin, when one applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<crate::routing::sessions::SessionPin>,
    /// The probability that this decision's model was chosen (1 without exploration).
    propensity: f64,
    /// Whether the model is an exploration (`learning.explore`) rather than the policy's choice.
    explored: bool,
}

/// The handler.
pub async fn route(State(state): State<Arc<AppState>>, request: Request) -> Result<Response, ApiError> {
    let started = Instant::now();
    let request_id = request_id();
    let (parts, body) = request.into_parts();
    let caller = parts.extensions.get::<Caller>().cloned().unwrap_or_default();
    let health_read = parts.extensions.get::<crate::replicas::HealthRead>().is_some();
    let body = read_json(body, state.config.server.max_body_bytes).await?;
    let request = RouteRequest::deserialize(&body)
        .map_err(|e| ApiError::invalid("invalid_type", format!("request body is not a valid route request: {e}")))?;
    let prompt = request.prompt()?;
    check_prompt(&prompt, state.config.server.max_prompt_chars)?;
    let query = query_of(&parts.headers, &body, prompt.clone(), KnobsIn::Body, &request_id, &caller)?;
    let decided = resolve(&state, &query, health_read).await?;

    let mut record = state.new_record(&request_id, "route", &prompt);
    record.messages_count = request.messages.as_ref().map_or(1, |m| m.len() as u32);
    let log = &state.config.log;
    record.set_messages(body.get("messages"), log.prompts, log.response_logging(), log.max_response_chars);
    record_decision(&mut record, &decided);
    record.api_key = caller.name();
    record.chosen_model = Some(decided.report.model.clone());
    record.expected_cost_usd = expected_cost(&record, &decided.report.model);
    record.status = 200;
    record.latency_ms = started.elapsed().as_secs_f64() * 1e3;
    // Nothing is remembered for online learning: only requests an upstream answered are learned from.
    state.log_request(record);

    let tags = Tags::of(&decided);
    let model = decided.report.model.clone();
    let answer = RouteResponse {
        request_id: request_id.clone(),
        report: decided.report,
        rule: tags.rule.clone(),
        similarity: decided.similarity,
        session: decided.session.clone(),
        propensity: decided.propensity,
        explored: decided.explored,
        experiment: tags.experiment.clone(),
        arm: tags.arm.clone(),
    };
    let mut response = Json(answer).into_response();
    tags.put(&mut response, &request_id, Some(&model));
    Ok(response)
}
