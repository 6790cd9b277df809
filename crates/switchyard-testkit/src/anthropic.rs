//! The stand-in upstream's Anthropic side: `POST /v1/messages` as Anthropic's API answers it (its request
//! checks, error bodies, whole answers and event streams), on the same [`Fake`] as the OpenAI side, so one
//! stand-in serves deployments of both APIs (an Anthropic deployment's `base_url` is `http://ADDR`).
//!
//! It answers "hello from MODEL" (5 input and 3 output tokens), or, when the request offers tools and its last
//! turn is not a tool result, a call of the first tool with `{"city": "Paris"}`; after a tool result, "the
//! tool said: RESULT". Modes [`Mode::Fail500`] (as 529 `overloaded_error`), [`Mode::Fail429`] and
//! [`Mode::BadRequest`] answer with Anthropic's errors.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::fake::{Fake, Mode};

/// Anthropic's error response.
fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({"type": "error", "error": {"type": kind, "message": message}}))).into_response()
}

/// What the stand-in answers a request with: text, or a call of the first tool.
enum Answer {
    Text(String),
    Tool { name: String },
}

/// The answer to a Messages request, as [`crate::upstream`] answers a chat request.
fn answer(body: &Value, model: &str) -> Answer {
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let result =
        last["content"].as_array().and_then(|blocks| blocks.iter().find(|b| b["type"] == "tool_result")).map(|b| {
            match &b["content"] {
                Value::String(s) => s.clone(),
                other => other.as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect(),
            }
        });
    match (result, body["tools"].as_array().and_then(|t| t.first())) {
        (Some(result), _) => Answer::Text(format!("the tool said: {result}")),
        (None, Some(tool)) => Answer::Tool { name: tool["name"].as_str().unwrap_or_default().to_string() },
        (None, None) => Answer::Text(format!("hello from {model}")),
    }
}

/// `POST /v1/messages`.
pub(crate) async fn messages(State(fake): State<Arc<Fake>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if headers.get("anthropic-version").is_none() {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "anthropic-version: header is required");
    }
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default();
    fake.anthropic_keys.lock().unwrap().push(key.to_string());
    let model = body["model"].as_str().unwrap_or_default().to_string();
    *fake.calls.lock().unwrap().entry(model.clone()).or_default() += 1;
    if !body["max_tokens"].is_u64() {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "max_tokens: Field required");
    }
    if body["messages"].as_array().is_none_or(|m| m.iter().any(|t| t["role"] != "user" && t["role"] != "assistant")) {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "messages: roles must be user or assistant");
    }
    match fake.modes.lock().unwrap().get(&model).copied().unwrap_or(Mode::Ok) {
        Mode::Fail500 => return error(StatusCode::from_u16(529).unwrap(), "overloaded_error", "Overloaded"),
        Mode::Fail429 => return error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", "slow down"),
        Mode::BadRequest => return error(StatusCode::BAD_REQUEST, "invalid_request_error", "bad max_tokens"),
        _ => {}
    }
    let answer = answer(&body, &model);
    if body["stream"].as_bool() == Some(true) {
        return stream(&model, &answer);
    }
    let (content, stop) = match &answer {
        Answer::Text(text) => (json!([{"type": "text", "text": text}]), "end_turn"),
        Answer::Tool { name } => {
            (json!([{"type": "tool_use", "id": "toolu_01", "name": name, "input": {"city": "Paris"}}]), "tool_use")
        }
    };
    Json(json!({"id": "msg_01", "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": stop, "stop_sequence": null, "usage": {"input_tokens": 5, "output_tokens": 3}}))
    .into_response()
}

/// Anthropic's event sequence for an answer: the text in two deltas, or the tool's input in two pieces.
fn stream(model: &str, answer: &Answer) -> Response {
    let event = |v: Value| format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or_default());
    let mut events = vec![
        event(json!({"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 5, "output_tokens": 1}}})),
        event(json!({"type": "ping"})),
    ];
    let stop = match answer {
        Answer::Text(text) => {
            let (a, b) = text.split_at(text.len().min(3));
            events.push(event(
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ));
            for piece in [a, b] {
                events.push(event(
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
            "end_turn"
        }
        Answer::Tool { name } => {
            events.push(event(json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_01", "name": name, "input": {}}})));
            for piece in ["{\"city\": ", "\"Paris\"}"] {
                events.push(event(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
            "tool_use"
        }
    };
    events.push(event(json!({"type": "content_block_stop", "index": 0})));
    events.push(event(json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": 3}})));
    events.push(event(json!({"type": "message_stop"})));
    let chunks = futures_util::stream::iter(events.into_iter().map(|e| Ok::<_, std::io::Error>(Bytes::from(e))));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(chunks)).unwrap()
}
