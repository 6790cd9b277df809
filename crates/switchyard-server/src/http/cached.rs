//! The response cache at the gateway: whether a request may use it (its ticket), the answer a hit serves (whole
//! or replayed as SSE), and what the decision log keeps of a hit. The matching and the storage are
//! [`crate::cache`]'s.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::Value;
use switchyard_store::DecisionRecord;

use crate::cache::scope::{self, Use};
use crate::cache::{CacheMode, Hit, ResponseCache, Ticket};
use crate::state::{expected_cost, AppState};

/// What the cache did for a request, as `x-switchyard-cache` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheOutcome {
    /// Served from the cache.
    Hit,
    /// Looked up (or, after `cache-control: no-cache`, not), answered upstream, and stored if worth it.
    Miss,
    /// Not allowed to use the cache (sampled above temperature 0, `no-store`).
    Bypass,
}

impl CacheOutcome {
    /// The header's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Bypass => "bypass",
        }
    }
}

/// The request's ticket into the cache (none without a cache, or when the request may not use it): its scope
/// (the caller's key, `model`, the body without the last user text) and, in semantic mode, the prompt's
/// routing embedding (already computed by a routed decision, so read from the embedder's cache; none for a
/// prompt longer than the encoder reads).
pub(crate) async fn ticket(
    state: &AppState,
    cache: &ResponseCache,
    headers: &HeaderMap,
    body: &Value,
    prompt: &str,
    key: Option<&str>,
    model: &str,
) -> Option<Ticket> {
    let lookup = match scope::allowed(headers, body) {
        Use::Allowed { lookup } => lookup,
        Use::Bypass(why) => {
            tracing::debug!(why, "the request does not use the response cache");
            cache.stats.bypassed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    let embedding = if cache.mode() == CacheMode::Semantic {
        match state.embedder.embed(prompt).await {
            // A prompt cut to the encoder's length is matched by its exact text only: two long prompts that
            // share their start embed alike.
            Ok((embedding, _)) if embedding.truncated => None,
            Ok((embedding, _)) => Some(embedding.vector),
            Err(e) => {
                tracing::warn!("response cache: cannot embed the prompt ({e}); looking up its exact text only");
                None
            }
        }
    } else {
        None
    };
    Some(Ticket { scope: scope::scope(key, model, body), prompt: prompt.to_string(), embedding, lookup })
}

/// What the decision log keeps of a hit: the model whose answer was served, no upstream call and no cost, and
/// the spend the hit saved.
pub(crate) fn record_hit(record: &mut DecisionRecord, hit: &Hit, log: &crate::config::LogConfig) {
    record.set_response(&hit.entry.answer, log.response_logging(), log.max_response_chars);
    record.chosen_model = Some(hit.entry.model.clone());
    record.expected_cost_usd = expected_cost(record, &hit.entry.model);
    record.cache_hit = true;
    record.cost_usd = Some(0.0);
    record.cache_saved_usd = Some(hit.entry.cost_usd);
}

/// The cached answer as the client asked for it: whole, or replayed as a stream (with the usage event when
/// the client asked for it).
pub(crate) fn response(hit: &Hit, stream: bool, include_usage: bool) -> Response {
    let (content_type, body) = if stream {
        ("text/event-stream", Body::from(crate::cache::replay::chunks(&hit.entry.answer, include_usage).concat()))
    } else {
        ("application/json", Body::from(hit.entry.answer.to_string()))
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("{:.4}", hit.similarity)) {
        headers.insert("x-switchyard-cache-similarity", v);
    }
    response
}
