//! Cached answers are kept whole, in OpenAI's `chat.completion` shape, whichever way they came: a streamed
//! answer is assembled from its SSE chunks ([`Assembler`]), and a hit on a streamed request is replayed as
//! SSE chunks ([`chunks`]). The Messages API translates both as it translates any answer.

use serde_json::{json, Map, Value};

/// Finish reasons of an answer worth keeping (not a content filter's cut, not an error).
const KEPT_FINISH: [&str; 3] = ["stop", "tool_calls", "length"];

/// Whether a whole answer may be cached: every choice finished normally and said something.
pub fn cacheable(answer: &Value) -> bool {
    let Some(choices) = answer.get("choices").and_then(Value::as_array).filter(|c| !c.is_empty()) else {
        return false;
    };
    choices.iter().all(|c| {
        let finished = c.get("finish_reason").and_then(Value::as_str).is_some_and(|f| KEPT_FINISH.contains(&f));
        let message = c.get("message");
        let text = message.and_then(|m| m.get("content")).and_then(Value::as_str).is_some_and(|t| !t.is_empty());
        let calls = message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).is_some_and(|t| !t.is_empty());
        finished && (text || calls)
    })
}

/// One choice being assembled.
#[derive(Debug, Default)]
struct Choice {
    role: Option<String>,
    content: String,
    /// Tool calls by their stream index: id, name, arguments.
    calls: Vec<(Option<String>, String, String)>,
    finish: Option<String>,
}

/// Builds the whole answer from a stream's chunks as they pass (`data:` lines, split anywhere); gives up
/// past `max_bytes` of answer.
#[derive(Debug)]
pub struct Assembler {
    line: Vec<u8>,
    head: Map<String, Value>,
    choices: Vec<Choice>,
    usage: Option<Value>,
    bytes: usize,
    max_bytes: usize,
    /// Too long, or a line that does not parse: nothing is cached.
    spoiled: bool,
}

impl Assembler {
    /// An assembler that keeps at most `max_bytes` of answer.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            head: Map::new(),
            choices: Vec::new(),
            usage: None,
            bytes: 0,
            max_bytes,
            spoiled: false,
        }
    }

    /// Reads a chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.spoiled {
            return;
        }
        self.bytes += chunk.len();
        if self.bytes > self.max_bytes {
            self.spoiled = true;
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            } else {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else { return };
        let data = data.trim_ascii();
        if data == b"[DONE]" || data.is_empty() {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            self.spoiled = true;
            return;
        };
        for field in ["id", "model", "created", "system_fingerprint"] {
            if let Some(v) = event.get(field).filter(|v| !v.is_null()) {
                self.head.entry(field).or_insert_with(|| v.clone());
            }
        }
        if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for c in event.get("choices").and_then(Value::as_array).into_iter().flatten() {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if index >= 16 {
                self.spoiled = true;
                return;
            }
            if self.choices.len() <= index {
                self.choices.resize_with(index + 1, Choice::default);
            }
            let choice = &mut self.choices[index];
            let delta = c.get("delta").unwrap_or(&Value::Null);
            if let Some(role) = delta.get("role").and_then(Value::as_str) {
                choice.role = Some(role.to_string());
            }
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                choice.content.push_str(text);
            }
            for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                let at = call.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                if at >= 128 {
                    self.spoiled = true;
                    return;
                }
                if choice.calls.len() <= at {
                    choice.calls.resize_with(at + 1, Default::default);
                }
                let slot = &mut choice.calls[at];
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    slot.0 = Some(id.to_string());
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    slot.1.push_str(name);
                }
                if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    slot.2.push_str(arguments);
                }
            }
            if let Some(finish) = c.get("finish_reason").and_then(Value::as_str) {
                choice.finish = Some(finish.to_string());
            }
        }
    }

    /// The whole answer, when the stream completed (every choice finished) and nothing spoiled it. A last line
    /// without its newline counts.
    pub fn answer(mut self) -> Option<Value> {
        let last = std::mem::take(&mut self.line);
        if !last.is_empty() && !self.spoiled {
            self.line_done(&last);
        }
        if self.spoiled || self.choices.is_empty() || self.choices.iter().any(|c| c.finish.is_none()) {
            return None;
        }
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                let mut message = json!({"role": c.role.unwrap_or_else(|| "assistant".into()), "content": c.content});
                if !c.calls.is_empty() {
                    let calls: Vec<Value> = c
                        .calls
                        .into_iter()
                        .map(|(id, name, arguments)| {
                            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
                        })
                        .collect();
                    message["tool_calls"] = Value::Array(calls);
                    if message["content"] == "" {
                        message["content"] = Value::Null;
                    }
                }
                json!({"index": index, "message": message, "finish_reason": c.finish})
            })
            .collect();
        let mut answer = self.head;
        answer.insert("object".into(), json!("chat.completion"));
        answer.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            answer.insert("usage".into(), usage);
        }
        Some(Value::Object(answer))
    }
}

