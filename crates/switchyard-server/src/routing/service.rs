//! The server's side of a routing decision, shared by `/v1/route` and the gateway: embed the prompt through
//! the embedder (cache, queue, inference thread), run the [pipeline](crate::routing::stages) on the routers in
//! service, and count what happened in the metrics.

use std::time::Instant;

use crate::routing::query::Query;
use crate::routing::stages::{Decided, Steering};
use switchyard_encoder::Embedding;

use crate::embedder::EmbedError;
use crate::routing::RouteError;
use crate::state::AppState;

/// Resolves where a query goes, on the routers in service now: the prompt embedded, the stages run
/// ([`crate::routing::stages::decide`]), the pin saved and the decision counted.
/// `health_read`: the request's admission read the shared health already.
pub(crate) async fn resolve(state: &AppState, query: &Query, health_read: bool) -> Result<Decided, RouteError> {
    query.check_ids(state.config.server.max_id_bytes)?;
    let routers = state.routers();
    let start = Instant::now();
    let embedding = embed_prompt(state, &query.prompt).await?;
    let encode_ms = start.elapsed().as_secs_f64() * 1e3;
    sync_shared(state, query, health_read).await;
    if let Some(learning) = &state.learning {
        learning.sync().await;
    }
    let steering = Steering {
        routers: &routers,
        config: &state.config,
        health: Some(&state.health),
        sessions: Some(&state.sessions),
        learning: state.learning.as_deref(),
    };
    let decided = crate::routing::stages::decide(&steering, query, &embedding, encode_ms)?;
    if let (Some(shared), Some(pin)) = (&state.shared, &decided.session) {
        crate::routing::replicated::save_pin(
            shared,
            pin,
            std::time::Duration::from_secs(state.config.sessions.session_ttl_s),
        )
        .await;
    }
    if let Some(rule) = &decided.rule {
        state.metrics.rule(rule);
    }
    state.metrics.decision(start.elapsed().as_secs_f64(), decided.report.ood);
    Ok(decided)
}

/// Reads the replicas' shared health and the conversation's pin into this replica's state, when there is a
/// shared state: one round trip to Redis.
pub(crate) async fn sync_shared(state: &AppState, query: &Query, health_read: bool) {
    if let Some(shared) = &state.shared {
        let pinning = state.config.sessions.session_pinning;
        let conversation = query.conversation.as_ref().filter(|_| pinning).map(|c| c.id.as_str());
        crate::routing::replicated::sync(
            shared,
            &state.health,
            &state.deployments,
            &state.sessions,
            conversation,
            health_read,
        )
        .await;
    }
}

/// Embeds one prompt through the embedder, recording the time in the metrics.
async fn embed_prompt(state: &AppState, prompt: &str) -> Result<Embedding, RouteError> {
    let start = Instant::now();
    let (embedding, timing) = state.embedder.embed(prompt).await.map_err(|e| match e {
        EmbedError::Busy(_) => RouteError::EncoderBusy(e.to_string()),
        EmbedError::Failed(_) => RouteError::EncoderFailed(e.to_string()),
    })?;
    if !timing.cached {
        state.metrics.encode_parts(Some(timing.tokenize.as_secs_f64()), timing.inference.as_secs_f64());
        state.metrics.encode_queue(timing.queue.as_secs_f64());
    }
    state.metrics.encode(start.elapsed().as_secs_f64());
    Ok(embedding)
}
