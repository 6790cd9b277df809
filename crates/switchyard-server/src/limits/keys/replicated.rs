//! Client keys' limits shared by the replicas in Redis: each key's rpm and tpm windows and its budget's spend,
//! admitted and charged by Lua scripts so the count is exact across replicas. Spend charged while Redis is out
//! of reach is kept on the key and written back on the next connection ([`BudgetResync`]), as is the spend of a
//! Redis that restarted empty (this replica's view, which the decision log seeded at start-up).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use redis::aio::MultiplexedConnection;
use redis::Script;

use super::{Admission, ClientKey};
use crate::http::error::ApiError;
use crate::replicas::{HashAt, Resync, SharedState};

/// KEYS: rpm zset, tpm zset, spend, health hash. ARGV: rpm, tpm, budget (-1: none), spends (1/0), member.
/// Returns the verdict (`{0, now}` or `{refusal, now, details...}`) and, in the same round trip, every
/// deployment's health (the gateway's hash, read for the request the key admits).
static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
local function admit()
  local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
  local spends = ARGV[4] == '1'
  if spends and budget >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
    if spent >= budget then return {3, now, tostring(spent)} end
  end
  local from = now - 60000
  if rpm > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', from)
    if redis.call('ZCARD', KEYS[1]) >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
      return {1, now, oldest[2]}
    end
  end
  if spends and tpm > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', from)
    local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    local used = 0
    for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], ':(%d+)$')) end
    if used >= tpm then
      local left = used
      for i = 1, #entries, 2 do
        left = left - tonumber(string.match(entries[i], ':(%d+)$'))
        if left < tpm then return {2, now, entries[i + 1], tostring(used)} end
      end
      return {2, now, tostring(now), tostring(used)}
    end
  end
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, ARGV[5])
    redis.call('PEXPIRE', KEYS[1], 61000)
  end
  return {0, now}
end
return {admit(), redis.call('HGETALL', KEYS[4])}
",
    )
});

/// KEYS: tpm zset, spend. ARGV: tokens (0: no tpm), cost, member, spend expiry (ms since epoch; 0: never),
/// budgeted (1/0).
static CHARGE: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
local tokens = tonumber(ARGV[1])
if tokens > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if ARGV[5] == '1' then
  redis.call('INCRBYFLOAT', KEYS[2], ARGV[2])
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIREAT', KEYS[2], ARGV[4]) end
end
return 1
",
    )
});

/// KEYS: spend. ARGV: this replica's spend for the period, spend Redis missed, expiry (0: never). Redis without
/// the counter (restarted empty) takes the replica's figure; with it, adds what it missed.
static RESYNC: LazyLock<Script> = LazyLock::new(|| {
    crate::replicas::script(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  if tonumber(ARGV[2]) > 0 then redis.call('INCRBYFLOAT', KEYS[1], ARGV[2]) end
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[3]) end
return 1
",
    )
});

/// The key's entries: its name in braces, so they stay apart from other keys' (Redis Cluster is not
/// supported: the admission script reads the shared health hash too).
fn key_prefix(shared: &SharedState, key: &ClientKey) -> String {
    shared.key(&format!("key:{{{}}}", key.name))
}

/// The key's spend counter for the budget period holding `now_ms` (by this replica's clock), when it expires
/// (0: never) and the period's start.
fn spend_key(shared: &SharedState, key: &ClientKey, now_ms: i64) -> (String, i64, i64) {
    let (start, end) = key.budget_period().bounds(now_ms);
    // A day past the period's end, so a late charge still lands; a total budget never expires.
    (format!("{}:spend:{start}", key_prefix(shared, key)), end.map_or(0, |e| e + 86_400_000), start)
}

/// What the shared limits said of a request.
pub(crate) struct SharedAdmission {
    /// Admitted, or why not.
    pub verdict: Result<(), ApiError>,
    /// Every deployment's shared health, read in the same round trip (`None`: the key has no limits, so no
    /// call was made).
    pub health: Option<HashAt>,
}

