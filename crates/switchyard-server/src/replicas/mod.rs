//! State shared by replicas through Redis (or Valkey), `[state] url`: each key's rate limits and budget
//! (admitted and charged by Lua scripts, so the count is exact across replicas), every deployment's health
//! (consecutive failures, cooldown, latency and error averages), and conversations' session pins (with their
//! time to live). Redis's own clock times the limits and cooldowns, so replicas' clocks need not agree.
//!
//! Redis is read first and is the truth while it answers; the process's own state is kept as well. Every call
//! has a short deadline (`state.timeout_ms`, 50 ms by default): a call that misses it falls back to the
//! replica's own state for that request. When a call fails (a refused or reset connection) or three in a row
//! miss their deadline, the replica marks the shared state degraded (`switchyard_state_degraded 1`, one
//! warning), serves from its own state (limits then count per replica), and reconnects in the background with a
//! backoff from 100 ms to 5 s; the reconnection writes the budgets' spend back when Redis lost it. Keys without
//! limits cost no Redis call.

mod config;
mod online;
mod pins;
mod scripts;
mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

pub use config::StateConfig;
use scripts::Scripts;
use switchyard_store::redact;
use wire::{apply_health, why, StoredPin};

use crate::gateway::deployments::Deployments;
use crate::gateway::health::Health;
use crate::http::error::ApiError;
use crate::limits::keys::{Admission, ClientKey, KeyRing};
use crate::routing::sessions::Sessions;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SharedStats {
    /// Calls that failed or missed their deadline.
    pub errors: AtomicU64,
    /// Times the connection was made again after an outage.
    pub reconnects: AtomicU64,
}

/// The connection to the shared state, and whether it is degraded.
pub struct SharedState {
    client: Client,
    shown: String,
    prefix: String,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    degraded: AtomicBool,
    reconnecting: AtomicBool,
    /// Calls in a row that missed their deadline.
    late: std::sync::atomic::AtomicU32,
    scripts: Scripts,
    /// Makes members of the limit windows unique across replicas and calls.
    nonce: String,
    counter: AtomicU64,
    keys: Vec<Arc<ClientKey>>,
    /// Spend charged while Redis did not answer, by key: the budget period's start and the amount.
    unsynced: std::sync::Mutex<HashMap<String, (i64, f64)>>,
    /// Online-learning outcomes counted while Redis did not answer, oldest first.
    unsynced_online: std::sync::Mutex<std::collections::VecDeque<online::Outcome>>,
    /// Whether a task is writing `unsynced_online` to Redis.
    draining: AtomicBool,
    /// What the metrics show.
    pub stats: SharedStats,
}

/// A Redis client for `url`; a `rediss://` one trusts `ca_file` instead of the system's roots when given.
fn client(url: &str, ca_file: Option<&std::path::Path>) -> Result<Client, String> {
    // One TLS back end for the whole process (rustls must be told when it could pick more than one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match ca_file {
        None => Client::open(url).map_err(|e| e.to_string()),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("state.ca_file {}: {e}", path.display()))?;
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
            Client::build_with_tls(url, certs).map_err(|e| format!("state.ca_file {}: {e}", path.display()))
        }
    }
}

/// Calls in a row that miss their deadline before the shared state counts as out of reach.
const LATE_IN_A_ROW: u32 = 3;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The backoff of reconnection.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Weight of the newest observation in the health averages (as in [`crate::gateway::health`]).
const EWMA_WEIGHT: f64 = 0.2;

impl SharedState {
    /// Checks that Redis answers (a blocking PING: call it at start-up, before serving). Unreachable, it is an
    /// error when `state.required`; otherwise the replica starts degraded, with a warning, and keeps trying.
    pub fn start(config: &StateConfig, keys: &KeyRing) -> Result<Option<Arc<Self>>, String> {
        let Some(url) = &config.url else { return Ok(None) };
        let shown = redact(url);
        let client = client(url, config.ca_file.as_deref()).map_err(|e| format!("state.url {shown:?}: {e}"))?;
        // The read timeout matters: a port that accepts and stays silent (another server) must not hang start-up.
        let ping = client.get_connection_with_timeout(CONNECT_TIMEOUT).and_then(|mut c| {
            c.set_read_timeout(Some(CONNECT_TIMEOUT))?;
            c.set_write_timeout(Some(CONNECT_TIMEOUT))?;
            redis::cmd("PING").query::<String>(&mut c)
        });
        let degraded = match ping {
            Ok(_) => false,
            Err(e) if config.required => {
                return Err(format!(
                    "state.url {shown}: {}; start it, fix state.url (host, port, password), or set state.required = \
                     false to start on local state and reconnect",
                    why(&e)
                ))
            }
            Err(e) => {
                tracing::warn!(
                    "shared state {shown}: {}; starting on this replica's own state (limits count per replica) and \
                     reconnecting in the background",
                    why(&e)
                );
                true
            }
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(Some(Arc::new(Self {
            client,
            shown,
            prefix: config.prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            conn: tokio::sync::Mutex::new(None),
            degraded: AtomicBool::new(degraded),
            reconnecting: AtomicBool::new(false),
            late: std::sync::atomic::AtomicU32::new(0),
            scripts: Scripts::new(),
            nonce: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff),
            counter: AtomicU64::new(0),
            keys: keys.all().to_vec(),
            unsynced: std::sync::Mutex::new(HashMap::new()),
            unsynced_online: std::sync::Mutex::new(std::collections::VecDeque::new()),
            draining: AtomicBool::new(false),
            stats: SharedStats::default(),
        })))
    }

