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
//!
//! A feedback score is settled by one script, atomically ([`SharedState::score`]): it reads the score counted
//! for the request so far (`{prefix}:scored:{request_id}`, kept for `learning.feedback_window_s`). With one,
//! the new score replaces it: each domain cell's successes move by `w · (new − old)` (kept within `[0, n]`)
//! and no observation is added. Without one, the key's share of each cell is checked against its window
//! (`{prefix}:online:{model}:{fingerprint}:share:{key}`, a field per domain holding "window start, weight"): over
//! `learning.max_key_share` of `prior_strength + n`, nothing is written and the domain is answered; within it,
//! the observation is added as `learn` adds one and the score is kept as the request's. Since the script is
//! keyed by request id, a score kept through an outage and written back later (or a call that landed without
//! its answer, sent again) is never counted twice: it only replaces the request's score. So a request counts
//! once across every replica, and a key's share is counted over all of them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, PoisonError};
use std::time::Duration;

use redis::Script;
use switchyard_core::Cell;

use super::SharedState;
use crate::learning::scores::{Scoring, Settled};
use crate::learning::Observation;

/// KEYS: the model's cells, the request's counted score, the key's share windows. ARGV: half life, score,
/// predicted, the score's lifetime (ms), the share (-1: none), κ, the window (ms), then (domain, weight) pairs.
/// Returns `{0, ''}` (counted), `{1, previous score}` (replaced) or `{2, domain}` (over the key's share).
const SCORE: &str = r"
local half, score, predicted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, share, kappa, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local function cell(domain)
  local c = redis.call('HGET', KEYS[1], domain)
  if not c then return 0, 0, 0 end
  local a, b, p = string.match(c, '(%S+) (%S+) (%S+)')
  return tonumber(a), tonumber(b), tonumber(p)
end
local function put(domain, n, s, p)
  redis.call('HSET', KEYS[1], domain, string.format('%.17g %.17g %.17g', n, s, p))
end
local previous = redis.call('GET', KEYS[2])
if previous then
  local delta = score - tonumber(previous)
  for i = 8, #ARGV, 2 do
    local domain, w = ARGV[i], tonumber(ARGV[i + 1])
    local n, s, p = cell(domain)
    if n > 0 then put(domain, n, math.min(n, math.max(0, s + w * delta)), p) end
  end
  local left = redis.call('PTTL', KEYS[2])
  if left <= 0 then left = ttl end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', left)
  return {1, previous}
end
if share >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local windows = {}
  for i = 8, #ARGV, 2 do
    local domain, w = ARGV[i], tonumber(ARGV[i + 1])
    local n = cell(domain)
    local since, used = now, 0
    local entry = redis.call('HGET', KEYS[3], domain)
    if entry then
      local a, b = string.match(entry, '(%S+) (%S+)')
      if now - tonumber(a) < window then since, used = tonumber(a), tonumber(b) end
    end
    if used + w > share * (kappa + n + w) + 1e-9 then return {2, domain} end
    windows[i] = string.format('%d %.17g', since, used + w)
  end
  for i = 8, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], windows[i]) end
  redis.call('PEXPIRE', KEYS[3], window)
end
for i = 8, #ARGV, 2 do
  local domain, w = ARGV[i], tonumber(ARGV[i + 1])
  local n, s, p = cell(domain)
  local keep = 1
  if half > 0 then keep = math.pow(0.5, w / half) end
  put(domain, n * keep + w, s * keep + w * score, p * keep + w * predicted)
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ttl)
return {0, ''}
";

static SCORE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SCORE));

/// What makes an outcome a feedback score: counted once per request, within the key's share.
#[derive(Debug, Clone, PartialEq)]
struct Once {
    scored_key: String,
    share_key: String,
    ttl_ms: u64,
    share: f64,
    prior_strength: f64,
    window_ms: u64,
}

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
    /// For a feedback score (the `SCORE` script); `None` for an upstream signal (`learn`).
    once: Option<Once>,
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
            once: None,
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

    /// Settles a feedback score in the shared cells (see the module docs); `None` when Redis did not answer,
    /// and then the score is kept and written when it does (this replica decides meanwhile).
    pub(crate) async fn score(self: &Arc<Self>, s: &Scoring<'_>) -> Option<Settled> {
        let o = s.observation;
        let key = self.online_key(&o.model, s.fingerprint);
        let share_key = format!("{key}:share:{}", s.key.unwrap_or("-"));
        let outcome = Outcome {
            key,
            half_life: s.settings.half_life,
            score: s.score,
            predicted: o.predicted,
            domains: o.domains.iter().filter(|(_, w)| *w > 0.0).cloned().collect(),
            once: Some(Once {
                scored_key: format!("{}:scored:{}", self.prefix, s.request_id),
                share_key,
                ttl_ms: s.ttl.as_millis().max(1) as u64,
                share: if s.key.is_some() { s.max_share } else { -1.0 },
                prior_strength: s.settings.prior_strength,
                window_ms: s.window.as_millis().max(1) as u64,
            }),
        };
        let waiting = !self.unsynced_online.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        if self.degraded.load(Ordering::SeqCst) || waiting || self.connection().await.is_none() {
            self.keep(outcome);
            return None;
        }
        let invocation = self.invocation(&outcome);
        let answer: Option<(i64, String)> =
            self.call("feedback", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
        match answer {
            Some((0, _)) => Some(Settled::Counted),
            Some((1, previous)) => previous.parse().ok().map(Settled::Replaced),
            Some((2, domain)) => Some(Settled::OverShare(domain)),
            Some(_) => None,
            None => {
                // It may have landed: sent again, it only replaces the request's score with the same one.
                self.keep(outcome);
                None
            }
        }
    }

    fn invocation(&self, o: &Outcome) -> redis::ScriptInvocation<'_> {
        let script: &Script = if o.once.is_some() { &SCORE_SCRIPT } else { &self.scripts.learn };
        let mut invocation = script.prepare_invoke();
        // The cells are KEYS[1] for both scripts.
        invocation.key(&o.key);
        if let Some(once) = &o.once {
            invocation.key(&once.scored_key).key(&once.share_key);
        }
        invocation.arg(o.half_life).arg(o.score).arg(o.predicted);
        if let Some(once) = &o.once {
            invocation.arg(once.ttl_ms).arg(once.share).arg(once.prior_strength).arg(once.window_ms);
        }
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
                pipe.load_script(&SCORE_SCRIPT).ignore();
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
