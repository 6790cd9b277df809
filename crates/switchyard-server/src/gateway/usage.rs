//! What a request and its answer use, in tokens: what an upstream reports (`usage`), and the estimates from
//! text that stand in when it reports none or before it answers (at [`switchyard_core::CHARS_PER_TOKEN`]
//! characters a token).

use serde_json::Value;

/// Tokens an upstream reported for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

/// A completion's first choice: its message text (empty when it has none) and `finish_reason`.
pub(crate) fn answer_of(reply: &Value) -> Option<(String, Option<String>)> {
    let choice = reply.get("choices")?.get(0)?;
    let text = choice.pointer("/message/content").and_then(Value::as_str).unwrap_or("").to_string();
    let finish = choice.get("finish_reason").and_then(Value::as_str).map(str::to_string);
    Some((text, finish))
}

/// The `usage` object of a completion or of a stream's final chunk.
pub(crate) fn usage_of(reply: &Value) -> Option<Usage> {
    let usage = reply.get("usage").filter(|u| u.is_object())?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage { input: count("prompt_tokens"), output: count("completion_tokens") };
    (usage.input + usage.output > 0).then_some(usage)
}

/// Input tokens of a chat request: all its messages' content (characters / 4), system and earlier turns
/// included, since the upstream bills them all. `None` when the body has no `messages` array.
pub(crate) fn message_tokens(body: &Value) -> Option<f64> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    let chars: usize = messages
        .iter()
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.chars().count(),
            Some(other) => other.to_string().chars().count(),
            None => 0,
        })
        .sum();
    Some((chars as f64 / switchyard_core::CHARS_PER_TOKEN).ceil().max(1.0))
}

/// Tokens a request needs: its messages' input tokens ([`message_tokens`]) plus the requested output tokens.
pub(crate) fn request_tokens(body: &Value) -> f64 {
    let output =
        ["max_completion_tokens", "max_tokens"].iter().find_map(|k| body.get(*k).and_then(Value::as_u64)).unwrap_or(0);
    message_tokens(body).unwrap_or(0.0) + output as f64
}

/// Characters of generated text in one message (a whole answer's `message`, or a streamed `delta`): its
/// content, reasoning and tool-call arguments.
pub(crate) fn message_chars(message: &Value) -> usize {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, |s| s.chars().count());
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .map_or(0, |calls| calls.iter().map(|c| text(c.get("function").and_then(|f| f.get("arguments")))).sum());
    text(message.get("content")) + text(message.get("reasoning_content")) + text(message.get("reasoning")) + calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_counts_toward_input_tokens() {
        let system = "x".repeat(400);
        let body = serde_json::json!({
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": "earlier question"},
                {"role": "assistant", "content": "earlier answer"},
                {"role": "user", "content": "and now?"}
            ],
            "max_tokens": 50
        });
        // 400 + 16 + 14 + 8 = 438 characters: 110 tokens, far more than the last turn's 2.
        assert_eq!(message_tokens(&body), Some(110.0));
        assert_eq!(request_tokens(&body), 160.0);
        assert_eq!(message_tokens(&serde_json::json!({"prompt": "hi"})), None);
    }
}
