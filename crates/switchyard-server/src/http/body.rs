//! A request body under its deadline: `server.body_timeout_ms` from the request's headers, after which reading it
//! fails with [`BodyTimedOut`] (a 408 once [`super::request::read_body`] maps it).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use futures_util::StreamExt;
use tokio::time::Instant;

/// The error a request body gives when the client did not send it in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} ms (server.body_timeout_ms)")]
pub(crate) struct BodyTimedOut(pub u128);

/// `body`, failing with [`BodyTimedOut`] when it is not complete `limit` from now.
pub(crate) fn timed_body(body: Body, limit: Duration) -> Body {
    let deadline = Instant::now() + limit;
    let chunks = futures_util::stream::unfold(Some(body.into_data_stream()), move |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(chunk)) => Some((chunk.map_err(axum::Error::new), Some(chunks))),
            Ok(None) => None,
            Err(_) => Some((Err(axum::Error::new(BodyTimedOut(limit.as_millis()))), None)),
        }
    });
    Body::from_stream(chunks)
}

/// `response` with `held` kept alive until its body has been sent or dropped (a permit, a guard).
pub(crate) fn holding<T: Send + Sync + 'static>(response: Response, held: T) -> Response {
    let (parts, body) = response.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &held;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}
