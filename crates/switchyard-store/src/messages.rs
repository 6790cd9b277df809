//! What the decision log keeps of a request's messages (so that `logs show` can print the conversation a
//! decision was made on): with prompts logged in full, the messages in OpenAI's shape, each text cut at
//! `log.max_response_chars`, and images, audio and files replaced by a note of their kind.

use serde_json::{json, Map, Value};

use crate::record::{DecisionRecord, PromptLogging};

impl DecisionRecord {
    /// Keeps `messages` (a request's `messages` array in OpenAI's shape) when prompts are logged in full and
    /// there is more than one message (a lone user message is the prompt already). A text longer than
    /// `max_chars` characters is cut and its message marked `"truncated": true`; a part that is not text
    /// becomes `{"type": <its type>, "omitted": true}`.
    pub fn set_messages(&mut self, messages: Option<&Value>, logging: PromptLogging, max_chars: usize) {
        let Some(list) = messages.and_then(Value::as_array) else { return };
        if logging != PromptLogging::Full || list.len() < 2 {
            return;
        }
        self.messages = Some(Value::Array(list.iter().map(|m| kept(m, max_chars)).collect()));
    }
}

/// One message as the log keeps it.
fn kept(message: &Value, max_chars: usize) -> Value {
    let Some(fields) = message.as_object() else { return message.clone() };
    let mut out = Map::new();
    let mut truncated = false;
    for (key, value) in fields {
        let value = match (key.as_str(), value) {
            ("content", Value::String(text)) => Value::String(cut(text, max_chars, &mut truncated)),
            ("content", Value::Array(parts)) => Value::Array(
                parts
                    .iter()
                    .map(|part| match (part.get("type").and_then(Value::as_str), part.get("text")) {
                        (Some("text"), Some(Value::String(text))) => {
                            json!({"type": "text", "text": cut(text, max_chars, &mut truncated)})
                        }
                        (kind, _) => json!({"type": kind.unwrap_or("unknown"), "omitted": true}),
                    })
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    if truncated {
        out.insert("truncated".into(), Value::Bool(true));
    }
    Value::Object(out)
}

/// `text` cut to `max_chars` characters, noting in `truncated` that it was.
fn cut(text: &str, max_chars: usize, truncated: &mut bool) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => {
            *truncated = true;
            text[..end].to_string()
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conversation_is_kept_with_long_texts_cut_and_images_noted() {
        let messages = json!([
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": [
                {"type": "text", "text": "Décris cette image, s'il te plaît."},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "user", "content": "encore"}
        ]);
        let mut r = DecisionRecord::default();
        r.set_messages(Some(&messages), PromptLogging::Full, 8);
        let kept = r.messages.unwrap();
        assert_eq!(kept[0], json!({"role": "system", "content": "Answer i", "truncated": true}));
        assert_eq!(kept[1]["content"][0], json!({"type": "text", "text": "Décris c"}));
        assert_eq!(kept[1]["content"][1], json!({"type": "image_url", "omitted": true}));
        assert!(!kept.to_string().contains("base64"));
        assert_eq!(kept[2], messages[2], "tool calls are kept as they came");
        assert_eq!(kept[3], json!({"role": "user", "content": "encore"}));
    }

    #[test]
    fn nothing_is_kept_for_hashed_prompts_or_a_lone_message() {
        let two = json!([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]);
        let mut r = DecisionRecord::default();
        r.set_messages(Some(&two), PromptLogging::Hash, 100);
        assert!(r.messages.is_none());
        r.set_messages(Some(&json!([{"role": "user", "content": "u"}])), PromptLogging::Full, 100);
        assert!(r.messages.is_none());
        r.set_messages(None, PromptLogging::Full, 100);
        assert!(r.messages.is_none());
    }
}
