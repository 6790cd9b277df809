//! Streams: an Anthropic Messages event stream as OpenAI chat-completion chunks ([`ToOpenAi`], from an
//! Anthropic upstream), and OpenAI chunks as Messages events ([`FromOpenAi`], for a `/v1/messages` client).
//! Both are fed the stream's bytes as they come (split anywhere) and return what to pass on.

use axum::body::Bytes;
use serde_json::{json, Value};

use super::response::{usage_from_openai, usage_to_openai};
use super::{anthropic_error, finish_reason, stop_reason};

/// The longest SSE event kept whole; a longer one ends the stream with an error event.
const MAX_EVENT: usize = 8 * 1024 * 1024;

/// One server-sent event: its `event:` name (if any) and its `data:` lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    name: Option<String>,
    data: String,
}

/// Splits a byte stream into server-sent events (LF or CRLF lines; comments skipped).
#[derive(Debug, Default)]
struct Events {
    buffer: Vec<u8>,
    /// How much of `buffer` was searched for an event's end already.
    scanned: usize,
    overflow: bool,
}

impl Events {
    /// The events that `chunk` completes (each byte is searched once; the buffer is drained once a chunk).
    fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend(chunk.iter().filter(|&&b| b != b'\r'));
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned.saturating_sub(1);
        while let Some(at) = self.buffer[from..].windows(2).position(|w| w == b"\n\n") {
            let end = from + at + 2;
            events.extend(parse(&self.buffer[start..end]));
            start = end;
            from = end;
        }
        self.buffer.drain(..start);
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_EVENT {
            self.buffer.clear();
            self.scanned = 0;
            self.overflow = true;
        }
        events
    }

    /// The last event, when the stream ends without a blank line after it.
    fn finish(&mut self) -> Option<Event> {
        self.scanned = 0;
        let raw = std::mem::take(&mut self.buffer);
        parse(&raw)
    }
}

/// One event's lines.
fn parse(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let mut name = None;
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (name.is_some() || !data.is_empty()).then(|| Event { name, data: data.join("\n") })
}

