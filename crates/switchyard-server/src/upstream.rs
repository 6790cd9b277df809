//! One upstream call: the request to a model's OpenAI-compatible `base_url`, how it ended (success, a
//! failure worth falling back from, or the client's own error), and the token usage it reports, for
//! whole responses and for streams alike.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{json, Value};
use switchyard_core::ModelCard;

use crate::app::AppState;

/// How one upstream call ended, when it did not succeed.
pub(crate) enum Failure {
    /// Worth trying the next candidate: the status, if the upstream answered, and why.
    Retryable(Option<u16>, String),
    /// The upstream rejected the request itself: pass its answer on.
    ClientError(Response),
}

/// Tokens an upstream reported for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens.
    pub input: u64,
    /// Completion tokens.
    pub output: u64,
}

/// A successful call: the response to pass on and, for a whole (not streamed) response, its usage.
pub(crate) struct Forwarded {
    /// Status, content type and body (a stream when the client asked for one).
    pub response: Response,
    /// The `usage` the upstream reported in a whole response.
    pub usage: Option<Usage>,
}

/// Sends `body` to the model's upstream.
pub(crate) async fn forward(
    state: &AppState,
    card: &ModelCard,
    body: &Value,
    stream: bool,
) -> Result<Forwarded, Failure> {
    let base = card.base_url.as_deref().unwrap_or_default().trim_end_matches('/');
    let mut request = state
        .http
        .post(format!("{base}/chat/completions"))
        .timeout(Duration::from_millis(state.config.server.upstream_timeout_ms))
        .json(body);
    if let Some(var) = &card.api_key_env {
        if let Ok(key) = std::env::var(var) {
            request = request.bearer_auth(key);
        }
    }
    let upstream = request.send().await.map_err(|e| Failure::Retryable(None, describe(&e)))?;
    let status = upstream.status();
    let code = Some(status.as_u16());
    if status.is_server_error() || matches!(status.as_u16(), 402 | 408 | 429) {
        return Err(Failure::Retryable(code, format!("HTTP {}", status.as_u16())));
    }
    let content_type = upstream.headers().get("content-type").cloned();
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    if !status.is_success() {
        let bytes = upstream.bytes().await.map_err(|e| Failure::Retryable(code, describe(&e)))?;
        // A 400 that says the account's budget or quota is spent is the upstream's problem, not the request's.
        if status.as_u16() == 400 && budget_exhausted(&bytes) {
            return Err(Failure::Retryable(code, "HTTP 400 (budget or quota exhausted)".into()));
        }
        return Err(Failure::ClientError(builder.body(Body::from(bytes)).unwrap_or_default()));
    }
    if stream {
        let mut chunks = upstream.bytes_stream();
        // Wait for the first chunk: a failure before it falls back to the next model.
        let first = match chunks.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => return Err(Failure::Retryable(code, describe(&e))),
            None => return Err(Failure::Retryable(code, "empty stream".into())),
        };
        let rest = chunks.map(|item| {
            Ok::<_, std::convert::Infallible>(match item {
                Ok(bytes) => bytes,
                Err(e) => {
                    let event = json!({"error": {"message": format!("upstream stream failed: {}", describe(&e)), "type": "server_error", "code": "upstream_stream_error"}});
                    axum::body::Bytes::from(format!("data: {event}\n\n"))
                }
            })
        });
        let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(first) }).chain(rest);
        return Ok(Forwarded { response: builder.body(Body::from_stream(body)).unwrap_or_default(), usage: None });
    }
    let bytes = upstream.bytes().await.map_err(|e| Failure::Retryable(code, describe(&e)))?;
    let usage = serde_json::from_slice::<Value>(&bytes).ok().and_then(|reply| usage_of(&reply));
    Ok(Forwarded { response: builder.body(Body::from(bytes)).unwrap_or_default(), usage })
}

/// The `usage` object of a completion or of a stream's final chunk.
fn usage_of(reply: &Value) -> Option<Usage> {
    let usage = reply.get("usage").filter(|u| u.is_object())?;
    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage { input: count("prompt_tokens"), output: count("completion_tokens") };
    (usage.input + usage.output > 0).then_some(usage)
}

/// Finds the `usage` a stream reports (when the client asked for `stream_options.include_usage`) in the SSE
/// `data:` lines as they pass through.
#[derive(Debug, Default)]
pub(crate) struct UsageScanner {
    line: Vec<u8>,
    /// The last usage seen.
    pub usage: Option<Usage>,
}

/// Longest SSE line kept for scanning; longer lines are content, not usage.
const MAX_LINE: usize = 64 * 1024;

impl UsageScanner {
    /// Reads one chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            if self.line.len() + end <= MAX_LINE {
                self.line.extend_from_slice(&rest[..end]);
                self.line_done();
            }
            self.line.clear();
            rest = &rest[end + 1..];
        }
        if self.line.len() + rest.len() <= MAX_LINE {
            self.line.extend_from_slice(rest);
        }
    }

    fn line_done(&mut self) {
        let Some(data) = self.line.strip_prefix(b"data:") else { return };
        if !data.windows(7).any(|w| w == b"\"usage\"") {
            return;
        }
        if let Some(usage) = serde_json::from_slice::<Value>(data).ok().and_then(|v| usage_of(&v)) {
            self.usage = Some(usage);
        }
    }
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

/// Whether an upstream error body says the account ran out of budget, quota or credit.
fn budget_exhausted(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    ["insufficient_quota", "quota", "budget", "credit", "billing"].iter().any(|k| text.contains(k))
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_in_a_stream_split_anywhere() {
        let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
                      data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":7}}\n\n\
                      data: [DONE]\n\n";
        for split in [1, 5, 17, 64, stream.len()] {
            let mut scanner = UsageScanner::default();
            for chunk in stream.as_bytes().chunks(split) {
                scanner.feed(chunk);
            }
            assert_eq!(scanner.usage, Some(Usage { input: 12, output: 7 }), "chunks of {split}");
        }
        let mut none = UsageScanner::default();
        none.feed(b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
        assert_eq!(none.usage, None);
    }

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

    #[test]
    fn quota_errors_are_told_apart_from_bad_requests() {
        assert!(budget_exhausted(br#"{"error": {"code": "insufficient_quota"}}"#));
        assert!(!budget_exhausted(br#"{"error": {"message": "max_tokens is too large"}}"#));
    }
}
