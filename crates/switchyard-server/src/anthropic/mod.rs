//! Anthropic's Messages API, translated to and from the OpenAI chat shape the gateway speaks inside.
//!
//! This module owns the translation only: requests ([`request`]), whole answers ([`response`]), streams
//! ([`stream`]) and error bodies, both ways. It does no I/O and knows nothing of routing, keys or billing:
//! the edge (`http::messages`) serves `POST /v1/messages` by translating in, running the ordinary gateway and
//! translating out; an upstream deployment with `api = "anthropic"` (`gateway::upstream`) translates the
//! forwarded request out and the answer back. A request that crosses no API is never translated.

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream;

use serde_json::{json, Value};

/// The `anthropic-version` header sent to Anthropic upstreams.
pub(crate) const VERSION: &str = "2023-06-01";

/// Why a request cannot be translated: the client's mistake, answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TranslateError(pub String);

impl TranslateError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Anthropic's `stop_reason` for an OpenAI `finish_reason`.
pub(crate) fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// OpenAI's `finish_reason` for an Anthropic `stop_reason`.
pub(crate) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic's error `type` for an HTTP status.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 | 504 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An Anthropic error body: `{"type": "error", "error": {"type", "message"}}`.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type(status), "message": message}})
}

/// An OpenAI error body for an Anthropic one (an Anthropic upstream's refusal passed on to an OpenAI client);
/// a body that is not Anthropic's error shape is returned as it is.
pub(crate) fn openai_error(body: Value) -> Value {
    match body.get("error") {
        Some(error) if body.get("type").and_then(Value::as_str) == Some("error") => json!({"error": {
            "message": error.get("message").cloned().unwrap_or(Value::Null),
            "type": error.get("type").cloned().unwrap_or(Value::Null),
            "param": null,
            "code": null,
        }}),
        _ => body,
    }
}

/// An Anthropic error body for an OpenAI one (an OpenAI upstream's refusal, or the gateway's own error, passed
/// on to an Anthropic client).
pub(crate) fn anthropic_error(status: u16, body: &Value) -> Value {
    if body.get("type").and_then(Value::as_str) == Some("error") {
        return body.clone();
    }
    let message = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map_or_else(|| format!("the upstream answered HTTP {status}"), str::to_string);
    error_body(status, &message)
}

/// A tool call's id as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`): other characters become `_` (the same
/// mapping for a call and its result, so they still pair up); a missing id becomes `toolu_<index>`.
pub(crate) fn tool_id(id: Option<&str>, index: usize) -> String {
    match id.filter(|id| !id.is_empty()) {
        Some(id) => {
            id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
        }
        None => format!("toolu_{index}"),
    }
}

/// An OpenAI message's tool calls as Messages `tool_use` blocks (arguments parsed; arguments that are not a
/// JSON object become `{}`; ids made valid by [`tool_id`]).
pub(crate) fn tool_use_blocks(message: &Value) -> Vec<Value> {
    let calls = message.get("tool_calls").and_then(Value::as_array).into_iter().flatten();
    calls
        .enumerate()
        .map(|(i, call)| {
            let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
            let input =
                serde_json::from_str::<Value>(arguments).ok().filter(Value::is_object).unwrap_or_else(|| json!({}));
            json!({
                "type": "tool_use",
                "id": tool_id(call.get("id").and_then(Value::as_str), i),
                "name": call.pointer("/function/name").cloned().unwrap_or_default(),
                "input": input,
            })
        })
        .collect()
}

/// The text of an Anthropic content value: a string, or the text blocks of an array (other blocks skipped).
pub(crate) fn text_of(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_and_errors_map_both_ways() {
        for (finish, stop) in [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use")] {
            assert_eq!(stop_reason(Some(finish)), stop);
            assert_eq!(finish_reason(Some(stop)), finish);
        }
        assert_eq!(finish_reason(Some("stop_sequence")), "stop");
        assert_eq!(error_type(429), "rate_limit_error");
        assert_eq!(error_type(529), "overloaded_error");
        let openai = json!({"error": {"message": "slow down", "type": "rate_limit_exceeded", "code": "rpm"}});
        let anthropic = anthropic_error(429, &openai);
        assert_eq!(anthropic, json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}));
        assert_eq!(openai_error(anthropic)["error"]["message"], "slow down");
        assert_eq!(openai_error(json!({"detail": "x"})), json!({"detail": "x"}), "another shape passes as it is");
        assert_eq!(tool_id(Some("functions.get_weather:0"), 3), "functions_get_weather_0");
        assert_eq!((tool_id(Some("call_1"), 0), tool_id(None, 2)), ("call_1".to_string(), "toolu_2".to_string()));
    }
}
