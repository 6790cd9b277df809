//! Online-learning posteriors shared by the replicas: one Redis hash per (model, fingerprint of its
//! estimates), a field per domain holding the cell's discounted sums. Every outcome is added by an atomic
//! script; replicas read the cells back at most every `learning.sync_ms` on the decision path. Keying by the
//! fingerprint keeps replicas that run different routers (a rollout) from mixing cells learned against
//! different predictions.
//!
//! Outcomes counted while Redis does not answer are kept (the newest [`UNSYNCED_CAP`]) and added, in order,
//! once the connection is made again (outcomes counted meanwhile queue behind them). As for budget charges, a
//! batch sent and not answered may have landed, so it is not sent again: an outcome reaches the shared cells
//! at most once.
//!
//! Each answered request's prediction is kept under its request id for `learning.feedback_window_s`, so that
//! feedback sent to any replica is learned from.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use switchyard_core::Cell;

use super::SharedState;
use crate::learning::Observation;

/// Most outcomes kept while Redis does not answer (the oldest go first).
pub const UNSYNCED_CAP: usize = 100_000;
/// Outcomes added per round trip when they are written back.
const REPLAY_CHUNK: usize = 1_000;

/// One outcome to add to a model's shared cells.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Outcome {
    key: String,
    half_life: f64,
    score: f64,
    predicted: f64,
    domains: Vec<(String, f64)>,
}

impl SharedState {
    fn online_key(&self, model: &str, fingerprint: &str) -> String {
        format!("{}:online:{model}:{fingerprint}", self.prefix)
    }

    /// Adds one outcome to a model's shared cells; while Redis does not answer, keeps it for when it does.
    pub async fn learn(
        self: &Arc<Self>,
        model: &str,
        fingerprint: &str,
        domains: &[(String, f64)],
        score: f64,
        predicted: f64,
        half_life: f64,
    ) {
        let outcome = Outcome {
            key: self.online_key(model, fingerprint),
            half_life,
            score,
            predicted,
            domains: domains.iter().filter(|(_, w)| *w > 0.0).cloned().collect(),
        };
        // Degraded, or behind outcomes still waiting, the outcome is not sent: kept, and added in order when the
        // connection is made again.
        let waiting = !self.unsynced_online.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        if self.degraded.load(Ordering::SeqCst) || waiting || self.connection().await.is_none() {
            self.keep(outcome);
            return;
        }
        let invocation = self.invocation(&outcome);
        let _: Option<i64> = self.call("learn", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
    }

    /// Queues an outcome Redis did not get, and starts writing the queue back (when Redis answers) or
    /// reconnecting (when it does not).
    fn keep(self: &Arc<Self>, outcome: Outcome) {
        {
            let mut unsynced = self.unsynced_online.lock().unwrap_or_else(PoisonError::into_inner);
            unsynced.push_back(outcome);
            while unsynced.len() > UNSYNCED_CAP {
                unsynced.pop_front();
            }
        }
        if self.degraded.load(Ordering::SeqCst) {
            self.kick();
        } else {
            self.drain_online();
        }
    }

    fn invocation(&self, o: &Outcome) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.scripts.learn.prepare_invoke();
        invocation.key(&o.key).arg(o.half_life).arg(o.score).arg(o.predicted);
        for (domain, w) in &o.domains {
            invocation.arg(domain).arg(*w);
        }
        invocation
    }

    /// Writes the queued outcomes to Redis in order, [`REPLAY_CHUNK`] per round trip, in a background task
    /// (one at a time). Without a connection the queue waits for the next reconnection; a chunk sent and not
    /// answered is dropped (it may have landed) and counted as an error.
    pub(super) fn drain_online(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        runtime.spawn(async move {
            loop {
                if me.connection().await.is_none() {
                    break;
                }
                let chunk: Vec<Outcome> = {
                    let mut unsynced = me.unsynced_online.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = unsynced.len().min(REPLAY_CHUNK);
                    unsynced.drain(..n).collect()
                };
                if chunk.is_empty() {
                    break;
                }
                let mut pipe = redis::pipe();
                pipe.load_script(&me.scripts.learn).ignore();
                for outcome in &chunk {
                    pipe.invoke_script(&me.invocation(outcome)).ignore();
                }
                let sent = me.call("learn (catching up)", |mut c| async move { pipe.query_async::<()>(&mut c).await });
                if sent.await.is_none() {
                    tracing::warn!(
                        "shared state {}: {} online-learning outcomes kept during an outage may not have reached \
                         Redis (they stay in this replica's own cells)",
                        me.shown,
                        chunk.len()
                    );
                    break;
                }
            }
            me.draining.store(false, Ordering::SeqCst);
            // An outcome queued as the loop ended is not left behind.
            let waiting = !me.unsynced_online.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
            if waiting && !me.degraded.load(Ordering::SeqCst) {
                me.drain_online();
            }
        });
    }

    fn observation_key(&self, request_id: &str) -> String {
        format!("{}:observation:{request_id}", self.prefix)
    }

    /// Keeps what was predicted for the model that answered `request_id`, for `ttl`.
    pub async fn save_observation(self: &Arc<Self>, request_id: &str, observation: &Observation, ttl: Duration) {
        let Ok(value) = serde_json::to_string(observation) else { return };
        let (key, ms) = (self.observation_key(request_id), ttl.as_millis().max(1) as u64);
        let _: Option<()> = self
            .call("observation", |mut c| async move {
                redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query_async(&mut c).await
            })
            .await;
    }

    /// What was predicted for the model that answered `request_id`, if a replica kept it and it has not
    /// expired; `None` too when Redis does not answer.
    pub async fn load_observation(self: &Arc<Self>, request_id: &str) -> Option<Observation> {
        let key = self.observation_key(request_id);
        let value: Option<String> = self
            .call("observation", |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        serde_json::from_str(&value?).ok()
    }

    /// Every model's shared cells, for `(model, fingerprint)` pairs, in one round trip; `None` when Redis does
    /// not answer.
    pub async fn read_online(
        self: &Arc<Self>,
        models: &[(String, String)],
    ) -> Option<Vec<(String, BTreeMap<String, Cell>)>> {
        let mut pipe = redis::pipe();
        for (model, fingerprint) in models {
            pipe.cmd("HGETALL").arg(self.online_key(model, fingerprint));
        }
        let maps: Vec<std::collections::HashMap<String, String>> =
            self.call("read online", |mut c| async move { pipe.query_async(&mut c).await }).await?;
        Some(
            models
                .iter()
                .zip(maps)
                .map(|((model, _), fields)| {
                    let cells =
                        fields.into_iter().filter_map(|(domain, value)| Some((domain, parse_cell(&value)?))).collect();
                    (model.clone(), cells)
                })
                .collect(),
        )
    }
}

/// A cell stored as "n successes predicted".
fn parse_cell(value: &str) -> Option<Cell> {
    let mut parts = value.split_whitespace().map(str::parse::<f64>);
    let (n, successes, predicted) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next()?.ok()?);
    Some(Cell { n, successes, predicted })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cells_parse_from_their_stored_form() {
        let cell = super::parse_cell("2.5 1 1.75").unwrap();
        assert_eq!((cell.n, cell.successes, cell.predicted), (2.5, 1.0, 1.75));
        assert!(super::parse_cell("2.5 x 1").is_none());
    }
}
