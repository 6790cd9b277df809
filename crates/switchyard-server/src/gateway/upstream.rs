//! One upstream call: the request to a deployment's `base_url` (OpenAI's API, or Anthropic's translated both
//! ways by [`crate::anthropic`]), how it ended (success, a
//! failure worth falling back from, or the client's own error), and the token usage it reports, for
//! whole responses and for streams alike.
//!
//! Three limits bound a call, none of them its total length: `connect_timeout_ms` to connect,
//! `first_byte_timeout_ms` to the response headers and, for a stream, its first event (past it the next
//! deployment is tried), and `idle_timeout_ms` between chunks. A stream that keeps sending is never cut.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use switchyard_core::UpstreamApi;

use crate::gateway::deployment::Upstream;
use crate::gateway::usage::{answer_of, usage_of, Usage};

/// How one upstream call ended, when it did not succeed.
pub(crate) enum Failure {
    /// The upstream's problem, not the request's: worth trying the next deployment.
    Upstream(Fault),
    /// The upstream rejected the request itself: pass its answer on.
    ClientError(Response),
}

/// Why an upstream call failed, for the log, the metrics and the client's 502.
pub(crate) struct Fault {
    /// The HTTP status, if the upstream answered.
    pub status: Option<u16>,
    /// The `outcome` label: `failed`, `timeout` or `auth_error`.
    pub outcome: &'static str,
    /// What happened, in words.
    pub why: String,
}

impl Fault {
    fn fail(status: Option<u16>, outcome: &'static str, why: impl Into<String>) -> Failure {
        Failure::Upstream(Self { status, outcome, why: why.into() })
    }
}

/// The time limits of one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// From sending the request to the response headers and, for a stream, its first event.
    pub first_byte: Duration,
    /// The longest silence between two chunks.
    pub idle: Duration,
}

/// A successful call: the response to pass on and, for a whole (not streamed) response, its usage.
pub(crate) struct Forwarded {
    /// Status, content type and body (a stream when the client asked for one).
    pub response: Response,
    /// The `usage` the upstream reported in a whole response.
    pub usage: Option<Usage>,
    /// A whole response's first choice: its text and `finish_reason` (what online learning judges).
    pub answer: Option<(String, Option<String>)>,
    /// Characters a whole response generated (every choice's content, reasoning and tool-call arguments):
    /// what it is charged from when it reports no usage.
    pub generated_chars: usize,
    /// A whole response, in OpenAI's shape (what the response cache keeps).
    pub whole: Option<Value>,
}

/// The most bytes kept of a stream before its first `data:` event; an upstream that sends more without one
/// fails the attempt.
const MAX_STREAM_HEAD: usize = 64 * 1024;

