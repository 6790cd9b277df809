//! What the decision log keeps of a request's messages (so that `logs show` can print the conversation a
//! decision was made on): with prompts logged in full, the messages in OpenAI's shape, bounded in size, with
//! earlier answers kept only as `log.responses` keeps answers.

use serde_json::{json, Map, Value};

use crate::record::{DecisionRecord, PromptLogging};
use crate::response::ResponseLogging;

/// Most characters of text kept over a whole conversation, in units of `log.max_response_chars`: the newest
/// messages are kept first, and older ones are left out (and counted) once the budget is spent.
const BUDGET_IN_TEXTS: usize = 4;
/// Most messages kept.
const MAX_MESSAGES: usize = 64;

impl DecisionRecord {
    /// Keeps `messages` (a request's `messages` array in OpenAI's shape) when prompts are logged in full and
    /// there is more than one message (a lone user message is the prompt already):
    /// - only `role`, `name`, `tool_call_id`, `content` and `tool_calls` (each call's arguments cut like a
    ///   text); a part of the content that is not text becomes `{"type": <its type>, "omitted": true}`;
    /// - every text cut at `max_chars` characters, its message marked `"truncated": true`;
    /// - earlier answers (assistant and tool messages) only as `answers` keeps answers: in clear under `full`
    ///   and `truncate`, as `{"omitted": "<why>"}` under `hash` and `off`;
    /// - the newest messages first, at most [`MAX_MESSAGES`] and about [`BUDGET_IN_TEXTS`] × `max_chars`
    ///   characters in all; what is left out of the older ones is counted in a leading
    ///   `{"omitted_messages": n}`.
    pub fn set_messages(
        &mut self,
        messages: Option<&Value>,
        prompts: PromptLogging,
        answers: ResponseLogging,
        max_chars: usize,
    ) {
        let Some(list) = messages.and_then(Value::as_array) else { return };
        if prompts != PromptLogging::Full || list.len() < 2 {
            return;
        }
        let budget = max_chars.saturating_mul(BUDGET_IN_TEXTS);
        let (mut kept, mut spent) = (Vec::new(), 0usize);
        for message in list.iter().rev() {
            if kept.len() == MAX_MESSAGES || (spent >= budget && !kept.is_empty()) {
                break;
            }
            let (value, chars) = kept_message(message, answers, max_chars);
            spent += chars;
            kept.push(value);
        }
        let omitted = list.len() - kept.len();
        if omitted > 0 {
            kept.push(json!({ "omitted_messages": omitted }));
        }
        kept.reverse();
        self.messages = Some(Value::Array(kept));
    }
}

/// One message as the log keeps it, and the characters of text it keeps.
fn kept_message(message: &Value, answers: ResponseLogging, max_chars: usize) -> (Value, usize) {
    let Some(fields) = message.as_object() else { return (json!({"omitted": "not a message object"}), 0) };
    let role = fields.get("role").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    let mut text = Text { max_chars, truncated: false, chars: 0 };
    let answer = matches!(role, "assistant" | "tool");
    let hidden = match answers {
        ResponseLogging::Hash | ResponseLogging::Off if answer => Some(format!(
            "an earlier answer; log.responses = \"{}\" keeps none in clear",
            if answers == ResponseLogging::Hash { "hash" } else { "off" }
        )),
        _ => None,
    };
    for (key, value) in fields {
        let value = match (key.as_str(), value) {
            ("role" | "name" | "tool_call_id", _) => value.clone(),
            ("content" | "tool_calls", _) if hidden.is_some() => continue,
            ("content", Value::String(s)) => Value::String(text.cut(s)),
            ("content", Value::Array(parts)) => Value::Array(parts.iter().map(|p| text.part(p)).collect()),
            ("content", other) => other.clone(),
            ("tool_calls", Value::Array(calls)) => Value::Array(calls.iter().map(|c| text.call(c)).collect()),
            _ => continue,
        };
        out.insert(key.clone(), value);
    }
    if let Some(why) = hidden {
        out.insert("omitted".into(), Value::String(why));
    }
    if text.truncated {
        out.insert("truncated".into(), Value::Bool(true));
    }
    (Value::Object(out), text.chars)
}

/// Cuts texts at `max_chars` characters, noting whether any was cut and counting what is kept.
struct Text {
    max_chars: usize,
    truncated: bool,
    chars: usize,
}

impl Text {
    fn cut(&mut self, s: &str) -> String {
        let kept = match s.char_indices().nth(self.max_chars) {
            Some((end, _)) => {
                self.truncated = true;
                &s[..end]
            }
            None => s,
        };
        self.chars += kept.chars().count();
        kept.to_string()
    }