/// The message of an Anthropic stream's first event when that event is an `error` (what `head`, the stream's
/// start, holds of it).
pub(crate) fn first_event_error(head: &[u8]) -> Option<String> {
    let mut events = Events::default();
    let first = events.push(head).into_iter().next().or_else(|| events.finish())?;
    let data: Value = serde_json::from_str(&first.data).ok()?;
    let is_error = first.name.as_deref() == Some("error") || data.get("type").and_then(Value::as_str) == Some("error");
    is_error.then(|| data.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error").to_string())
}

/// An OpenAI `data:` event.
fn openai_event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// An Anthropic event: its type as the `event:` name and its body as the data.
fn anthropic_event(value: &Value) -> String {
    let name = value.get("type").and_then(Value::as_str).unwrap_or("message");
    format!("event: {name}\ndata: {value}\n\n")
}

/// Anthropic events in, OpenAI chunks out (the usage as a final usage-only chunk, then `data: [DONE]`).
#[derive(Debug)]
pub(crate) struct ToOpenAi {
    events: Events,
    created: u64,
    id: String,
    model: String,
    /// Each Anthropic content block that is a tool call: its index, its OpenAI tool-call index, and whether
    /// any of its input came.
    tools: Vec<(u64, usize, bool)>,
    usage: Value,
    stop_reason: Option<String>,
    done: bool,
}

impl ToOpenAi {
    /// A transcoder for one stream; `created` stamps its chunks.
    pub(crate) fn new(created: u64) -> Self {
        Self {
            events: Events::default(),
            created,
            id: String::new(),
            model: String::new(),
            tools: Vec::new(),
            usage: json!({}),
            stop_reason: None,
            done: false,
        }
    }

    /// Reads one chunk and returns the OpenAI chunks it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let events = self.events.push(chunk);
        let mut out = String::new();
        for event in events {
            out.push_str(&self.event(&event));
        }
        if self.events.overflow && !self.done {
            self.done = true;
            out.push_str(&openai_event(
                &json!({"error": {"message": "an upstream event was too large", "type": "api_error"}}),
            ));
        }
        Bytes::from(out)
    }

    /// What is left when the upstream's stream ends: a stream cut before `message_stop` ends with an error
    /// event (the answer is incomplete, and must not pass for a whole one).
    pub(crate) fn finish(&mut self) -> Bytes {
        let last = self.events.finish();
        let mut out = last.map(|e| self.event(&e)).unwrap_or_default();
        if !self.done {
            self.done = true;
            let error =
                json!({"error": {"message": "the upstream's stream ended before message_stop", "type": "api_error"}});
            out.push_str(&openai_event(&error));
        }
        Bytes::from(out)
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        openai_event(&json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }))
    }

    /// A `content_block_start`: a tool call's first chunk (its id and name), or a text block's first text.
    fn block_start(&mut self, data: &Value) -> String {
        let block = data.get("content_block").unwrap_or(&Value::Null);
        let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let tool = self.tools.len();
                self.tools.push((index, tool, false));
                let call = json!({"index": tool, "id": block.get("id"), "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""}});
                self.chunk(json!({"tool_calls": [call]}), None)
            }
            Some("text") => match block.get("text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                Some(text) => self.chunk(json!({"content": text}), None),
                None => String::new(),
            },
            _ => String::new(),
        }
    }

    fn event(&mut self, event: &Event) -> String {
        if self.done {
            return String::new();
        }
        let Ok(data) = serde_json::from_str::<Value>(&event.data) else { return String::new() };
        let kind = data.get("type").and_then(Value::as_str).or(event.name.as_deref()).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = data.get("message").unwrap_or(&Value::Null);
                self.id = message.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                self.model = message.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
                merge(&mut self.usage, message.get("usage"));
                self.chunk(json!({"role": "assistant", "content": ""}), None)
            }
            "content_block_start" => self.block_start(&data),
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.chunk(json!({"content": delta.get("text")}), None),
                    Some("input_json_delta") => {
                        let partial = delta.get("partial_json").and_then(Value::as_str).unwrap_or_default();
                        let Some(entry) = self.tools.iter_mut().find(|(i, _, _)| *i == index) else {
                            return String::new();
                        };
                        if partial.is_empty() {
                            return String::new();
                        }
                        entry.2 = true;
                        let call = json!({"index": entry.1, "function": {"arguments": partial}});
                        self.chunk(json!({"tool_calls": [call]}), None)
                    }
                    _ => String::new(),
                }
            }
            "content_block_stop" => {
                // A call without input is `{}`, as in a whole answer (an empty string is not JSON).
                let index = data.get("index").and_then(Value::as_u64).unwrap_or(0);
                match self.tools.iter().find(|(i, _, _)| *i == index) {
                    Some(&(_, tool, false)) => {
                        self.chunk(json!({"tool_calls": [{"index": tool, "function": {"arguments": "{}"}}]}), None)
                    }
                    _ => String::new(),
                }
            }
            "message_delta" => {
                self.stop_reason = data.pointer("/delta/stop_reason").and_then(Value::as_str).map(str::to_string);
                merge(&mut self.usage, data.get("usage"));
                String::new()
            }
            "message_stop" => {
                self.done = true;
                let finish = finish_reason(self.stop_reason.as_deref());
                let usage = usage_to_openai(Some(&self.usage));
                let tail = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": usage});
                format!("{}{}data: [DONE]\n\n", self.chunk(json!({}), Some(finish)), openai_event(&tail))
            }
            "error" => {
                self.done = true;
                let error = data.get("error").unwrap_or(&Value::Null);
                openai_event(&json!({"error": {"message": error.get("message"), "type": error.get("type")}}))
            }
            _ => String::new(),
        }
    }
}