/// Sends `body` to the deployment.
pub(crate) async fn forward(
    http: &reqwest::Client,
    up: &Upstream,
    body: &Value,
    stream: bool,
    limits: Limits,
) -> Result<Forwarded, Failure> {
    let deadline = tokio::time::Instant::now() + limits.first_byte;
    let first_byte_ms = limits.first_byte.as_millis();
    let anthropic = up.api == UpstreamApi::Anthropic;
    let request = request_to(http, up, body);
    let upstream = match tokio::time::timeout_at(deadline, request.send()).await {
        Err(_) => {
            let why = format!("no response within {first_byte_ms} ms (server.first_byte_timeout_ms)");
            return Err(Fault::fail(None, "timeout", why));
        }
        Ok(Err(e)) => return Err(Fault::fail(None, outcome_of(&e), describe(&e))),
        Ok(Ok(response)) => response,
    };
    let status = upstream.status();
    let code = Some(status.as_u16());
    if let Some(failure) = failed_status(status) {
        return Err(failure);
    }
    let content_type = upstream.headers().get("content-type").cloned();
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    if !status.is_success() {
        let bytes = read_all(upstream, limits.idle).await.map_err(|(outcome, why)| Fault::fail(code, outcome, why))?;
        // A 400 that says the account's budget or quota is spent is the upstream's problem, not the request's.
        if status.as_u16() == 400 && budget_exhausted(&bytes) {
            return Err(Fault::fail(code, "failed", "HTTP 400 (budget or quota exhausted)"));
        }
        let bytes = match serde_json::from_slice::<Value>(&bytes) {
            Ok(error) if anthropic => crate::anthropic::openai_error(error).to_string().into_bytes(),
            _ => bytes,
        };
        return Err(Failure::ClientError(builder.body(Body::from(bytes)).unwrap_or_default()));
    }
    if stream {
        let mut chunks = upstream.bytes_stream();
        let head = stream_head(&mut chunks, deadline, first_byte_ms, code).await?;
        // Anthropic may answer 200 and then an `error` event (overloaded): nothing was sent, so fall back.
        if let Some(why) = anthropic.then(|| crate::anthropic::stream::first_event_error(&head)).flatten() {
            return Err(Fault::fail(code, "failed", format!("the stream's first event was an error: {why}")));
        }
        let body = stream_body(head, chunks, anthropic, limits.idle);
        let response = builder.header("content-type", "text/event-stream").body(body).unwrap_or_default();
        return Ok(Forwarded { response, usage: None, answer: None, generated_chars: 0, whole: None });
    }
    let bytes = read_all(upstream, limits.idle).await.map_err(|(outcome, why)| Fault::fail(code, outcome, why))?;
    // A success that is not JSON (a proxy's HTML page, a stream the client did not ask for) is no answer.
    let Ok(mut reply) = serde_json::from_slice::<Value>(&bytes) else {
        let why = format!("HTTP {} with a body that is not JSON", status.as_u16());
        return Err(Fault::fail(code, "failed", why));
    };
    let bytes = if anthropic {
        reply = crate::anthropic::response::to_openai(&reply, unix_now());
        builder = builder.header("content-type", "application/json");
        reply.to_string().into_bytes()
    } else {
        bytes
    };
    let generated_chars = reply.get("choices").and_then(Value::as_array).map_or(0, |choices| {
        choices.iter().filter_map(|c| c.get("message")).map(crate::gateway::usage::message_chars).sum()
    });
    Ok(Forwarded {
        response: builder.body(Body::from(bytes)).unwrap_or_default(),
        usage: usage_of(&reply),
        answer: answer_of(&reply),
        generated_chars,
        whole: Some(reply),
    })
}

/// A status that fails the attempt before its body is read: a redirect (not followed: the client's policy; the
/// target is not named, its URL may carry secrets), a server error, 402, 408, 429, or the gateway's own key or
/// model name refused (a rotated provider key, a deployment that is gone).
fn failed_status(status: reqwest::StatusCode) -> Option<Failure> {
    let code = Some(status.as_u16());
    if status.is_redirection() {
        let why = format!(
            "HTTP {} redirect to another URL; redirects are not followed, set base_url to the final address",
            status.as_u16()
        );
        return Some(Fault::fail(code, "failed", why));
    }
    if status.is_server_error() || matches!(status.as_u16(), 402 | 408 | 429) {
        return Some(Fault::fail(code, "failed", format!("HTTP {}", status.as_u16())));
    }
    auth_problem(status.as_u16())
        .map(|what| Fault::fail(code, "auth_error", format!("HTTP {} ({what})", status.as_u16())))
}

/// The request to a deployment: OpenAI's chat completions with a bearer key, or Anthropic's Messages API
/// (the body translated) with `x-api-key` and `anthropic-version`.
fn request_to(http: &reqwest::Client, up: &Upstream, body: &Value) -> reqwest::RequestBuilder {
    let key = up.api_key_env.as_ref().and_then(|var| std::env::var(var).ok());
    if up.api == UpstreamApi::Anthropic {
        let request = http
            .post(format!("{}/v1/messages", up.base_url))
            .header("anthropic-version", crate::anthropic::VERSION)
            .json(&crate::anthropic::request::from_openai(body, &up.upstream_model));
        return match key {
            Some(key) => request.header("x-api-key", key),
            None => request,
        };
    }
    let request = http.post(format!("{}/chat/completions", up.base_url)).json(body);
    match key {
        Some(key) => request.bearer_auth(key),
        None => request,
    }
}

