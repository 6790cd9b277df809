//! A tap on an upstream's SSE stream as it passes to the client: it finds the `usage` the stream reports
//! (so streamed calls are counted like whole ones) and, when the gateway asked the upstream for usage that
//! the client did not ask for (`stream_options.include_usage`), takes it back out: the final usage-only event
//! is dropped and `"usage"` is removed from the other events, so the client sees the stream it asked for.

use axum::body::Bytes;
use serde_json::Value;

use crate::gateway::usage::{message_chars, usage_of, Usage};

/// Longest SSE line kept whole; a longer one is content, passed on untouched.
const MAX_LINE: usize = 64 * 1024;

/// Scans (and, when asked, rewrites) a stream chunk by chunk; chunks may split lines anywhere.
#[derive(Debug, Default)]
pub(crate) struct SseTap {
    /// Remove usage the client did not ask for.
    strip: bool,
    /// The current line so far (up to `MAX_LINE`).
    line: Vec<u8>,
    /// The current line outgrew `MAX_LINE`: the rest of it passes straight through.
    long_line: bool,
    /// The long line is a `data:` line: its bytes count as generated text (it cannot be parsed whole).
    long_data: bool,
    /// A dropped event's blank line is still to come.
    drop_blank: bool,
    /// The last usage seen.
    pub usage: Option<Usage>,
    /// Characters of generated text seen (content, reasoning, tool-call arguments): what a stream that ends
    /// before its usage event is charged from.
    pub generated_chars: usize,
    /// The first choice's content so far, up to [`HEAD_CHARS`] characters (what online learning judges).
    pub head: String,
    /// The first choice's `finish_reason`, once the stream reported one.
    pub finish_reason: Option<String>,
}

/// Characters of an answer's start kept for judging it (a refusal shows in its first words).
pub(crate) const HEAD_CHARS: usize = 200;

impl SseTap {
    /// A tap that only reads (`strip` false) or also removes usage.
    pub fn new(strip: bool) -> Self {
        Self { strip, ..Self::default() }
    }

    /// Reads one chunk and returns what to pass on.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        let mut out = if self.strip { Vec::with_capacity(chunk.len()) } else { Vec::new() };
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let end = rest.iter().position(|&b| b == b'\n');
            let (piece, complete) = match end {
                Some(i) => (&rest[..=i], true),
                None => (rest, false),
            };
            rest = &rest[piece.len()..];
            if self.long_line {
                if self.long_data {
                    self.generated_chars += piece.len();
                }
                if self.strip {
                    out.extend_from_slice(piece);
                }
                self.long_line = !complete;
                continue;
            }
            if self.line.len() + piece.len() > MAX_LINE {
                // Only a `data:` line is content; comments and other fields are not charged as output.
                self.long_data = self.line.iter().chain(piece).take(5).eq(b"data:".iter());
                if self.long_data {
                    self.generated_chars += self.line.len() + piece.len();
                }
                if self.strip {
                    out.extend_from_slice(&self.line);
                    out.extend_from_slice(piece);
                }
                self.line.clear();
                self.long_line = !complete;
                continue;
            }
            self.line.extend_from_slice(piece);
            if complete {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut out);
            }
        }
        if self.strip {
            Bytes::from(out)
        } else {
            chunk
        }
    }

    /// What is left when the stream ends (a last line without its newline).
    pub fn finish(&mut self) -> Bytes {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            return Bytes::new();
        }
        let mut out = Vec::new();
        self.line_done(&line, &mut out);
        if self.strip {
            Bytes::from(out)
        } else {
            Bytes::new()
        }
    }

    /// One whole line (with its newline, if it had one).
    fn line_done(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.is_empty() && std::mem::take(&mut self.drop_blank) {
            return;
        }
        let Some(data) = text.strip_prefix(b"data:") else {
            out.extend_from_slice(line);
            return;
        };
        let has_usage = data.windows(7).any(|w| w == b"\"usage\"");
        let Ok(mut event) = serde_json::from_slice::<Value>(data) else {
            out.extend_from_slice(line);
            return;
        };
        self.generated_chars += generated_chars(&event);
        if let Some(first) = event.get("choices").and_then(|c| c.get(0)) {
            if let Some(text) = first.pointer("/delta/content").and_then(Value::as_str) {
                let room = HEAD_CHARS.saturating_sub(self.head.chars().count());
                self.head.extend(text.chars().take(room));
            }
            if let Some(reason) = first.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
            }
        }
        if !has_usage {
            out.extend_from_slice(line);
            return;
        }
        if let Some(usage) = usage_of(&event) {
            self.usage = Some(usage);
        }
        if !self.strip {
            return;
        }
        let usage_only = event.get("choices").and_then(Value::as_array).is_none_or(Vec::is_empty)
            && event.get("usage").is_some_and(Value::is_object);
        if usage_only {
            self.drop_blank = true;
            return;
        }
        if let Some(fields) = event.as_object_mut() {
            fields.remove("usage");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.to_string().as_bytes());
        out.push(b'\n');
    }
}

