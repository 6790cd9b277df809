//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's Messages API at the edge.
//!
//! A Messages request is translated to the OpenAI chat shape ([`crate::anthropic::request`]) and served by the
//! gateway exactly as a chat request is ([`crate::http::chat::serve`]: keys, limits, rules, pins, learning, the
//! log, which names the endpoint `messages`); the answer comes back in Anthropic's shape: a whole answer as a
//! Messages response, a stream as Anthropic's event sequence, and every error (the authentication layer's
//! included, see [`anthropic_errors`]) as Anthropic's error body with the same status and `retry-after`.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::anthropic::stream::FromOpenAi;
use crate::anthropic::{self, TranslateError};
use crate::http::error::ApiError;
use crate::http::request::read_json;
use crate::state::AppState;

/// The most bytes of a whole answer or an error body read back to translate it.
const MAX_TRANSLATED: usize = 64 * 1024 * 1024;

/// The `/v1/messages` handler.
pub async fn messages(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_json(body, state.config.server.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let mut chat = match anthropic::request::to_openai(&body) {
        Ok(chat) => chat,
        Err(e) => return invalid(e),
    };
    let stream = chat.get("stream").and_then(Value::as_bool) == Some(true);
    if stream {
        // The usage comes back to the client in `message_delta`: ask for it as a client would.
        chat["stream_options"] = json!({"include_usage": true});
    }
    let response = crate::http::chat::serve(&state, &parts, chat, "messages").await;
    if !response.status().is_success() {
        return response;
    }
    if stream {
        return stream_response(response);
    }
    whole_response(response).await
}

/// The `/v1/messages/count_tokens` handler: an estimate, not the model's tokenizer (a model's own count
/// differs by model): the characters of the messages and the system prompt, at
/// [`switchyard_core::CHARS_PER_TOKEN`] characters a token, as the gateway estimates input for its limits.
/// The answer says so in `x-switchyard-token-count: estimated`.
pub async fn count_tokens(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let body = match read_json(request.into_body(), state.config.server.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let chat = match anthropic::request::to_openai(&body) {
        Ok(chat) => chat,
        Err(e) => return invalid(e),
    };
    let tokens = crate::gateway::billing::input_estimate(&chat);
    let mut response = axum::Json(json!({"input_tokens": tokens})).into_response();
    response.headers_mut().insert("x-switchyard-token-count", HeaderValue::from_static("estimated"));
    response
}

/// A request that cannot be translated: 400, said in the client's terms.
fn invalid(e: TranslateError) -> Response {
    ApiError::invalid("invalid_request", e.0).into_response()
}

/// A whole answer, translated; the gateway's headers (`x-switchyard-*`) are kept.
async fn whole_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let completion = match axum::body::to_bytes(body, MAX_TRANSLATED).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    if !completion.is_object() {
        let message = "the upstream's answer could not be read as a chat completion";
        return ApiError::BadGateway { code: "upstream_error", message: message.into() }.into_response();
    }
    let message = anthropic::response::from_openai(&completion);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(message.to_string()))
}

/// A stream, translated event by event as it comes.
fn stream_response(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let chunks = body.into_data_stream();
    let events =
        futures_util::stream::unfold((chunks, FromOpenAi::default(), false), |(mut chunks, mut t, ended)| async move {
            if ended {
                return None;
            }
            match chunks.next().await {
                Some(Ok(chunk)) => Some((Ok::<Bytes, axum::Error>(t.feed(&chunk)), (chunks, t, false))),
                Some(Err(e)) => Some((Err(e), (chunks, t, true))),
                None => Some((Ok(t.finish()), (chunks, t, true))),
            }
        });
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    Response::from_parts(parts, Body::from_stream(events))
}

/// Every error on the Messages routes in Anthropic's shape (`{"type": "error", "error": {"type",
/// "message"}}`), whoever answered it: the authentication and limit layers, the handler, or an upstream's
/// refusal passed on. The status and headers (`retry-after`) stay.
pub(super) async fn anthropic_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status.is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_TRANSLATED).await.unwrap_or_default();
    let openai = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let error = anthropic::anthropic_error(status.as_u16(), &openai);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(error.to_string()))
}