/// A stream's body for the client: the head already read, then the rest under the idle limit; an Anthropic
/// stream, head included, as OpenAI chunks (the idle limit then watches the translated chunks).
fn stream_body(
    head: Vec<u8>,
    chunks: impl Stream<Item = reqwest::Result<Bytes>> + Unpin + Send + 'static,
    anthropic: bool,
    idle: Duration,
) -> Body {
    if anthropic {
        let all = futures_util::stream::iter([Ok(Bytes::from(head))]).chain(chunks);
        return Body::from_stream(idle_limited(Box::pin(to_openai_chunks(all)), idle));
    }
    let first = futures_util::stream::once(async move { Ok::<_, Infallible>(Bytes::from(head)) });
    Body::from_stream(first.chain(idle_limited(chunks, idle)))
}

/// An Anthropic upstream's event stream as OpenAI chunks ([`crate::anthropic::stream::ToOpenAi`]).
fn to_openai_chunks(
    events: impl Stream<Item = reqwest::Result<Bytes>> + Unpin + Send + 'static,
) -> impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static {
    let start = (events, crate::anthropic::stream::ToOpenAi::new(unix_now()), false);
    futures_util::stream::unfold(start, |(mut events, mut t, ended)| async move {
        if ended {
            return None;
        }
        match events.next().await {
            Some(Ok(chunk)) => Some((Ok(t.feed(&chunk)), (events, t, false))),
            Some(Err(e)) => Some((Err(e), (events, t, true))),
            None => Some((Ok(t.finish()), (events, t, true))),
        }
    })
}

/// Seconds since the Unix epoch: a translated answer's `created`.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads a stream up to its first event (keep-alive comments before it do not count): a failure before it,
/// or a stream that ends without one, falls back to the next deployment. What came is kept, at most [`MAX_STREAM_HEAD`] bytes (and the chunk
/// that crossed it); each chunk is scanned once.
async fn stream_head(
    chunks: &mut (impl Stream<Item = reqwest::Result<Bytes>> + Unpin),
    deadline: tokio::time::Instant,
    first_byte_ms: u128,
    code: Option<u16>,
) -> Result<Vec<u8>, Failure> {
    let mut head: Vec<u8> = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Err(_) => {
                let why = format!("no stream event within {first_byte_ms} ms (server.first_byte_timeout_ms)");
                return Err(Fault::fail(code, "timeout", why));
            }
            Ok(None) if head.is_empty() => return Err(Fault::fail(code, "failed", "empty stream")),
            // A page or an error body where a stream should be is not an answer: nothing to pass on or bill.
            Ok(None) => return Err(Fault::fail(code, "failed", "the stream ended without an event")),
            Ok(Some(Err(e))) => return Err(Fault::fail(code, outcome_of(&e), describe(&e))),
            Ok(Some(Ok(bytes))) => {
                let scanned = head.len();
                head.extend_from_slice(&bytes);
                if has_event(&head, scanned) {
                    return Ok(head);
                }
                if head.len() > MAX_STREAM_HEAD {
                    let why = format!(
                        "sent {} bytes without a stream event (at most {MAX_STREAM_HEAD} are read before the first \
                         `data:` line)",
                        head.len()
                    );
                    return Err(Fault::fail(code, "failed", why));
                }
            }
        }
    }
}

/// Whether `head` holds a `data:` field at the start of a line, looking only at what follows `scanned` (the
/// bytes already looked at) and the few before it that a match may start in.
fn has_event(head: &[u8], scanned: usize) -> bool {
    const FIELD: &[u8] = b"data:";
    let from = scanned.saturating_sub(FIELD.len() - 1);
    head[from..]
        .windows(FIELD.len())
        .enumerate()
        .any(|(i, w)| w == FIELD && (from + i == 0 || matches!(head[from + i - 1], b'\n' | b'\r')))
}

/// What a 401, 403 or 404 from a provider means for the gateway's own configuration.
fn auth_problem(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("the provider refused the deployment's API key; check its api_key_env"),
        403 => Some("the deployment's API key may not use this model; check its api_key_env"),
        404 => Some("the provider does not know this model or URL; check base_url and upstream_model"),
        _ => None,
    }
}

