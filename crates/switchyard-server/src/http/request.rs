//! Reading a client's request: the body under its size limit, and the prompt a chat request routes on.

use axum::body::{Body, Bytes};
use serde_json::Value;
use switchyard_core::message_text;

use crate::http::error::ApiError;

/// The text of the last message with role "user" (`no_user_message` if none, `empty_prompt` if it is empty).
pub(crate) fn user_prompt<'a>(
    mut messages: impl DoubleEndedIterator<Item = (&'a str, &'a Value)>,
) -> Result<String, ApiError> {
    let content = messages
        .rfind(|(role, _)| *role == "user")
        .map(|(_, content)| content)
        .ok_or_else(|| ApiError::invalid("no_user_message", "`messages` has no message with role \"user\""))?;
    let text = message_text(content);
    if text.trim().is_empty() {
        return Err(ApiError::invalid("empty_prompt", "the last user message is empty"));
    }
    Ok(text)
}

/// Reads the whole body, refusing more than the configured limit with a 413, and a body that does not
/// arrive within `server.body_timeout_ms` ([`crate::http::connection::timed_body`]) with a 408.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(late) = c.downcast_ref::<crate::http::connection::BodyTimedOut>() {
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