/// Copies the numbers of `from` (an Anthropic usage object) into `into`.
fn merge(into: &mut Value, from: Option<&Value>) {
    if let (Some(into), Some(Value::Object(from))) = (into.as_object_mut(), from) {
        for (k, v) in from.iter().filter(|(_, v)| v.is_number()) {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// The content block a [`FromOpenAi`] has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u64),
    Tool(u64),
}

/// OpenAI chunks in, Anthropic events out: `message_start` and a `ping`, a content block per run of text
/// and per tool call (`text_delta`, `input_json_delta`), then `message_delta` with the stop reason and the
/// usage, and `message_stop`. An error event becomes Anthropic's `error` event.
#[derive(Debug, Default)]
pub(crate) struct FromOpenAi {
    events: Events,
    started: bool,
    open: Option<Open>,
    next_block: u64,
    /// The block of each OpenAI tool-call index.
    tools: Vec<(u64, u64)>,
    finish: Option<String>,
    usage: Option<Value>,
    done: bool,
}

impl FromOpenAi {
    /// Reads one chunk and returns the Anthropic events it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let events = self.events.push(chunk);
        let mut out = String::new();
        for event in events {
            self.event(&event, &mut out);
        }
        if self.events.overflow && !self.done {
            self.done = true;
            out.push_str(&anthropic_event(&anthropic_error(
                502,
                &json!({"error": {"message": "an upstream event was too large"}}),
            )));
        }
        Bytes::from(out)
    }

    /// What is left when the stream ends: the last event, and the closing events if the answer finished (a
    /// stream that ends before its `finish_reason` ends with an error event: the answer is incomplete).
    pub(crate) fn finish(&mut self) -> Bytes {
        let mut out = String::new();
        if let Some(last) = self.events.finish() {
            self.event(&last, &mut out);
        }
        if !self.done {
            if self.finish.is_some() {
                self.close(&mut out);
            } else {
                self.done = true;
                let error = json!({"error": {"message": "the stream ended before the answer was complete"}});
                out.push_str(&anthropic_event(&anthropic_error(502, &error)));
            }
        }
        Bytes::from(out)
    }

    fn event(&mut self, event: &Event, out: &mut String) {
        if self.done {
            return;
        }
        if event.data.trim() == "[DONE]" {
            self.close(out);
            return;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else { return };
        if chunk.get("error").is_some() {
            self.done = true;
            out.push_str(&anthropic_event(&anthropic_error(502, &chunk)));
            return;
        }
        if !self.started {
            self.started = true;
            let id = chunk.get("id").and_then(Value::as_str).unwrap_or("switchyard");
            let message = json!({"type": "message_start", "message": {
                "id": if id.starts_with("msg_") { id.to_string() } else { format!("msg_{id}") },
                "type": "message", "role": "assistant", "model": chunk.get("model"), "content": [],
                "stop_reason": null, "stop_sequence": null, "usage": usage_from_openai(chunk.get("usage")),
            }});
            out.push_str(&anthropic_event(&message));
            out.push_str(&anthropic_event(&json!({"type": "ping"})));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.start(out, json!({"type": "text", "text": ""}), Open::Text),
            };
            let delta =
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}});
            out.push_str(&anthropic_event(&delta));
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.tool_call(call, out);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
    }

    /// One tool-call delta: a new call opens a `tool_use` block, its arguments are `input_json_delta`s.
    fn tool_call(&mut self, call: &Value, out: &mut String) {
        let tool = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let index = match self.tools.iter().find(|(t, _)| *t == tool) {
            Some(&(_, block)) => block,
            None => {
                let id = super::tool_id(call.get("id").and_then(Value::as_str), self.tools.len());
                let block = json!({"type": "tool_use", "id": id,
                    "name": call.pointer("/function/name").cloned().unwrap_or_default(), "input": {}});
                let index = self.start(out, block, Open::Tool);
                self.tools.push((tool, index));
                index
            }
        };
        if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
            let delta = json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": arguments}});
            out.push_str(&anthropic_event(&delta));
        }
    }

    /// Closes the open block and opens `block` as the next one; returns its index.
    fn start(&mut self, out: &mut String, block: Value, open: fn(u64) -> Open) -> u64 {
        self.stop_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(open(index));
        out.push_str(&anthropic_event(&json!({"type": "content_block_start", "index": index, "content_block": block})));
        index
    }

    fn stop_block(&mut self, out: &mut String) {
        if let Some(Open::Text(index) | Open::Tool(index)) = self.open.take() {
            out.push_str(&anthropic_event(&json!({"type": "content_block_stop", "index": index})));
        }
    }

    /// The closing events: the open block's stop, `message_delta` (stop reason, usage) and `message_stop`.
    fn close(&mut self, out: &mut String) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.started {
            let error = json!({"error": {"message": "the upstream's stream ended without an answer"}});
            out.push_str(&anthropic_event(&anthropic_error(502, &error)));
            return;
        }
        self.stop_block(out);
        // Some OpenAI-compatible servers end a tool call with "stop": the calls are what the client must act on.
        let stop = match self.finish.as_deref() {
            Some("length") => "max_tokens",
            _ if !self.tools.is_empty() => "tool_use",
            finish => stop_reason(finish),
        };
        let mut usage = usage_from_openai(self.usage.as_ref());
        if let Some(u) = usage.as_object_mut() {
            u.remove("cache_creation_input_tokens");
        }
        let delta = json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage});
        out.push_str(&anthropic_event(&delta));
        out.push_str(&anthropic_event(&json!({"type": "message_stop"})));
    }
}

#[cfg(test)]
mod tests;
