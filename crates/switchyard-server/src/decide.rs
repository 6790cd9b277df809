//! The server's side of a routing decision, shared by `/v1/route` and the gateway: embed the prompt through
//! the embedder (cache, queue, inference thread), run the [pipeline](crate::pipeline) on the routers in
//! service, and count what happened in the metrics; and the tags a decision puts on the response.

use std::time::Instant;

use axum::http::HeaderValue;
use axum::response::Response;

use crate::error::ApiError;
use crate::pipeline::{Decided, Steering};
use crate::query::Query;
use crate::state::{embed_prompt, AppState};

/// Decides where a query goes, on the routers in service now.
/// `health_read`: the request's admission read the shared health already.
pub(crate) async fn decide(state: &AppState, query: &Query, health_read: bool) -> Result<Decided, ApiError> {
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
        health: &state.health,
        sessions: &state.sessions,
        learning: state.learning.as_deref(),
    };
    let decided = crate::pipeline::decide(&steering, query, &embedding, encode_ms)?;
    if let (Some(shared), Some(pin)) = (&state.shared, &decided.session) {
        shared.save_pin(pin, std::time::Duration::from_secs(state.config.routing.session_ttl_s)).await;
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
        let pinning = state.config.routing.session_pinning;
        let conversation = query.conversation.as_ref().filter(|_| pinning).map(|c| c.id.as_str());
        shared.sync(&state.health, &state.deployments, &state.sessions, conversation, health_read).await;
    }
}

/// What a `/v1/*` handler tells the layers around it (the request metrics) about the request it answered:
/// a response extension, so that no layer reads back the handler's own headers.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Served {
    /// The model that answered (or was chosen, on `/v1/route`).
    pub model: Option<String>,
    /// The experiment.
    pub experiment: Option<String>,
    /// The arm.
    pub arm: Option<String>,
}

/// What steered a request, as response headers and metric labels show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tags {
    /// The experiment.
    pub experiment: Option<String>,
    /// The arm.
    pub arm: Option<String>,
    /// The rule that fired.
    pub rule: Option<String>,
    /// The model a conversation's session pin holds it on.
    pub pinned: Option<String>,
}

impl Tags {
    /// The tags of a decision.
    pub fn of(decided: &Decided) -> Self {
        Self {
            experiment: decided.arm.as_ref().map(|a| a.experiment.clone()),
            arm: decided.arm.as_ref().map(|a| a.arm.clone()),
            rule: decided.rule.clone(),
            pinned: decided.session.as_ref().map(|p| p.model.clone()),
        }
    }

    /// Sets `x-switchyard-request-id`, `-model` (when given), `-experiment`, `-arm`, `-rule` and `-pinned` on the
    /// response, and tells the layers around the handler the same through a [`Served`] extension.
    pub fn put(&self, response: &mut Response, request_id: &str, model: Option<&str>) {
        response.extensions_mut().insert(Served {
            model: model.map(str::to_string),
            experiment: self.experiment.clone(),
            arm: self.arm.clone(),
        });
        let headers = response.headers_mut();
        let pairs = [
            ("x-switchyard-request-id", Some(request_id)),
            ("x-switchyard-model", model),
            ("x-switchyard-experiment", self.experiment.as_deref()),
            ("x-switchyard-arm", self.arm.as_deref()),
            ("x-switchyard-rule", self.rule.as_deref()),
            ("x-switchyard-pinned", self.pinned.as_deref()),
        ];
        for (name, value) in pairs {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(name, v);
            }
        }
    }
}