/// A whole answer as the SSE events of a stream: per choice, the role, the text and the tool calls, then
/// its finish reason; the usage when the client asked for it (`include_usage`); then `[DONE]`.
pub fn chunks(answer: &Value, include_usage: bool) -> Vec<String> {
    let head = |choices: Value| {
        let mut chunk = json!({"object": "chat.completion.chunk", "choices": choices});
        for field in ["id", "model", "created", "system_fingerprint"] {
            if let Some(v) = answer.get(field) {
                chunk[field] = v.clone();
            }
        }
        chunk
    };
    let mut events = Vec::new();
    for (i, choice) in answer.get("choices").and_then(Value::as_array).into_iter().flatten().enumerate() {
        let index = choice.get("index").cloned().unwrap_or(json!(i));
        let message = choice.get("message").unwrap_or(&Value::Null);
        let mut delta = json!({"role": message.get("role").cloned().unwrap_or(json!("assistant"))});
        if let Some(text) = message.get("content").and_then(Value::as_str) {
            delta["content"] = json!(text);
        }
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let indexed: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(at, call)| {
                    let mut call = call.clone();
                    call["index"] = json!(at);
                    call
                })
                .collect();
            delta["tool_calls"] = Value::Array(indexed);
        }
        events.push(head(json!([{"index": index, "delta": delta, "finish_reason": null}])));
        let finish = choice.get("finish_reason").cloned().unwrap_or(json!("stop"));
        events.push(head(json!([{"index": index, "delta": {}, "finish_reason": finish}])));
    }
    if include_usage {
        if let Some(usage) = answer.get("usage") {
            let mut last = head(json!([]));
            last["usage"] = usage.clone();
            events.push(last);
        }
    }
    let mut out: Vec<String> = events.into_iter().map(|e| format!("data: {e}\n\n")).collect();
    out.push("data: [DONE]\n\n".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Value {
        json!({"id": "c1", "object": "chat.completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
    }

    #[test]
    fn a_replayed_stream_assembles_back_into_the_answer() {
        let events = chunks(&answer(), true);
        assert_eq!(events.last().map(String::as_str), Some("data: [DONE]\n\n"));
        let mut assembler = Assembler::new(1 << 20);
        // Split mid-line, as a network would.
        let all = events.concat();
        for piece in all.as_bytes().chunks(7) {
            assembler.feed(piece);
        }
        assert_eq!(assembler.answer(), Some(answer()));
        // Without include_usage, no usage event.
        assert!(!chunks(&answer(), false).concat().contains("total_tokens"));
    }

    #[test]
    fn text_deltas_are_joined_and_an_unfinished_stream_is_not_kept() {
        let stream = "data: {\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n";
        let mut unfinished = Assembler::new(1 << 20);
        unfinished.feed(stream.as_bytes());
        assert_eq!(unfinished.answer(), None, "no finish_reason: the stream was cut");
        let mut whole = Assembler::new(1 << 20);
        whole.feed(stream.as_bytes());
        whole.feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let answer = whole.answer().unwrap();
        assert_eq!(answer["choices"][0]["message"]["content"], "Hello");
        assert!(cacheable(&answer));
        let mut small = Assembler::new(10);
        small.feed(stream.as_bytes());
        assert_eq!(small.answer(), None, "past max_bytes");
    }

    #[test]
    fn only_finished_non_empty_answers_are_cacheable() {
        assert!(cacheable(&answer()));
        let filtered = json!({"choices": [{"message": {"content": "x"}, "finish_reason": "content_filter"}]});
        let empty = json!({"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]});
        assert!(!cacheable(&filtered) && !cacheable(&empty) && !cacheable(&json!({"choices": []})));
    }
}
