//! `[server]`: the listening address, keys, and the limits that keep one client from starving the others.

use std::time::Duration;

use serde::Deserialize;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Bearer keys clients must present on `/v1/*` (empty: no authentication).
    pub client_keys: Vec<String>,
    /// Bearer keys for `/admin/*` (empty: the admin endpoints are off; SIGHUP still reloads).
    pub admin_keys: Vec<String>,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Longest prompt in characters.
    pub max_prompt_chars: usize,
    /// Most requests handled at once on `/v1/*`; more get 429.
    pub max_concurrency: usize,
    /// Most upstreams tried per gateway request (the first choice and its fallbacks).
    pub max_attempts: usize,
    /// Time to open a connection to an upstream, in milliseconds; past it the next deployment is tried.
    pub connect_timeout_ms: u64,
    /// Time until an upstream's response headers (for a stream, its first event), in milliseconds; past it the
    /// next deployment is tried. A whole (not streamed) answer must start within it. Default 60,000.
    pub first_byte_timeout_ms: Option<u64>,
    /// Longest silence between two chunks of an upstream's answer, in milliseconds. A stream that keeps
    /// sending is never cut, however long it runs; a silent one ends with an SSE error event.
    pub idle_timeout_ms: u64,
    /// After SIGTERM or Ctrl-C, how long in-flight requests (streams included) may take to finish, in
    /// milliseconds; then the remaining connections are closed, the decision log's queue is written and the
    /// process exits.
    pub shutdown_grace_ms: u64,
    /// Deprecated alias of `first_byte_timeout_ms` (it used to bound the whole call, which cut long streams).
    pub upstream_timeout_ms: Option<u64>,
    /// Consecutive failures after which an upstream is put in cooldown.
    pub cooldown_failures: u32,
    /// How long an upstream in cooldown is skipped, in milliseconds; then it is tried again.
    pub cooldown_ms: u64,
    /// SHA-256 digests (hex) of more admin keys, for files that must not hold the keys themselves
    /// (`printf %s "$KEY" | sha256sum`).
    pub admin_keys_sha256: Vec<String>,
    /// Environment variable holding the secret (at least 32 characters) that signs the dashboard's sign-in
    /// sessions. Give replicas the same one so a session works on all of them; without it each process makes
    /// its own at start-up, so sessions end when it restarts.
    pub session_secret_env: Option<String>,
    /// Time a client has to send a request's headers, in milliseconds, from its first byte. Past it the
    /// connection is closed.
    pub header_timeout_ms: u64,
    /// Time a client has to send a request's whole body, in milliseconds, from its headers. Past it the
    /// request gets 408 and its concurrency slot is freed.
    pub body_timeout_ms: u64,
    /// How long a client may leave the server's answer unread (the connection's writes blocked), in
    /// milliseconds. Past it the connection is closed and the request's slots are freed.
    pub send_timeout_ms: u64,
    /// How long a connection may stay open with no request on it (before its first, or between two on a
    /// keep-alive connection), in milliseconds. Past it the server closes the connection.
    pub keepalive_timeout_ms: u64,
    /// Most requests one key may have in flight at once. Default: its share of `max_concurrency`
    /// (`max_concurrency` divided by the number of keys, at least 1), so no key can take the whole pool.
    pub max_concurrency_per_key: Option<usize>,
    /// Most open connections that have not yet sent a request with a valid key (every connection starts so).
    /// When a new one would exceed it, the oldest such connection is closed.
    pub max_unauthenticated_connections: usize,
    /// Longest client-chosen identifier the server keeps, in bytes: session ids, `user`, `metadata` keys and
    /// values, feedback's `request_id`. Longer ones are refused with 400.
    pub max_id_bytes: usize,
    /// Bearer keys that may read `/metrics` (admin keys may too). Empty: `/metrics` needs no key.
    pub metrics_keys: Vec<String>,
    /// How `/metrics` names client keys in its labels: `name` (as in `[[keys]]`) or `hash` (the first 12 hex
    /// digits of the name's SHA-256, so that key names do not leave the server).
    pub metrics_key_labels: KeyLabels,
}

/// How `/metrics` labels client keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLabels {
    /// The key's name.
    #[default]
    Name,
    /// The first 12 hex digits of the SHA-256 of the key's name.
    Hash,
}

impl ServerConfig {
    /// The first-byte limit: `first_byte_timeout_ms`, else its deprecated alias `upstream_timeout_ms`, else
    /// 60 seconds.
    pub fn first_byte_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.first_byte_timeout_ms.or(self.upstream_timeout_ms).unwrap_or(60_000))
    }

    /// The longest silence between chunks.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.idle_timeout_ms)
    }

    /// The connection limit.
    pub fn connect_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.connect_timeout_ms)
    }

    /// The time limits on clients' connections.
    pub fn client_timeouts(&self) -> ClientTimeouts {
        ClientTimeouts {
            header: Duration::from_millis(self.header_timeout_ms),
            body: Duration::from_millis(self.body_timeout_ms),
            keepalive: Duration::from_millis(self.keepalive_timeout_ms),
            send: Duration::from_millis(self.send_timeout_ms),
        }
    }

    /// Most requests one key may have in flight, with `keys` keys configured.
    pub fn per_key_concurrency(&self, keys: usize) -> usize {
        self.max_concurrency_per_key.unwrap_or_else(|| (self.max_concurrency / keys.max(1)).max(1))
    }
}

/// How long a client may take over each part of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// To send a request's headers, from their first byte.
    pub header: Duration,
    /// To send a request's body, from its headers.
    pub body: Duration,
    /// With no request on the connection.
    pub keepalive: Duration,
    /// With the connection's writes blocked by a client that does not read.
    pub send: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_string(),
            client_keys: Vec::new(),
            admin_keys: Vec::new(),
            max_body_bytes: 1 << 20,
            max_prompt_chars: 200_000,
            max_concurrency: 256,
            max_attempts: 3,
            connect_timeout_ms: 10_000,
            first_byte_timeout_ms: None,
            idle_timeout_ms: 30_000,
            upstream_timeout_ms: None,
            shutdown_grace_ms: 30_000,
            cooldown_failures: 3,
            cooldown_ms: 30_000,
            admin_keys_sha256: Vec::new(),
            session_secret_env: None,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            keepalive_timeout_ms: 60_000,
            send_timeout_ms: 30_000,
            max_concurrency_per_key: None,
            max_unauthenticated_connections: 64,
            max_id_bytes: 256,
            metrics_keys: Vec::new(),
            metrics_key_labels: KeyLabels::Name,
        }
    }
}