    /// One part of a content array: text is kept (cut), anything else is noted by its type.
    fn part(&mut self, part: &Value) -> Value {
        match (part.get("type").and_then(Value::as_str), part.get("text")) {
            (Some("text"), Some(Value::String(s))) => json!({"type": "text", "text": self.cut(s)}),
            (kind, _) => json!({"type": kind.unwrap_or("unknown"), "omitted": true}),
        }
    }

    /// One tool call: its id, type and function name, with the arguments cut.
    fn call(&mut self, call: &Value) -> Value {
        let arguments = call.pointer("/function/arguments").and_then(Value::as_str).map(|a| self.cut(a));
        json!({
            "id": call.get("id"),
            "type": call.get("type"),
            "function": {"name": call.pointer("/function/name"), "arguments": arguments},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(messages: &Value, answers: ResponseLogging, max_chars: usize) -> Value {
        let mut r = DecisionRecord::default();
        r.set_messages(Some(messages), PromptLogging::Full, answers, max_chars);
        r.messages.unwrap_or(Value::Null)
    }

    #[test]
    fn a_conversation_is_kept_with_long_texts_cut_images_noted_and_unknown_keys_dropped() {
        let messages = json!([
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "x_secret": "dropped", "content": [
                {"type": "text", "text": "Décris cette image, s'il te plaît."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "reasoning_content": "dropped",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"city\": 1}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "user", "content": "encore"}
        ]);
        let kept = kept(&messages, ResponseLogging::Truncate, 8);
        assert_eq!(kept[0], json!({"role": "system", "content": "Answer i", "truncated": true}));
        assert_eq!(kept[1]["content"][0], json!({"type": "text", "text": "Décris c"}));
        assert_eq!(kept[1]["content"][1], json!({"type": "image_url", "omitted": true}));
        assert_eq!(
            kept[2],
            json!({"role": "assistant", "content": null, "truncated": true, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"city\":"}}]})
        );
        assert_eq!(kept[3], json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"}));
        assert_eq!(kept[4], json!({"role": "user", "content": "encore"}));
        let text = kept.to_string();
        assert!(!text.contains("base64") && !text.contains("dropped"), "{text}");
    }

    #[test]
    fn earlier_answers_are_kept_only_as_answers_are() {
        let messages = json!([
            {"role": "user", "content": "What is my password?"},
            {"role": "assistant", "content": "hunter2", "tool_calls": [{"id": "c", "function": {"arguments": "x"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "secret tool output"},
            {"role": "user", "content": "Thanks"}
        ]);
        for answers in [ResponseLogging::Hash, ResponseLogging::Off] {
            let kept = kept(&messages, answers, 100);
            let text = kept.to_string();
            assert!(!text.contains("hunter2") && !text.contains("secret tool output"), "{answers:?}: {text}");
            assert_eq!(kept[1]["role"], "assistant");
            assert!(kept[1]["omitted"].as_str().unwrap().contains("log.responses"));
            assert_eq!(kept[3]["content"], "Thanks");
        }
        assert_eq!(kept(&messages, ResponseLogging::Full, 100)[1]["content"], "hunter2");
    }

    #[test]
    fn a_long_history_keeps_its_newest_messages_within_the_budget() {
        let history: Vec<Value> = (0..100)
            .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": format!("turn {i:03}")}))
            .collect();
        // Each text is 8 characters; the budget is 4 × 8 = 32 characters: the newest 4 messages.
        let kept = kept(&Value::Array(history.clone()), ResponseLogging::Full, 8);
        assert_eq!(kept[0], json!({"omitted_messages": 96}));
        assert_eq!(kept.as_array().unwrap().len(), 5);
        assert_eq!(kept[4]["content"], "turn 099");
        // With a large budget, at most 64 messages.
        let kept = kept_all(&history);
        assert_eq!(kept[0], json!({"omitted_messages": 36}));
        assert_eq!(kept.as_array().unwrap().len(), MAX_MESSAGES + 1);
    }

    fn kept_all(history: &[Value]) -> Value {
        kept(&Value::Array(history.to_vec()), ResponseLogging::Full, 10_000)
    }

    #[test]
    fn nothing_is_kept_for_hashed_prompts_or_a_lone_message() {
        let two = json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]);
        let mut r = DecisionRecord::default();
        r.set_messages(Some(&two), PromptLogging::Hash, ResponseLogging::Full, 100);
        assert!(r.messages.is_none());
        r.set_messages(
            Some(&json!([{"role": "user", "content": "u"}])),
            PromptLogging::Full,
            ResponseLogging::Full,
            100,
        );
        assert!(r.messages.is_none());
        r.set_messages(None, PromptLogging::Full, ResponseLogging::Full, 100);
        assert!(r.messages.is_none());
    }
}
