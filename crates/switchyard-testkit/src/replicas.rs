//! Two replicas of the server sharing one PostgreSQL and one Redis, both real: the set-up of the replica
//! tests (`replicas` and `replicas_online` in switchyard-server's tests, `replicas` in switchyard's).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

use crate::pg::Postgres;
use crate::redis::Redis;
use crate::upstream;

/// SHA-256 of a key, hex (as `[[keys]] key_sha256` takes it).
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys: `metered` (20 requests a minute), `budgeted` ($0.00005: five calls of $0.000011), `open`.
pub fn keys() -> String {
    format!(
        "[[keys]]\nname = \"metered\"\nkey_sha256 = \"{}\"\nrpm = 20\n\
         [[keys]]\nname = \"budgeted\"\nkey_sha256 = \"{}\"\nbudget_usd = 0.00005\n\
         [[keys]]\nname = \"open\"\nkey_sha256 = \"{}\"\n",
        digest("metered-key"),
        digest("budgeted-key"),
        digest("open-key")
    )
}

/// A model with two deployments on the fake upstream: `flaky-a` answers as upstream model "broken" (told to
/// fail), `flaky-b` as "flaky"; one failure puts a deployment in cooldown.
pub fn flaky_model(addr: SocketAddr) -> String {
    format!(
        "[[models]]\nname = \"flaky\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n\
         [[models.deployments]]\nname = \"flaky-a\"\nbase_url = \"http://{addr}/v1\"\nupstream_model = \"broken\"\n\
         [[models.deployments]]\nname = \"flaky-b\"\nbase_url = \"http://{addr}/v1\"\n"
    )
}

/// A replica's full server state on the default router, sharing `pg` (the decision log, spooling to `spool`)
/// and Redis, with the keys, the fake upstream's catalog, the flaky model and `extra` config.
pub fn replica(addr: SocketAddr, pg: &Postgres, redis_url: &str, spool: &Path, extra: &str) -> Arc<AppState> {
    let router = Router::load(&crate::default_router()).unwrap();
    let text = format!(
        "[server]\ncooldown_failures = 1\ncooldown_ms = 60000\n\
         [log]\nurl = \"{}\"\nspool = {:?}\n\
         [state]\nurl = \"{redis_url}\"\ntimeout_ms = 1000\n{extra}\n\
         [routing]\ndeescalate_after = 3\n\
         {}\n{}\n{}",
        pg.url,
        spool.display().to_string(),
        keys(),
        upstream::catalog(addr),
        flaky_model(addr)
    );
    let config = Config::parse(&text, Path::new("replica.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(crate::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap_or_else(|e| panic!("{e}")))
}

/// A real PostgreSQL and Redis, the fake upstream, and two replicas sharing them (each with its own spool).
pub struct Pair {
    /// The shared decision log.
    pub pg: Postgres,
    /// The shared state.
    pub redis: Redis,
    /// The upstream both replicas call.
    pub fake: Arc<upstream::Fake>,
    /// One replica.
    pub a: Arc<AppState>,
    /// The other.
    pub b: Arc<AppState>,
    /// Holds the replicas' spools.
    pub dir: tempfile::TempDir,
}

/// Starts [`Pair`].
pub async fn pair() -> Pair {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let a = replica(addr, &pg, &redis.url, &dir.path().join("a-spool.sqlite"), "");
    let b = replica(addr, &pg, &redis.url, &dir.path().join("b-spool.sqlite"), "");
    Pair { pg, redis, fake, a, b, dir }
}

/// One request through the replica's app: (status, headers, body).
pub async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, HeaderMap, String) {
    let mut request = Request::builder().method(method).uri(uri).header("authorization", format!("Bearer {key}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = if body.is_null() { Body::empty() } else { Body::from(body.to_string()) };
    let response = app(state.clone())
        .oneshot(request.header("content-type", "application/json").body(body).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).to_string())
}

/// A chat completion with `model` (`switchyard`: routed) and one user message.
pub async fn chat(state: &Arc<AppState>, key: &str, model: &str, prompt: &str) -> (StatusCode, HeaderMap, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
    let (status, headers, text) = call(state, "POST", "/v1/chat/completions", key, &[], body).await;
    (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends `n` routed chat requests with `key` all at once, the i-th (prompt `"{prefix} {i}?"`) through
/// `replicas[i % replicas.len()]`, and returns each one's (status, headers, body) in that order.
pub async fn burst(
    replicas: &[&Arc<AppState>],
    key: &str,
    n: usize,
    prefix: &str,
) -> Vec<(StatusCode, HeaderMap, Value)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (state, key, prompt) =
                (replicas[i % replicas.len()].clone(), key.to_string(), format!("{prefix} {i}?"));
            tokio::spawn(async move { chat(&state, &key, "switchyard", &prompt).await })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

/// A metric's value on the replica's `/metrics`.
pub async fn metric(state: &Arc<AppState>, name: &str) -> Option<f64> {
    let (_, _, text) = call(state, "GET", "/metrics", "open-key", &[], Value::Null).await;
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// A response header's value (empty when absent).
pub fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Waits (up to 60 s) until `name` reads `want` on the replica (the reconnection runs with a backoff of at most
/// 5 s).
pub async fn until_metric(state: &Arc<AppState>, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if metric(state, name).await == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} did not become {want} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
