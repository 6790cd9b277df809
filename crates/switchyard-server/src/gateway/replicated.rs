//! Deployments' health shared by the replicas in Redis: one hash, a field per deployment holding its failures in
//! a row, cooldown, latency and error averages (JSON). Every call's outcome is added by a script; the hash is
//! read back with each request's admission or decision, and taken as this replica's view.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;
use serde::Deserialize;

use crate::gateway::deployments::Deployments;
use crate::gateway::health::{Health, SharedHealth};
use crate::replicas::{HashAt, SharedState};

/// Weight of the newest observation in the health averages (as in [`crate::gateway::health`]).
const EWMA_WEIGHT: f64 = 0.2;

/// KEYS: health hash. ARGV: deployment, ok (1/0), ms, threshold, cooldown ms, weight.
static OBSERVE: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local h = {fails = 0, cool_until = 0, err = 0, calls = 0}
if raw then h = cjson.decode(raw) end
local ok, ms, w = ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[6])
h.calls = h.calls + 1
local cooled = 0
if ok then
  if h.lat then h.lat = h.lat + w * (ms - h.lat) else h.lat = ms end
  h.err = h.err + w * (0 - h.err)
  h.fails = 0
  h.cool_until = 0
else
  h.err = h.err + w * (1 - h.err)
  h.fails = h.fails + 1
  if h.fails >= tonumber(ARGV[4]) then
    h.cool_until = now + tonumber(ARGV[5])
    cooled = 1
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(h))
return cooled
",
    )
});

/// The hash of every deployment's health.
pub(crate) fn health_key(shared: &SharedState) -> String {
    shared.key("health")
}

impl SharedState {
    /// Records a call's outcome in the deployment's shared health; `Some(true)` when it put the deployment in
    /// cooldown, `None` when Redis did not answer.
    pub(crate) async fn observe(
        self: &Arc<Self>,
        deployment: &str,
        ok: bool,
        elapsed: Duration,
        threshold: u32,
        cooldown: Duration,
    ) -> Option<bool> {
        let mut invocation = OBSERVE.prepare_invoke();
        invocation
            .key(health_key(self))
            .arg(deployment)
            .arg(if ok { "1" } else { "0" })
            .arg(elapsed.as_secs_f64() * 1e3)
            .arg(threshold)
            .arg(cooldown.as_millis() as u64)
            .arg(EWMA_WEIGHT);
        let cooled: i64 = self.call("health", |mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        Some(cooled == 1)
    }
}

/// Takes the health hash (read at Redis's time) as this replica's view.
pub(crate) fn apply_health(read: &HashAt, health: &Health, deployments: &Deployments) {
    for pair in read.fields.chunks_exact(2) {
        let (Some(up), Ok(view)) = (deployments.named(&pair[0]), serde_json::from_str::<StoredHealth>(&pair[1])) else {
            continue;
        };
        let now = read.now_ms;
        let cooling = (view.cool_until > now).then(|| Duration::from_millis((view.cool_until - now) as u64));
        health.adopt(
            up,
            &SharedHealth {
                consecutive_failures: view.fails as u32,
                cooling_for: cooling,
                latency_ms: view.lat,
                error_rate: view.err,
                calls: view.calls as u64,
            },
        );
    }
}

/// A deployment's health as the `observe` script writes it.
#[derive(Debug, Deserialize)]
struct StoredHealth {
    #[serde(default)]
    fails: f64,
    #[serde(default)]
    cool_until: f64,
    lat: Option<f64>,
    #[serde(default)]
    err: f64,
    #[serde(default)]
    calls: f64,
}