/// Characters of generated text in one streamed event: every choice's delta content, reasoning and tool-call
/// arguments.
fn generated_chars(event: &Value) -> usize {
    let Some(choices) = event.get("choices").and_then(Value::as_array) else { return 0 };
    choices.iter().filter_map(|c| c.get("delta")).map(message_chars).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
                          : keep-alive\n\n\
                          data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}\n\n\
                          data: [DONE]\n\n";

    fn run(strip: bool, split: usize) -> (String, Option<Usage>) {
        let mut tap = SseTap::new(strip);
        let mut out = Vec::new();
        for chunk in STREAM.as_bytes().chunks(split) {
            out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&tap.finish());
        (String::from_utf8(out).unwrap_or_default(), tap.usage)
    }

    #[test]
    fn usage_is_found_in_a_stream_split_anywhere() {
        for split in [1, 5, 17, 64, STREAM.len()] {
            let (out, usage) = run(false, split);
            assert_eq!(usage, Some(Usage { input: 12, output: 7 }), "chunks of {split}");
            assert_eq!(out, STREAM, "a reading tap passes the stream on as it is");
        }
        let mut none = SseTap::new(false);
        none.feed(Bytes::from_static(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n"));
        assert_eq!(none.usage, None);
        let mut tap = SseTap::new(false);
        for chunk in STREAM.as_bytes().chunks(7) {
            tap.feed(Bytes::copy_from_slice(chunk));
        }
        assert_eq!(tap.generated_chars, 2, "the generated text is counted, for a stream cut before its usage");
        assert_eq!(tap.head, "hi");
        let mut tools = SseTap::new(true);
        tools.feed(Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"a\\\":1}\"}}]}}]}\n\n",
        ));
        assert_eq!(tools.generated_chars, 7);
    }

    #[test]
    fn usage_the_client_did_not_ask_for_is_taken_out() {
        for split in [1, 3, 17, STREAM.len()] {
            let (out, usage) = run(true, split);
            assert_eq!(usage, Some(Usage { input: 12, output: 7 }), "chunks of {split}");
            assert_eq!(
                out, "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\n",
                "chunks of {split}"
            );
        }
        // A line longer than the limit passes through untouched.
        let long = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "x".repeat(70_000));
        let mut tap = SseTap::new(true);
        let mut out = Vec::new();
        for chunk in long.as_bytes().chunks(4096) {
            out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(chunk)));
        }
        out.extend_from_slice(&tap.finish());
        assert_eq!(out, long.as_bytes());
    }

    #[test]
    fn only_data_lines_count_as_generated_text() {
        let comment = format!(": {}\n", "x".repeat(3 * MAX_LINE));
        let field = format!("event: {}\n", "y".repeat(MAX_LINE + 1));
        let long_data = format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n", "z".repeat(MAX_LINE));
        for strip in [false, true] {
            for split in [1000, 4096, 100_000] {
                let mut tap = SseTap::new(strip);
                let mut out = Vec::new();
                let text = format!("{}{comment}\n{field}\n: short comment\n\n{}", &STREAM[..61], &STREAM[61..]);
                for chunk in text.as_bytes().chunks(split) {
                    out.extend_from_slice(&tap.feed(Bytes::copy_from_slice(chunk)));
                }
                out.extend_from_slice(&tap.finish());
                assert_eq!(tap.generated_chars, 2, "strip {strip}, chunks of {split}: only \"hi\" is generated");
                assert!(out.len() > 3 * MAX_LINE, "the long lines pass on");
                // A long data line cannot be parsed whole: its bytes are counted, as content.
                for chunk in long_data.as_bytes().chunks(split) {
                    tap.feed(Bytes::copy_from_slice(chunk));
                }
                assert!(
                    tap.generated_chars >= 2 + MAX_LINE,
                    "strip {strip}, chunks of {split}: {}",
                    tap.generated_chars
                );
            }
        }
    }
}
