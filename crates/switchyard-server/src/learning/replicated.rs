//! Online-learning posteriors shared by the replicas: one Redis hash per (model, fingerprint of its
//! estimates), a field per domain holding the cell's discounted sums. Every outcome is added by an atomic
//! script; replicas read the cells back at most every `learning.sync_ms` on the decision path. Keying by the
//! fingerprint keeps replicas that run different routers (a rollout) from mixing cells learned against
//! different predictions.
//!
//! Outcomes counted while Redis does not answer are kept (the newest [`UNSYNCED_CAP`]) and added, in order,
//! once the connection is made again (outcomes counted meanwhile queue behind them). As for budget charges, a
//! batch sent and not answered may have landed, so its upstream signals are not sent again: one reaches the
//! shared cells at most once. Its feedback scores are (up to [`REPLAY_TRIES`] times): the script settles them
//! by request id, so one that had landed only replaces itself.
//!
//! Each answered request's prediction is kept under its request id for `learning.feedback_window_s` (with the
//! time of the answer and the fingerprint of the estimates it was made with), so that feedback sent to any
//! replica is learned from.
//!
//! A feedback score is settled by one script, atomically ([`SharedState::score`]): it reads the score counted
//! for the request so far (`{prefix}:scored:{request_id}`: the score, when its feedback arrived and when the
//! request's first score was counted; kept until the request's answer is `learning.feedback_window_s` old, as
//! long as the request could be counted at all, so that it never counts twice). With one, a score whose
//! feedback arrived before the counted one's (an earlier millisecond) is ignored (a score kept through an outage and written back after
//! a later one was counted through another replica); past `learning.key_share_window_s` after the first count,
//! the score is no longer replaced; otherwise the new score replaces it: each domain cell's successes move by
//! `w · (new − old)` (kept within `[0, n]`) and no observation is added. Without one, a request answered over
//! `learning.feedback_window_s` ago is not counted. Either way, the key's share of each cell is checked against
//! its window (`{prefix}:online:{model}:{fingerprint}:share:{key}`, a field per domain holding "window start,
//! weight"), charging `w` for a new observation and `w · |new − old|` for a replacement: over
//! `learning.max_key_share` of the cell's pseudo-observations, nothing is written and the domain is answered;
//! within it, the observation is added as `learn` adds one (or the successes moved) and the score is kept as
//! the request's. Since the script is keyed by request id, a score kept through an outage and written back later
//! (or a call that landed without its answer, sent again) is never counted twice: it only replaces the
//! request's score. So a request counts once across every replica, and a key's share is counted over all of
//! them. Only scores this replica learned from while Redis did not answer are written back.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Script;
use switchyard_core::Cell;

use crate::learning::scores::{millis, Scoring, Settled};
use crate::learning::Remembered;
use crate::replicas::{Resync, SharedState};

use scripts::{LEARN_SCRIPT, SCORE_SCRIPT};

/// What makes an outcome a feedback score: counted once per request, within the key's share.
#[derive(Debug, Clone, PartialEq)]
struct Once {
    scored_key: String,
    share_key: String,
    share: f64,
    prior_strength: f64,
    window_ms: i64,
    /// When the feedback arrived, ms since the epoch.
    ts_ms: i64,
    /// Until when the request can be counted, ms since the epoch.
    until_ms: i64,
}

/// Most outcomes kept while Redis does not answer (the oldest go first).
pub const UNSYNCED_CAP: usize = 100_000;
/// Outcomes added per round trip when they are written back.
const REPLAY_CHUNK: usize = 1_000;
/// Times a feedback score is sent in a batch that fails before it is dropped (a few calls in a row may miss their
/// deadline before the replica counts Redis as out of reach, and it is sent again after each reconnection).
const REPLAY_TRIES: u8 = 10;

/// One outcome to add to a model's shared cells.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    key: String,
    half_life: f64,
    score: f64,
    predicted: f64,
    domains: Vec<(String, f64)>,
    /// For a feedback score (the `SCORE` script); `None` for an upstream signal (`learn`).
    once: Option<Once>,
    /// Batches it was sent in that failed.
    tries: u8,
}

/// The online cells in the replicas' shared state, and the outcomes kept for it while it is out of reach.
pub(crate) struct SharedCells {
    shared: Arc<SharedState>,
    /// Outcomes counted while Redis did not answer, oldest first.
    unsynced: Mutex<VecDeque<Outcome>>,
    /// Whether a task is writing `unsynced` to Redis.
    draining: AtomicBool,
}

impl Resync for SharedCells {
    fn on_connect<'a>(
        &'a self,
        _shared: &'a SharedState,
        _conn: &'a mut MultiplexedConnection,
    ) -> Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send + 'a>> {
        Box::pin(async { Ok(()) })
    }

    fn reconnected(self: Arc<Self>) {
        self.drain_online();
    }

    fn render(&self, out: &mut String) {
        let help = "Online-learning outcomes counted while Redis was out of reach, not yet added there.";
        let waiting = self.unsynced.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
        crate::metrics::scalar(out, "switchyard_state_unsynced_outcomes", "gauge", help, waiting);
    }
}