impl SharedState {
    /// Admits a request against the key's shared limits, reading every deployment's shared health (the hash at
    /// `health_key`) in the same round trip. `None` when Redis did not answer: use this replica's own count.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        key: &ClientKey,
        what: Admission,
        now_ms: i64,
        health_key: &str,
    ) -> Option<SharedAdmission> {
        if key.rpm().is_none() && key.tpm().is_none() && key.budget().is_none() {
            return Some(SharedAdmission { verdict: Ok(()), health: None });
        }
        let prefix = key_prefix(self, key);
        let (spend, _, _) = spend_key(self, key, now_ms);
        let spends = what == Admission::Spend;
        let mut invocation = ADMIT.prepare_invoke();
        invocation
            .key(format!("{prefix}:rpm"))
            .key(format!("{prefix}:tpm"))
            .key(&spend)
            .key(health_key)
            .arg(key.rpm().unwrap_or(0))
            .arg(key.tpm().unwrap_or(0))
            .arg(key.budget().unwrap_or(-1.0))
            .arg(if spends { "1" } else { "0" })
            .arg(self.member());
        let (verdict, fields): (Vec<String>, Vec<String>) =
            self.call("admit", |mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        let num = |i: usize| verdict.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let now = num(1);
        let retry = |since: f64| (((since + 60_000.0 - now) / 1000.0).ceil().max(1.0)) as u64;
        let verdict = match verdict.first().map(String::as_str) {
            Some("1") => Err(key.over_rpm(retry(num(2)))),
            Some("2") => Err(key.over_tpm(num(3) as u64, retry(num(2)))),
            Some("3") => Err(key.over_budget(num(2), now_ms)),
            _ => Ok(()),
        };
        Some(SharedAdmission { verdict, health: Some(HashAt { now_ms: now, fields }) })
    }

    /// Counts what a call used toward the key's shared tpm window and budget. While Redis is out of reach the
    /// spend is kept on the key and written back on the next connection; a charge sent and not answered may
    /// have landed, so it is not kept (Redis may then miss one request's cost).
    pub(crate) async fn charge(self: &Arc<Self>, key: &ClientKey, tokens: u64, cost_usd: f64, now_ms: i64) {
        let (tpm, budgeted) = (key.tpm().is_some(), key.budget().is_some());
        let tokens = if tpm { tokens } else { 0 };
        if tokens == 0 && !(budgeted && cost_usd > 0.0) {
            return;
        }
        let prefix = key_prefix(self, key);
        let (spend, expires, start) = spend_key(self, key, now_ms);
        let mut invocation = CHARGE.prepare_invoke();
        invocation
            .key(format!("{prefix}:tpm"))
            .key(spend)
            .arg(tokens)
            .arg(cost_usd.max(0.0))
            .arg(self.member())
            .arg(expires)
            .arg(if budgeted { "1" } else { "0" });
        if self.degraded_now() {
            if budgeted && cost_usd > 0.0 {
                key.keep_unsynced(start, cost_usd);
            }
            self.kick();
            return;
        }
        let _: Option<i64> = self.call("charge", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
    }
}

/// Writes the budgets' spend back on every new connection: Redis gets the spend it does not hold (it restarted
/// empty: this replica's view) or the spend it missed (charged here while it was out of reach).
pub(crate) struct BudgetResync {
    /// The keys with a budget.
    pub keys: Vec<Arc<ClientKey>>,
}

impl Resync for BudgetResync {
    fn on_connect<'a>(
        &'a self,
        shared: &'a SharedState,
        conn: &'a mut MultiplexedConnection,
    ) -> Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send + 'a>> {
        Box::pin(async move {
            let now_ms = switchyard_store::now_ms();
            let mut sent = Vec::new();
            for key in self.keys.iter().filter(|k| k.budget().is_some()) {
                let (spend, expires, start) = spend_key(shared, key, now_ms);
                let missed = key.unsynced().filter(|(period, _)| *period == start);
                let pending = missed.map_or(0.0, |(_, usd)| usd);
                let mut invocation = RESYNC.prepare_invoke();
                invocation.key(&spend).arg(key.spend_at(now_ms)).arg(pending).arg(expires);
                invocation.invoke_async::<i64>(conn).await?;
                sent.extend(missed.map(|m| (key.clone(), m)));
            }
            // Only once every key was written: what was charged meanwhile stays for the next connection.
            for (key, (period, usd)) in sent {
                key.settle_unsynced(period, usd);
            }
            Ok(())
        })
    }
}
