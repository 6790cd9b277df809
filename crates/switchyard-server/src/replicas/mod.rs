//! The store replicas share, Redis (or Valkey) at `[state] url`: the connection, its deadlines, and what
//! happens when Redis is out of reach. It knows nothing of the features that keep state in it: each owns its
//! keys, its Lua scripts and what it writes back after an outage, in an `impl SharedState` block or a
//! [`Resync`] hook of its own — client keys' limits and budgets ([`crate::limits::keys`]), deployments' health
//! ([`crate::gateway`]), session pins ([`crate::routing`]) and online learning ([`crate::learning`]). Features
//! depend on this module, never the other way round. Redis's own clock times limits and cooldowns (the scripts
//! read `TIME`), so replicas' clocks need not agree.
//!
//! Redis is read first and is the truth while it answers; the process's own state is kept as well. Every call
//! has a short deadline (`state.timeout_ms`, 50 ms by default): a call that misses it falls back to the
//! replica's own state for that request. When a call fails (a refused or reset connection) or three in a row
//! miss their deadline, the replica marks the shared state degraded (`switchyard_state_degraded 1`, one
//! warning), serves from its own state (limits then count per replica), and reconnects in the background with a
//! backoff from 100 ms to 5 s; on the new connection, before it serves a call, each [`Resync`] hook writes back
//! what Redis lost or missed (budgets' spend), and once the replica is back each catches up (online-learning
//! outcomes kept meanwhile).

mod config;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};

pub use config::StateConfig;
use switchyard_store::redact;

/// Redis's clock in milliseconds, as `now`: the first line of every script.
const NOW: &str =
    "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

/// A Lua script that runs atomically inside Redis, with `now` (Redis's clock, in milliseconds) defined first.
pub(crate) fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{NOW}{body}"))
}

/// A Redis hash read in a script at Redis's time: its fields and values, flattened.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct HashAt {
    /// Redis's clock when it was read, in milliseconds.
    pub now_ms: f64,
    /// `[field, value, field, value, ...]`.
    pub fields: Vec<String>,
}

/// What a feature writes back to Redis after an outage, registered with [`SharedState::register`].
pub(crate) trait Resync: Send + Sync {
    /// Runs on every new connection before it serves a call: writes back what Redis lost (it restarted empty)
    /// or missed (charged here while it was out of reach). An error fails the connection.
    fn on_connect<'a>(
        &'a self,
        shared: &'a SharedState,
        conn: &'a mut MultiplexedConnection,
    ) -> Pin<Box<dyn Future<Output = redis::RedisResult<()>> + Send + 'a>>;

    /// Runs once the replica is back on the shared state after an outage (to send what it kept meanwhile).
    fn reconnected(self: Arc<Self>) {}

    /// Appends the feature's own gauges about the shared state (what waits for Redis).
    fn render(&self, _out: &mut String) {}
}

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
    /// Makes members of the limit windows unique across replicas and calls.
    nonce: String,
    counter: AtomicU64,
    /// What the features write back after an outage.
    hooks: std::sync::Mutex<Vec<Arc<dyn Resync>>>,
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

impl SharedState {
    /// Checks that Redis answers (a blocking PING: call it at start-up, before serving). Unreachable, it is an
    /// error when `state.required`; otherwise the replica starts degraded, with a warning, and keeps trying.
    pub fn start(config: &StateConfig) -> Result<Option<Arc<Self>>, String> {
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
            nonce: format!("{:x}{:x}", std::process::id(), nanos & 0xffff_ffff),
            counter: AtomicU64::new(0),
            hooks: std::sync::Mutex::new(Vec::new()),
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

    /// Registers a feature's [`Resync`] hook (its writes after an outage, its gauges).
    pub(crate) fn register(&self, hook: Arc<dyn Resync>) {
        self.hooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(hook);
    }

    fn hooks(&self) -> Vec<Arc<dyn Resync>> {
        self.hooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether Redis is out of reach now, without starting a reconnection.
    pub(crate) fn degraded_now(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// A Redis key under the configured prefix: `{prefix}:{name}`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// Appends the shared state's metrics: degraded (Redis out of reach), call errors, reconnections, and
    /// what each feature keeps for Redis.
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
        for hook in self.hooks() {
            hook.render(out);
        }
    }

    /// Where Redis is, password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// A value unique across replicas and calls (a member of a limit window).
    pub(crate) fn member(&self) -> String {
        format!("{}-{}", self.nonce, self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Opens a connection, and lets every [`Resync`] hook write back what Redis lost or missed.
    async fn open(&self) -> redis::RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(self.timeout.max(Duration::from_millis(500))));
        let mut conn = self.client.get_multiplexed_async_connection_with_config(&config).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        for hook in self.hooks() {
            hook.on_connect(self, &mut conn).await?;
        }
        Ok(conn)
    }

    /// The connection, made on first use; `None` while degraded.
    pub(crate) async fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
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

    /// Runs one call against Redis within the deadline (`what` names it in logs); `None` (and degraded) when it
    /// fails.
    pub(crate) async fn call<T, F, Fut>(self: &Arc<Self>, what: &str, f: F) -> Option<T>
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
    pub(crate) fn kick(self: &Arc<Self>) {
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
                        for hook in me.hooks() {
                            hook.reconnected();
                        }
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
}

/// The request's deployments' health was read with its admission (a request extension the key middleware
/// sets), so the handler need not read it again.
#[derive(Debug, Clone, Copy)]
pub struct HealthRead;

/// What a failed connection means, for messages: a refused password, or no answer.
fn why(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let auth = e.kind() == redis::ErrorKind::AuthenticationFailed
        || ["WRONGPASS", "NOAUTH", "invalid password", "invalid username-password"].iter().any(|w| text.contains(w));
    if auth {
        format!("Redis refused the password or user in state.url ({text})")
    } else {
        format!("Redis does not answer ({text})")
    }
}