impl SharedCells {
    /// The cells in `shared`, registered to catch up after an outage.
    pub(crate) fn new(shared: Arc<SharedState>) -> Arc<Self> {
        let cells = Arc::new(Self {
            shared: shared.clone(),
            unsynced: Mutex::new(VecDeque::new()),
            draining: AtomicBool::new(false),
        });
        shared.register(cells.clone());
        cells
    }

    /// Whether Redis is out of reach now (a reconnection starts if it is).
    pub(crate) fn is_degraded(&self) -> bool {
        self.shared.is_degraded()
    }

    fn waiting(&self) -> bool {
        !self.unsynced.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    fn online_key(&self, model: &str, fingerprint: &str) -> String {
        self.shared.key(&format!("online:{model}:{fingerprint}"))
    }

    /// Adds one outcome to a model's shared cells; while Redis does not answer, keeps it for when it does.
    pub(crate) async fn learn(
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
            once: None,
            tries: 0,
        };
        // Degraded, or behind outcomes still waiting, the outcome is not sent: kept, and added in order when the
        // connection is made again.
        if self.shared.degraded_now() || self.waiting() || self.shared.connection().await.is_none() {
            self.keep(outcome);
            return;
        }
        let invocation = self.invocation(&outcome);
        let _: Option<i64> =
            self.shared.call("learn", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
    }

    /// Queues an outcome Redis did not get, and starts writing the queue back (when Redis answers) or
    /// reconnecting (when it does not).
    fn keep(self: &Arc<Self>, outcome: Outcome) {
        {
            let mut unsynced = self.unsynced.lock().unwrap_or_else(PoisonError::into_inner);
            unsynced.push_back(outcome);
            while unsynced.len() > UNSYNCED_CAP {
                unsynced.pop_front();
            }
        }
        if self.shared.degraded_now() {
            self.shared.kick();
        } else {
            self.drain_online();
        }
    }

    /// Settles a feedback score in the shared cells (see the module docs); `None` when Redis did not answer
    /// (or outcomes kept during an outage still wait to be written): this replica decides then, and keeps the
    /// score for Redis ([`Self::keep_score`]) if it learned from it.
    pub(crate) async fn score(self: &Arc<Self>, s: &Scoring<'_>) -> Option<Settled> {
        if self.shared.degraded_now() || self.waiting() || self.shared.connection().await.is_none() {
            return None;
        }
        let outcome = self.score_outcome(s);
        let invocation = self.invocation(&outcome);
        let answer: Option<(i64, String)> =
            self.shared.call("feedback", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
        match answer? {
            (0, _) => Some(Settled::Counted),
            (1, previous) => {
                let (score, counted) = previous.split_once(' ')?;
                Some(Settled::Replaced { previous: score.parse().ok()?, counted_ms: counted.parse().ok()? })
            }
            (2, domain) => Some(Settled::OverShare(domain)),
            (3, _) => Some(Settled::Closed),
            (4, _) => Some(Settled::Superseded),
            (5, _) => Some(Settled::Expired),
            _ => None,
        }
    }

    /// Keeps a score this replica learned from while Redis did not answer, to write it when Redis does. (A call
    /// sent and not answered may have landed: sent again, it only replaces the request's score with itself.)
    pub(crate) fn keep_score(self: &Arc<Self>, s: &Scoring<'_>) {
        let outcome = self.score_outcome(s);
        self.keep(outcome);
    }

    fn score_outcome(&self, s: &Scoring<'_>) -> Outcome {
        let o = &s.remembered.observation;
        let key = self.online_key(&o.model, s.fingerprint.unwrap_or_default());
        let share_key = format!("{key}:share:{}", s.key.unwrap_or("-"));
        Outcome {
            key,
            half_life: s.settings.half_life,
            score: s.score,
            predicted: o.predicted,
            domains: o.domains.iter().filter(|(_, w)| *w > 0.0).cloned().collect(),
            once: Some(Once {
                scored_key: self.shared.key(&format!("scored:{}", s.request_id)),
                share_key,
                share: if s.key.is_some() { s.max_share } else { -1.0 },
                prior_strength: s.settings.prior_strength,
                window_ms: millis(s.window).max(1),
                ts_ms: s.ts_ms,
                until_ms: s.until_ms,
            }),
            tries: 0,
        }
    }

    fn invocation(&self, o: &Outcome) -> redis::ScriptInvocation<'_> {
        let script: &Script = if o.once.is_some() { &SCORE_SCRIPT } else { &LEARN_SCRIPT };
        let mut invocation = script.prepare_invoke();
        // The cells are KEYS[1] for both scripts.
        invocation.key(&o.key);
        if let Some(once) = &o.once {
            invocation.key(&once.scored_key).key(&once.share_key);
        }
        invocation.arg(o.half_life).arg(o.score).arg(o.predicted);
        if let Some(once) = &o.once {
            invocation.arg(once.share).arg(once.prior_strength).arg(once.window_ms);
            invocation.arg(once.ts_ms).arg(once.until_ms);
        }
        for (domain, w) in &o.domains {
            invocation.arg(domain).arg(*w);
        }
        invocation
    }

    /// Writes the queued outcomes to Redis in order, [`REPLAY_CHUNK`] per round trip, in a background task
    /// (one at a time). Without a connection the queue waits for the next reconnection; of a chunk sent and not
    /// answered, the feedback scores go back to the queue and the upstream signals are dropped (they may have
    /// landed), counted as an error.
    fn drain_online(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        runtime.spawn(async move {
            loop {
                if me.shared.connection().await.is_none() {
                    break;
                }
                let chunk: Vec<Outcome> = {
                    let mut unsynced = me.unsynced.lock().unwrap_or_else(PoisonError::into_inner);
                    let n = unsynced.len().min(REPLAY_CHUNK);
                    unsynced.drain(..n).collect()
                };
                if chunk.is_empty() {
                    break;
                }
                let mut pipe = redis::pipe();
                pipe.load_script(&LEARN_SCRIPT).ignore();
                pipe.load_script(&SCORE_SCRIPT).ignore();
                for outcome in &chunk {
                    pipe.invoke_script(&me.invocation(outcome)).ignore();
                }
                let sent =
                    me.shared.call("learn (catching up)", |mut c| async move { pipe.query_async::<()>(&mut c).await });
                if sent.await.is_none() {
                    let lost = me.requeue(chunk);
                    if lost > 0 {
                        tracing::warn!(
                            "shared state {}: {lost} online-learning outcomes kept during an outage may not have \
                             reached Redis (they stay in this replica's own cells)",
                            me.shared.shown(),
                        );
                    }
                    break;
                }
            }
            me.draining.store(false, Ordering::SeqCst);
            // An outcome queued as the loop ended is not left behind.
            if me.waiting() && !me.shared.degraded_now() {
                me.drain_online();
            }
        });
    }

    /// Puts the feedback scores of a batch that failed back at the head of the queue, to be sent again with
    /// the next one (they are settled by request id, so one that landed only replaces itself), up to
    /// [`REPLAY_TRIES`] times; upstream signals are not (one that landed would count twice). Returns how many
    /// outcomes were dropped.
    fn requeue(&self, chunk: Vec<Outcome>) -> usize {
        let total = chunk.len();
        let again: Vec<Outcome> = chunk
            .into_iter()
            .filter(|o| o.once.is_some() && o.tries + 1 < REPLAY_TRIES)
            .map(|o| Outcome { tries: o.tries + 1, ..o })
            .collect();
        let kept = again.len();
        let mut unsynced = self.unsynced.lock().unwrap_or_else(PoisonError::into_inner);
        for outcome in again.into_iter().rev() {
            unsynced.push_front(outcome);
        }
        while unsynced.len() > UNSYNCED_CAP {
            unsynced.pop_front();
        }
        total - kept
    }

    fn observation_key(&self, request_id: &str) -> String {
        self.shared.key(&format!("observation:{request_id}"))
    }

    /// Keeps what was predicted for the model that answered `request_id`, for `ttl`.
    pub(crate) async fn save_observation(self: &Arc<Self>, request_id: &str, remembered: &Remembered, ttl: Duration) {
        let Ok(value) = serde_json::to_string(remembered) else { return };
        let (key, ms) = (self.observation_key(request_id), ttl.as_millis().max(1) as u64);
        let _: Option<()> = self
            .shared
            .call("observation", |mut c| async move {
                redis::cmd("SET").arg(key).arg(value).arg("PX").arg(ms).query_async(&mut c).await
            })
            .await;
    }

    /// What was predicted for the model that answered `request_id`, if a replica kept it and it has not
    /// expired; `None` too when Redis does not answer.
    pub(crate) async fn load_observation(self: &Arc<Self>, request_id: &str) -> Option<Remembered> {
        let key = self.observation_key(request_id);
        let value: Option<String> = self
            .shared
            .call("observation", |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        serde_json::from_str(&value?).ok()
    }

    /// Every model's shared cells, for `(model, fingerprint)` pairs, in one round trip; `None` when Redis does
    /// not answer.
    pub(crate) async fn read_online(
        self: &Arc<Self>,
        models: &[(String, String)],
    ) -> Option<Vec<(String, BTreeMap<String, Cell>)>> {
        let mut pipe = redis::pipe();
        for (model, fingerprint) in models {
            pipe.cmd("HGETALL").arg(self.online_key(model, fingerprint));
        }
        let maps: Vec<std::collections::HashMap<String, String>> =
            self.shared.call("read online", |mut c| async move { pipe.query_async(&mut c).await }).await?;
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

mod scripts;
#[cfg(test)]
mod tests;