/// Reads a whole body, failing when the upstream goes silent for longer than `idle`.
async fn read_all(upstream: reqwest::Response, idle: Duration) -> Result<Vec<u8>, (&'static str, String)> {
    let mut chunks = upstream.bytes_stream();
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(idle, chunks.next()).await {
            Err(_) => return Err(("timeout", silence(idle))),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err((outcome_of(&e), describe(&e))),
            Ok(Some(Ok(bytes))) => out.extend_from_slice(&bytes),
        }
    }
}

/// Passes a stream's chunks on; when the upstream fails or stays silent longer than `idle`, the stream ends
/// with an SSE error event.
fn idle_limited(
    chunks: impl Stream<Item = reqwest::Result<Bytes>> + Unpin + Send + 'static,
    idle: Duration,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures_util::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout(idle, chunks.next()).await {
            Ok(None) => None,
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
            Ok(Some(Err(e))) => Some((Ok(stream_error(&format!("upstream stream failed: {}", describe(&e)))), None)),
            Err(_) => Some((Ok(stream_error(&silence(idle))), None)),
        }
    })
}

fn silence(idle: Duration) -> String {
    format!("upstream sent nothing for {} ms (server.idle_timeout_ms)", idle.as_millis())
}

/// An OpenAI-shaped SSE error event, which ends a stream that failed after its first byte.
fn stream_error(message: &str) -> Bytes {
    let event = json!({"error": {"message": message, "type": "server_error", "code": "upstream_stream_error"}});
    // The blank lines first end whatever line the upstream left half sent, so the event stands on its own
    // (after a complete event they are an empty one, which SSE readers skip).
    Bytes::from(format!("\n\ndata: {event}\n\n"))
}

/// Whether an upstream error body says the account ran out of budget, quota or credit: the error's `code` or
/// `type` says so (the message may echo the client's own input, so it is not read). A body that is not JSON is
/// read whole.
fn budget_exhausted(body: &[u8]) -> bool {
    let says = |text: &str| {
        let text = text.to_ascii_lowercase();
        ["insufficient_quota", "quota", "budget", "credit", "billing"].iter().any(|k| text.contains(k))
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let error = v.get("error").unwrap_or(&v);
            ["code", "type"].iter().filter_map(|k| error.get(*k).and_then(Value::as_str)).any(says)
        }
        Err(_) => says(&String::from_utf8_lossy(body)),
    }
}

/// What went wrong, for logs and the client's 502: never the upstream's URL, which may carry a secret.
fn describe(e: &reqwest::Error) -> String {
    if e.is_connect() && e.is_timeout() {
        "could not connect in time (server.connect_timeout_ms)".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        let text = e.to_string();
        match e.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), "").replace(url.as_str(), "<upstream>"),
            None => text,
        }
    }
}

fn outcome_of(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else {
        "failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_event_is_found_at_a_line_start_across_chunks() {
        assert!(has_event(b"data: {}", 0));
        assert!(has_event(b": keep-alive\n\ndata: {}", 0));
        assert!(has_event(b"event: x\r\ndata: {}", 0));
        // Not inside another line.
        assert!(!has_event(b": say data: later\n", 0));
        // A field split across chunks: only the new bytes and the four before them are read.
        let head = b": keep-alive\n\ndata: {}";
        for split in 10..=18 {
            assert!(has_event(head, split), "split at {split}");
        }
        assert!(!has_event(b"data: {}\n: x\n", 13), "an event already scanned is not looked at again");
    }

    #[test]
    fn quota_errors_are_told_apart_from_bad_requests() {
        assert!(budget_exhausted(br#"{"error": {"code": "insufficient_quota"}}"#));
        assert!(!budget_exhausted(br#"{"error": {"message": "max_tokens is too large"}}"#));
        // A message that echoes the client's input is not the account's quota.
        assert!(!budget_exhausted(br#"{"error": {"message": "bad user 'credit-team'", "code": "invalid_value"}}"#));
        assert!(budget_exhausted(br#"{"error": {"message": "x", "type": "billing_hard_limit_reached"}}"#));
        assert!(budget_exhausted(b"quota exceeded"));
    }
}
