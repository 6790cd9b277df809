//! What the decision log keeps of an answer (`log.responses`): its text (whole or cut), its SHA-256, its tool
//! calls and its finish reason.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::record::{prompt_hash, DecisionRecord};

/// Phrases that mark an answer as a refusal when it starts with one (compared without case): the default of
/// `learning.refusal_patterns`, and what `logs stats` counts as a refused answer.
pub const REFUSAL_PATTERNS: [&str; 8] = [
    "i'm sorry, but i can't",
    "i’m sorry, but i can’t",
    "i am sorry, but i cannot",
    "i can't help with",
    "i cannot help with",
    "i can't assist with",
    "i cannot assist with",
    "as an ai language model, i cannot",
];

/// Whether `text` starts like a refusal: its first 200 characters, lowercased and trimmed, start with one of
/// `patterns` (lowercase).
pub fn starts_like_refusal(text: &str, patterns: &[String]) -> bool {
    let start: String = text.trim().chars().take(200).collect::<String>().to_lowercase();
    patterns.iter().any(|p| start.starts_with(p.as_str()))
}

/// How answers are kept in the log (`log.responses`; by default `truncate` when prompts are kept in full,
/// `hash` when they are hashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseLogging {
    /// The whole text, tool calls and finish reason.
    Full,
    /// The first `log.max_response_chars` characters of the text (marked as cut), tool calls and finish reason.
    Truncate,
    /// Only the text's SHA-256 and the finish reason: nothing in clear.
    Hash,
    /// Nothing of the answer.
    Off,
}

impl DecisionRecord {
    /// Keeps what `logging` says of `answer` (a chat completion in OpenAI's shape: its first choice's text, tool
    /// calls and finish reason), the text cut at `max_chars` characters when truncating.
    pub fn set_response(&mut self, answer: &Value, logging: ResponseLogging, max_chars: usize) {
        if logging == ResponseLogging::Off {
            return;
        }
        let choice = answer.pointer("/choices/0");
        let message = choice.and_then(|c| c.get("message"));
        let text = message.and_then(|m| m.get("content")).and_then(Value::as_str).unwrap_or_default();
        self.finish_reason = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str).map(str::to_string);
        self.response_sha256 = Some(prompt_hash(text));
        if logging == ResponseLogging::Hash {
            return;
        }
        let calls = message.and_then(|m| m.get("tool_calls")).filter(|c| c.as_array().is_some_and(|a| !a.is_empty()));
        self.tool_calls = calls.cloned();
        let mut cut = logging == ResponseLogging::Truncate && text.chars().count() > max_chars;
        // Under truncate, a tool call's arguments are cut at the same length (they can be as long as a text).
        if let (ResponseLogging::Truncate, Some(Value::Array(list))) = (logging, self.tool_calls.as_mut()) {
            for args in list.iter_mut().filter_map(|c| c.pointer_mut("/function/arguments")) {
                if let Some(long) = args.as_str().filter(|a| a.chars().count() > max_chars) {
                    *args = Value::String(long.chars().take(max_chars).collect());
                    cut = true;
                }
            }
        }
        self.response_truncated = cut;
        self.response = Some(if cut { text.chars().take(max_chars).collect() } else { text.to_string() });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(text: &str) -> Value {
        json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})
    }

    #[test]
    fn each_mode_keeps_what_it_says() {
        let mut full = DecisionRecord::default();
        full.set_response(&answer("héllo wörld"), ResponseLogging::Full, 3);
        assert_eq!((full.response.as_deref(), full.response_truncated), (Some("héllo wörld"), false));
        assert_eq!(full.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(full.tool_calls.as_ref().map(|c| c[0]["function"]["name"].clone()), Some(json!("f")));
        let mut cut = DecisionRecord::default();
        cut.set_response(&answer("héllo wörld"), ResponseLogging::Truncate, 3);
        assert_eq!((cut.response.as_deref(), cut.response_truncated), (Some("hél"), true));
        assert_eq!(cut.response_sha256, full.response_sha256, "the hash is of the whole text");
        // Long tool-call arguments are cut at the same length, and the row says it was cut.
        let mut long = answer("ok");
        long["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = json!("{\"city\": \"Paris\"}");
        let mut args = DecisionRecord::default();
        args.set_response(&long, ResponseLogging::Truncate, 5);
        assert_eq!(args.tool_calls.as_ref().map(|c| c[0]["function"]["arguments"].clone()), Some(json!("{\"cit")));
        assert!(args.response_truncated);
        args.set_response(&long, ResponseLogging::Full, 5);
        assert_eq!(
            args.tool_calls.as_ref().map(|c| c[0]["function"]["arguments"].clone()),
            Some(json!("{\"city\": \"Paris\"}"))
        );
        let mut hashed = DecisionRecord::default();
        hashed.set_response(&answer("secret"), ResponseLogging::Hash, 3);
        assert_eq!((hashed.response, hashed.tool_calls), (None, None));
        assert_eq!(hashed.response_sha256, Some(prompt_hash("secret")));
        let mut off = DecisionRecord::default();
        off.set_response(&answer("secret"), ResponseLogging::Off, 3);
        assert_eq!(off, DecisionRecord::default());
    }
}