    /// Whether the replica runs on its own state now (Redis unreachable).
    pub fn is_degraded(self: &Arc<Self>) -> bool {
        let degraded = self.degraded.load(Ordering::SeqCst);
        if degraded {
            self.kick();
        }
        degraded
    }

    /// Appends the shared state's metrics: degraded (Redis out of reach), call errors, reconnections, and
    /// online-learning outcomes waiting for Redis.
    pub fn render(self: &Arc<Self>, out: &mut String) {
        use crate::metrics::scalar;
        let help = "1 while Redis is out of reach and limits count per replica.";
        scalar(out, "switchyard_state_degraded", "gauge", help, u64::from(self.is_degraded()));
        let help = "Redis calls that failed or missed their deadline.";
        scalar(out, "switchyard_state_errors_total", "counter", help, self.stats.errors.load(Ordering::Relaxed));
        let help = "Connections to Redis made again after an outage.";
        scalar(
            out,
            "switchyard_state_reconnects_total",
            "counter",
            help,
            self.stats.reconnects.load(Ordering::Relaxed),
        );
        let help = "Online-learning outcomes counted while Redis was out of reach, not yet added there.";
        let waiting = self.unsynced_online.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() as u64;
        scalar(out, "switchyard_state_unsynced_outcomes", "gauge", help, waiting);
    }

