//! Reading a client's request: the body under its size limit, the prompt a chat request routes on, the
//! routing core's [`Query`] of a request, and request ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use serde_json::Value;
use sha2::Digest;
use switchyard_core::routed_turn;

use crate::http::error::ApiError;
use crate::limits::keys::Caller;
use crate::routing::knobs::{KnobSource, RequestKnobs};
use crate::routing::query::Query;

/// Monotonic part of request ids.
static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A new request id: `sy-<nanoseconds since the epoch, hex>-<process tag, hex>-<counter, hex>`. The process
/// tag (from the process id and its start time) keeps ids of replicas sharing one log apart.
pub(crate) fn request_id() -> String {
    static TAG: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let nanos = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let tag = TAG.get_or_init(|| {
        let digest = sha2::Sha256::digest(format!("{}-{}", std::process::id(), nanos()).as_bytes());
        u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
    });
    format!("sy-{:x}-{tag:08x}-{:x}", nanos(), REQUESTS.fetch_add(1, Ordering::Relaxed))
}

/// Where a request carries its knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnobsIn {
    /// At the body's top level (`/v1/route`).
    Body,
    /// In the body's `metadata` (a chat request).
    Metadata,
}

/// The routing core's query of a request: its headers (by lower-case name), JSON body, the prompt read from
/// it, its knobs (from `knobs_in`, then `x-switchyard-*` headers, which win) and the caller's key.
pub(crate) fn query_of(
    headers: &HeaderMap,
    body: &Value,
    prompt: String,
    knobs_in: KnobsIn,
    request_id: &str,
    caller: &Caller,
) -> Result<Query, ApiError> {
    let headers: BTreeMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.trim().to_string())))
        .collect();
    let (fields, prefix) = match knobs_in {
        KnobsIn::Body => (Some(body), ""),
        KnobsIn::Metadata => (body.get("metadata"), "metadata."),
    };
    let knobs = RequestKnobs::parse(KnobSource { fields, prefix, headers: &headers })?;
    let mut query = Query::from_request(headers, body, prompt, knobs, request_id, caller.name().as_deref());
    query.key_models = caller.0.as_ref().and_then(|k| k.allowed_models()).map(<[String]>::to_vec);
    Ok(query)
}

/// The turn a chat request routes on, by the rule training uses ([`switchyard_core::routed_turn`]): the last
/// user message with text. `no_user_message` if there is no user message, `empty_prompt` if none has text.
pub(crate) fn user_prompt<'a>(
    messages: impl DoubleEndedIterator<Item = (&'a str, &'a Value)> + Clone,
) -> Result<String, ApiError> {
    if let Some(text) = routed_turn(messages.clone()) {
        return Ok(text);
    }
    let mut messages = messages;
    if messages.any(|(role, _)| role == "user") {
        return Err(ApiError::invalid("empty_prompt", "no user message has text to route on"));
    }
    Err(ApiError::invalid("no_user_message", "`messages` has no message with role \"user\""))
}

/// Reads the whole body ([`read_body`]) as JSON: `invalid_json` when it is not.
pub(crate) async fn read_json(body: Body, limit: usize) -> Result<Value, ApiError> {
    let bytes = read_body(body, limit).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("invalid_json", format!("request body is not valid JSON: {e}")))
}

/// Refuses a prompt of more than `max_chars` characters (`server.max_prompt_chars`) with a 413.
pub(crate) fn check_prompt(prompt: &str, max_chars: usize) -> Result<(), ApiError> {
    if prompt.chars().count() > max_chars {
        return Err(ApiError::too_large(format!(
            "prompt is longer than {max_chars} characters (server.max_prompt_chars)"
        )));
    }
    Ok(())
}

/// Reads the whole body, refusing more than the configured limit with a 413, and a body that does not
/// arrive within `server.body_timeout_ms` ([`crate::http::body::timed_body`]) with a 408.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(late) = c.downcast_ref::<crate::http::body::BodyTimedOut>() {
                return ApiError::Timeout(format!("{late}; send the body promptly, or raise the limit"));
            }
            if c.is::<http_body_util::LengthLimitError>() {
                break;
            }
            cause = c.source();
        }
        if cause.is_none() {
            return ApiError::invalid("invalid_body", format!("cannot read the request body: {e}"));
        }
        ApiError::too_large(format!("request body is larger than {limit} bytes (server.max_body_bytes)"))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Bytes;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_chat_routes_on_its_last_user_words_as_training_does() {
        let messages = json!([
            {"role": "user", "content": "prove that there are infinitely many primes"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}
        ]);
        let turns = |m: &Value| -> Vec<(String, Value)> {
            m.as_array()
                .into_iter()
                .flatten()
                .map(|m| (m["role"].as_str().unwrap_or("").to_string(), m["content"].clone()))
                .collect()
        };
        let owned = turns(&messages);
        let prompt = user_prompt(owned.iter().map(|(r, c)| (r.as_str(), c))).unwrap();
        assert_eq!(prompt, "prove that there are infinitely many primes");
        let silent = turns(&json!([{"role": "user", "content": ""}]));
        let e = user_prompt(silent.iter().map(|(r, c)| (r.as_str(), c))).unwrap_err();
        assert_eq!(e.code(), "empty_prompt");
        let none = turns(&json!([{"role": "system", "content": "x"}]));
        assert_eq!(user_prompt(none.iter().map(|(r, c)| (r.as_str(), c))).unwrap_err().code(), "no_user_message");
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_its_deadline() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream(rx));
        // Eight bytes, then nothing: the body can only end by its deadline.
        tx.send(Ok(Bytes::from_static(b"12345678"))).await.ok();
        let err =
            read_body(crate::http::body::timed_body(body, Duration::from_millis(100)), 1 << 20).await.unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::REQUEST_TIMEOUT, "{err}");
        assert!(err.to_string().contains("server.body_timeout_ms"), "{err}");
        drop(tx);
    }

    fn tokio_stream<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Send + 'static {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
