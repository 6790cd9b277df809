//! Whole answers: an OpenAI chat completion as a Messages response ([`from_openai`], for a `/v1/messages`
//! client), and a Messages response as a chat completion ([`to_openai`], from an Anthropic upstream).

use serde_json::{json, Value};

use super::{finish_reason, stop_reason};

/// An OpenAI chat completion as a Messages response: the first choice's text as a text block, its tool calls
/// as `tool_use` blocks (arguments parsed; ones that are not a JSON object become `{}`), `finish_reason` as
/// `stop_reason`, and the usage (cached prompt tokens as `cache_read_input_tokens`).
pub(crate) fn from_openai(completion: &Value) -> Value {
    let choice = completion.pointer("/choices/0").unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(super::tool_use_blocks(message));
    // Some OpenAI-compatible servers end a tool call with "stop": the calls are what the client must act on.
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let called = content.iter().any(|b| b["type"] == "tool_use");
    let stop = if called && finish != Some("length") { "tool_use" } else { stop_reason(finish) };
    let id = completion.get("id").and_then(Value::as_str).unwrap_or("switchyard");
    json!({
        "id": if id.starts_with("msg_") { id.to_string() } else { format!("msg_{id}") },
        "type": "message",
        "role": "assistant",
        "model": completion.get("model").cloned().unwrap_or_default(),
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": usage_from_openai(completion.get("usage")),
    })
}

/// OpenAI usage as Messages usage: `input_tokens` leaves out the cached prompt tokens, which are
/// `cache_read_input_tokens`, as Anthropic counts them.
pub(crate) fn usage_from_openai(usage: Option<&Value>) -> Value {
    let get = |path: &str| usage.and_then(|u| u.pointer(path)).and_then(Value::as_u64).unwrap_or(0);
    let cached = get("/prompt_tokens_details/cached_tokens");
    json!({
        "input_tokens": get("/prompt_tokens").saturating_sub(cached),
        "output_tokens": get("/completion_tokens"),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}

/// Messages usage as OpenAI usage: every input token (cache reads and writes included) is a prompt token.
pub(crate) fn usage_to_openai(usage: Option<&Value>) -> Value {
    let get = |key: &str| usage.and_then(|u| u.get(key)).and_then(Value::as_u64).unwrap_or(0);
    let cached = get("cache_read_input_tokens");
    let prompt = get("input_tokens").saturating_add(get("cache_creation_input_tokens")).saturating_add(cached);
    let completion = get("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// A Messages response as an OpenAI chat completion: text blocks joined as the content, `tool_use` blocks as
/// tool calls, `stop_reason` as `finish_reason`, and the usage.
pub(crate) fn to_openai(message: &Value, created: u64) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in message.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or_default(),
                    "arguments": block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut reply = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        reply["tool_calls"] = Value::Array(calls);
    }
    json!({
        "id": message.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "created": created,
        "model": message.get("model").cloned().unwrap_or_default(),
        "choices": [{
            "index": 0,
            "message": reply,
            "finish_reason": finish_reason(message.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": usage_to_openai(message.get("usage")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_translate_both_ways_with_their_tool_calls_and_usage() {
        let message = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3}
        });
        let openai = to_openai(&message, 1_700_000_000);
        assert_eq!(openai["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(openai["choices"][0]["message"]["content"], "Checking.");
        assert_eq!(openai["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
        assert_eq!(openai["usage"]["prompt_tokens"], 28, "every input token is a prompt token");
        assert_eq!(openai["usage"]["completion_tokens"], 7);
        let back = from_openai(&openai);
        assert_eq!(back["id"], "msg_01");
        assert_eq!(back["content"], message["content"]);
        assert_eq!(back["stop_reason"], "tool_use");
        assert_eq!(back["usage"]["input_tokens"], 23, "cache reads are counted apart, as Anthropic does");
        assert_eq!(back["usage"]["cache_read_input_tokens"], 5);
        assert_eq!(back["usage"]["output_tokens"], 7);
    }

    #[test]
    fn an_openai_answer_without_usage_or_text_still_has_the_messages_shape() {
        let completion = json!({"id": "chatcmpl-9", "model": "m", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "not json"}}]},
             "finish_reason": "length"}]});
        let message = from_openai(&completion);
        assert_eq!(message["id"], "msg_chatcmpl-9");
        assert_eq!(message["content"], json!([{"type": "tool_use", "id": "c1", "name": "f", "input": {}}]));
        assert_eq!(message["stop_reason"], "max_tokens");
        assert_eq!(message["usage"]["input_tokens"], 0);
        let mut stopped = completion.clone();
        stopped["choices"][0]["finish_reason"] = json!("stop");
        assert_eq!(from_openai(&stopped)["stop_reason"], "tool_use", "tool calls ended by \"stop\" are still calls");
    }
}