    /// Where Redis is, password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn member(&self) -> String {
        format!("{}-{}", self.nonce, self.counter.fetch_add(1, Ordering::Relaxed))
    }

    fn key_prefix(&self, key: &ClientKey) -> String {
        // The key's name in braces, so its entries stay apart from other keys' (Redis Cluster is not supported:
        // the scripts touch the shared health hash too).
        format!("{}:key:{{{}}}", self.prefix, key.name)
    }

    /// The key's spend counter for the budget period holding `now_ms` (by this replica's clock), when it
    /// expires (0: never) and the period's start.
    fn spend_key(&self, key: &ClientKey, now_ms: i64) -> (String, i64, i64) {
        let (start, end) = key.budget_period().bounds(now_ms);
        // A day past the period's end, so a late charge still lands; a total budget never expires.
        (format!("{}:spend:{start}", self.key_prefix(key)), end.map_or(0, |e| e + 86_400_000), start)
    }

    /// Opens a connection and writes back any budget spend Redis does not hold (after a Redis restart).
    async fn open(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.timeout.max(Duration::from_millis(500))));
        let mut conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        // Budgets: Redis gets the spend it does not hold (it restarted empty: this replica's view, which the
        // decision log seeded at start-up) or the spend it missed (charged here while it was out of reach).
        let now_ms = switchyard_store::now_ms();
        let missed = self.unsynced.lock().map(|m| m.clone()).unwrap_or_default();
        for key in self.keys.iter().filter(|k| k.budget().is_some()) {
            let (spend, expires, start) = self.spend_key(key, now_ms);
            let pending = missed.get(&key.name).filter(|(period, _)| *period == start).map_or(0.0, |(_, usd)| *usd);
            let mut invocation = self.scripts.resync.prepare_invoke();
            invocation.key(&spend).arg(key.spend_at(now_ms)).arg(pending).arg(expires);
            invocation.invoke_async::<i64>(&mut conn).await?;
        }
        if let Ok(mut unsynced) = self.unsynced.lock() {
            for (name, (period, usd)) in missed {
                if let Some(entry) = unsynced.get_mut(&name) {
                    if entry.0 == period {
                        entry.1 -= usd;
                    }
                }
            }
            unsynced.retain(|_, (_, usd)| *usd > 1e-12);
        }
        Ok(conn)
    }

    /// The connection, made on first use; `None` while degraded.
    async fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        if self.is_degraded() {
            return None;
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        // Waiting for the lock, another caller may have failed to connect: do not try again in turn.
        if self.degraded.load(Ordering::SeqCst) {
            return None;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                drop(slot);
                self.lost(&format!("cannot connect: {e}"));
                None
            }
            Err(_) => {
                drop(slot);
                self.lost("cannot connect within a second");
                None
            }
        }
    }

    /// Runs one call against Redis within the deadline; `None` (and degraded) when it fails.
    async fn call<T, F, Fut>(self: &Arc<Self>, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(v)) => {
                self.late.store(0, Ordering::Relaxed);
                Some(v)
            }
            Ok(Err(e)) => {
                self.lost(&format!("{what}: {e}"));
                None
            }
            Err(_) => {
                // One late answer (a busy machine) falls back for this call only; several in a row mean Redis
                // is out of reach.
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let late = self.late.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(
                    "shared state {}: {what}: no answer within {} ms",
                    self.shown,
                    self.timeout.as_millis()
                );
                if late >= LATE_IN_A_ROW {
                    self.late.store(0, Ordering::Relaxed);
                    self.lost(&format!(
                        "{what}: {late} calls in a row had no answer within {} ms",
                        self.timeout.as_millis()
                    ));
                }
                None
            }
        }
    }

    /// A call failed: degrade (warning once), drop the connection and reconnect in the background.
    fn lost(self: &Arc<Self>, why: &str) {
        if !why.contains("in a row had no answer") {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        if !self.degraded.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "shared state {}: {why}; serving from this replica's own state (limits count per replica) until \
                 Redis answers again",
                self.shown
            );
        }
        if let Ok(mut slot) = self.conn.try_lock() {
            *slot = None;
        }
        self.kick();
    }

    /// Starts the reconnection loop unless it runs (needs a Tokio runtime; without one, nothing happens).
    fn kick(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if self.reconnecting.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = self.clone();
        runtime.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            let mut attempts = 1u32;
            loop {
                tokio::time::sleep(backoff).await;
                match tokio::time::timeout(CONNECT_TIMEOUT, me.open()).await {
                    Ok(Ok(c)) => {
                        *me.conn.lock().await = Some(c);
                        me.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        // The loop is done before the state is healthy again, so a failure right after starts
                        // a new one.
                        me.reconnecting.store(false, Ordering::SeqCst);
                        me.degraded.store(false, Ordering::SeqCst);
                        tracing::info!("shared state {}: Redis answers again; limits are shared again", me.shown);
                        me.drain_online();
                        return;
                    }
                    // Said once a minute at most (the backoff reaches 5 s): why it keeps failing.
                    Ok(Err(e)) if attempts.is_multiple_of(12) => {
                        tracing::warn!("shared state {}: reconnecting: {}", me.shown, why(&e));
                    }
                    Err(_) if attempts.is_multiple_of(12) => {
                        tracing::warn!("shared state {}: reconnecting: no answer within a second", me.shown);
                    }
                    _ => {}
                }
                attempts += 1;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Admits a request against the key's shared limits, and in the same round trip reads every deployment's
    /// shared health into `health`. `None` when Redis did not answer (use the local limits); else the decision,
    /// `Ok(true)` when the health was read (a key without limits needs no Redis call: `Ok(false)`).
    pub async fn admit(
        self: &Arc<Self>,
        key: &ClientKey,
        what: Admission,
        now_ms: i64,
        health: &Health,
        deployments: &Deployments,
    ) -> Option<Result<bool, ApiError>> {
        if key.rpm().is_none() && key.tpm().is_none() && key.budget().is_none() {
            return Some(Ok(false));
        }
        let prefix = self.key_prefix(key);
        let (spend, _, _) = self.spend_key(key, now_ms);
        let spends = what == Admission::Spend;
        let mut invocation = self.scripts.admit.prepare_invoke();
        invocation
            .key(format!("{prefix}:rpm"))
            .key(format!("{prefix}:tpm"))
            .key(&spend)
            .key(self.health_key())
            .arg(key.rpm().unwrap_or(0))
            .arg(key.tpm().unwrap_or(0))
            .arg(key.budget().unwrap_or(-1.0))
            .arg(if spends { "1" } else { "0" })
            .arg(self.member());
        let (verdict, flat): (Vec<String>, Vec<String>) =
            self.call("admit", |mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        let num = |i: usize| verdict.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let now = num(1);
        apply_health(now, &flat, health, deployments);
        let retry = |since: f64| (((since + 60_000.0 - now) / 1000.0).ceil().max(1.0)) as u64;
        Some(match verdict.first().map(String::as_str) {
            Some("1") => Err(key.over_rpm(retry(num(2)))),
            Some("2") => Err(key.over_tpm(num(3) as u64, retry(num(2)))),
            Some("3") => Err(key.over_budget(num(2), now_ms)),
            _ => Ok(true),
        })
    }

    fn health_key(&self) -> String {
        format!("{}:health", self.prefix)
    }

    /// Counts what a call used toward the key's shared tpm window and budget.
    pub async fn charge(self: &Arc<Self>, key: &ClientKey, tokens: u64, cost_usd: f64, now_ms: i64) {
        let (tpm, budgeted) = (key.tpm().is_some(), key.budget().is_some());
        let tokens = if tpm { tokens } else { 0 };
        if tokens == 0 && !(budgeted && cost_usd > 0.0) {
            return;
        }
        let prefix = self.key_prefix(key);
        let (spend, expires, start) = self.spend_key(key, now_ms);
        let mut invocation = self.scripts.charge.prepare_invoke();
        invocation
            .key(format!("{prefix}:tpm"))
            .key(spend)
            .arg(tokens)
            .arg(cost_usd.max(0.0))
            .arg(self.member())
            .arg(expires)
            .arg(if budgeted { "1" } else { "0" });
        // Degraded, the charge is not sent: kept, and added in Redis when the connection is made again. A charge
        // sent and not answered may have landed, so it is not kept (Redis may then miss one request's cost).
        if self.degraded.load(Ordering::SeqCst) {
            if budgeted && cost_usd > 0.0 {
                if let Ok(mut unsynced) = self.unsynced.lock() {
                    let entry = unsynced.entry(key.name.clone()).or_insert((start, 0.0));
                    if entry.0 != start {
                        *entry = (start, 0.0);
                    }
                    entry.1 += cost_usd;
                }
            }
            self.kick();
            return;
        }
        let _: Option<i64> = self.call("charge", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
    }

    /// Records a call's outcome in the deployment's shared health; `Some(true)` when it put the deployment in
    /// cooldown.
    pub async fn observe(
        self: &Arc<Self>,
        deployment: &str,
        ok: bool,
        elapsed: Duration,
        threshold: u32,
        cooldown: Duration,
    ) -> Option<bool> {
        let mut invocation = self.scripts.observe.prepare_invoke();
        invocation
            .key(self.health_key())
            .arg(deployment)
            .arg(if ok { "1" } else { "0" })
            .arg(elapsed.as_secs_f64() * 1e3)
            .arg(threshold)
            .arg(cooldown.as_millis() as u64)
            .arg(EWMA_WEIGHT);
        let cooled: i64 = self.call("health", |mut c| async move { invocation.invoke_async(&mut c).await }).await?;
        Some(cooled == 1)
    }

    /// Reads every deployment's shared health into `health` (unless `health_read`: the admission read it
    /// already) and the conversation's pin (if `conversation`) into `sessions`, in one round trip; nothing to read,
    /// no call. Redis is the truth: a pin it does not hold is dropped here too.
    pub async fn sync(
        self: &Arc<Self>,
        health: &Health,
        deployments: &Deployments,
        sessions: &Sessions,
        conversation: Option<&str>,
        health_read: bool,
    ) {
        if health_read && conversation.is_none() {
            return;
        }
        let mut invocation = self.scripts.read.prepare_invoke();
        invocation.key(self.health_key());
        if let Some(id) = conversation {
            invocation.key(self.pin_key(id));
        }
        invocation.arg(if health_read { "0" } else { "1" });
        let reply: Option<(String, Vec<String>, Option<String>)> =
            self.call("read", |mut c| async move { invocation.invoke_async(&mut c).await }).await;
        let Some((now, flat, pin)) = reply else { return };
        apply_health(now.parse().unwrap_or(0.0), &flat, health, deployments);
        if let Some(id) = conversation {
            let stored = pin.and_then(|p| serde_json::from_str::<StoredPin>(&p).ok());
            sessions.adopt(id, stored.map(|p| (p.model, p.cheaper_turns)), Instant::now());
        }
    }
}

/// The request's deployments' health was read with its admission (a request extension the key middleware
/// sets), so the handler need not read it again.
#[derive(Debug, Clone, Copy)]
pub struct HealthRead;
