//! The attempt loop: a request's candidate models in order, each model's deployments in their order
//! ([`Deployments::order`]), until one answers or `server.max_attempts` tries are spent. Connection errors,
//! timeouts, redirects, 401, 402, 403, 404, 408, 429, 5xx and a success that is not JSON are the upstream's
//! problem ([`crate::gateway::upstream`]) and fall back to the next try; another client error is the request's
//! own and is passed on at once. Each try is recorded (as an [`Attempt`] for the log, in the metrics and in
//! the deployment's health, shared across replicas when they run). What the answer is charged and learned
//! is the caller's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use serde_json::Value;
use switchyard_core::ModelCard;
use switchyard_store::Attempt;

use crate::config::server::ServerConfig;
use crate::gateway::deployment::Upstream;
use crate::gateway::deployments::Deployments;
use crate::gateway::error::GatewayError;
use crate::gateway::health::Health;
use crate::gateway::upstream::{forward, Failure, Forwarded, Limits};
use crate::metrics::Metrics;
use crate::replicas::SharedState;

/// What the attempt loop reads and records into.
pub(crate) struct Gateway<'a> {
    /// The HTTP client for upstream calls.
    pub http: &'a reqwest::Client,
    /// Every model's deployments.
    pub deployments: &'a Deployments,
    /// This replica's upstream health.
    pub health: &'a Health,
    /// Upstream calls, fallbacks and cooldowns are counted here.
    pub metrics: &'a Metrics,
    /// The replicas' shared health, when replicas run.
    pub shared: Option<&'a Arc<SharedState>>,
    /// Attempts, time limits and cooldowns.
    pub server: &'a ServerConfig,
}

/// How the upstream that ended the loop answered.
pub(crate) enum Reply {
    /// A success: pass it on, charge it, learn from it.
    Forwarded(Forwarded),
    /// The upstream refused the request itself (a 400, say): pass its answer on as it is.
    ClientError(Response),
}

/// The try that ended the loop.
pub(crate) struct Answered<'c> {
    /// The model that answered.
    pub card: &'c ModelCard,
    /// Its deployment.
    pub upstream: Arc<Upstream>,
    /// The answer.
    pub reply: Reply,
    /// Tries that failed before it.
    pub fallbacks: usize,
}

impl Gateway<'_> {
    /// Sends `body` to `cards` in order (each try with its deployment's model name), recording every try in
    /// `attempts`. Deployments in cooldown are skipped, unless every candidate's are.
    pub(crate) async fn attempt<'c>(
        &self,
        cards: &[&'c ModelCard],
        body: &mut Value,
        stream: bool,
        attempts: &mut Vec<Attempt>,
        request_id: &str,
    ) -> Result<Answered<'c>, GatewayError> {
        let all_cooling =
            cards.iter().all(|m| self.deployments.of(&m.name).iter().all(|d| self.health.cooling(&d.name)));
        let limits = Limits { first_byte: self.server.first_byte_timeout(), idle: self.server.idle_timeout() };
        let mut failures: Vec<String> = Vec::new();
        for &card in cards {
            // Asked only when the request reaches this model, so the weighted shares count real tries.
            for up in self.deployments.order(&card.name, self.health, all_cooling) {
                if attempts.len() >= self.server.max_attempts {
                    return Err(GatewayError::UpstreamsFailed(failures));
                }
                body["model"] = Value::String(up.upstream_model.clone());
                let start = Instant::now();
                let result = forward(self.http, &up, body, stream, limits).await;
                let elapsed = start.elapsed();
                let (outcome, status, error) = match &result {
                    Ok(f) => ("ok", Some(f.response.status().as_u16()), None),
                    Err(Failure::ClientError(r)) => {
                        ("client_error", Some(r.status().as_u16()), Some("client error".into()))
                    }
                    Err(Failure::Upstream(f)) => (f.outcome, f.status, Some(f.why.clone())),
                };
                self.metrics.upstream(&card.name, &up.name, outcome, elapsed.as_secs_f64());
                let latency_ms = elapsed.as_secs_f64() * 1e3;
                attempts.push(Attempt {
                    model: card.name.clone(),
                    deployment: Some(up.name.clone()),
                    status,
                    latency_ms,
                    error,
                });
                let reply = match result {
                    Ok(forwarded) => Reply::Forwarded(forwarded),
                    Err(Failure::ClientError(response)) => Reply::ClientError(response),
                    Err(Failure::Upstream(fault)) => {
                        self.failed(&up, elapsed).await;
                        tracing::warn!(
                            request = request_id,
                            model = %card.name,
                            deployment = %up.name,
                            outcome = fault.outcome,
                            "upstream failed, falling back: {}",
                            fault.why
                        );
                        failures.push(format!("{}: {}", up.name, fault.why));
                        continue;
                    }
                };
                // The upstream answered (a client error too): it is healthy.
                self.health.success(&up, elapsed);
                self.observe_success(&up.name, elapsed);
                return Ok(Answered { card, upstream: up, reply, fallbacks: failures.len() });
            }
        }
        Err(GatewayError::UpstreamsFailed(failures))
    }

    /// Counts a failed try: a fallback, and the deployment's failures in a row, which may start its cooldown
    /// (with replicas, their shared count decides).
    async fn failed(&self, up: &Upstream, elapsed: Duration) {
        self.metrics.fallback();
        let cooldown = Duration::from_millis(self.server.cooldown_ms);
        let threshold = self.server.cooldown_failures;
        let cooled_here = self.health.failure(up, elapsed, threshold, cooldown);
        let cooled = match self.shared {
            Some(shared) => shared.observe(&up.name, false, elapsed, threshold, cooldown).await.unwrap_or(cooled_here),
            None => cooled_here,
        };
        if cooled {
            self.metrics.cooldown();
        }
    }

    /// Records a successful call in the shared health, in the background, so the answer does not wait for
    /// Redis (a failure is recorded before the next try).
    fn observe_success(&self, deployment: &str, elapsed: Duration) {
        if let Some(shared) = self.shared.cloned() {
            let (threshold, cooldown) = (self.server.cooldown_failures, Duration::from_millis(self.server.cooldown_ms));
            let deployment = deployment.to_string();
            tokio::spawn(async move { shared.observe(&deployment, true, elapsed, threshold, cooldown).await });
        }
    }
}

#[cfg(test)]
mod tests;
