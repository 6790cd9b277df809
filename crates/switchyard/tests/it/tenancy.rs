//! One tenant cannot hurt another, against a real `switchyard serve` process: slow and half-open connections
//! (other keys keep getting answers within a second while 50 slow connections are open), and a client that
//! does not read its answer. (Per-key concurrency in-process, bounded identifiers, and what `/metrics` and
//! `/v1/models` show to whom are in switchyard-server's `tenancy` tests.)

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_testkit::{serve, upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests that time a real server's answers run one at a time, so that none is slowed by another's load.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Two keys, "attacker" and "victim".
fn two_keys() -> String {
    format!(
        "[[keys]]\nname = \"attacker\"\nkey_sha256 = \"{}\"\n[[keys]]\nname = \"victim\"\nkey_sha256 = \"{}\"\n",
        sha256("attacker-key"),
        sha256("victim-key")
    )
}

fn host(base: &str) -> String {
    base.trim_start_matches("http://").to_string()
}

/// A connection that sends a `/v1/route` request's headers with `key` and 8 bytes of a 1,000-byte body,
/// then stalls.
async fn slow_body(addr: &str, key: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/route HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"prompt"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// A connection that sends half a request's headers, without a key, then stalls.
async fn half_headers(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("POST /v1/route HTTP/1.1\r\nhost: {addr}\r\ncontent-le").as_bytes()).await.unwrap();
    stream
}

/// What the server sends on `stream` until it closes it (or 60 s pass: the test then fails on what it got).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return format!("{}<still open after 60 s>", String::from_utf8_lossy(&out)),
        }
    }
}

async fn route(client: &reqwest::Client, base: &str, key: &str, prompt: &str) -> (StatusCode, Duration) {
    let start = Instant::now();
    let response = client
        .post(format!("{base}/v1/route"))
        .bearer_auth(key)
        .json(&json!({"prompt": prompt}))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let _ = response.bytes().await;
    (status, start.elapsed())
}

#[tokio::test]
async fn slow_clients_do_not_starve_other_keys() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (up, _) = upstream::start().await;
    // Eight requests in flight in all: before per-key shares and body limits, eight stalled bodies of one key
    // made every other key get 429 until they were sent.
    let server = "max_concurrency = 8\nbody_timeout_ms = 4000\nheader_timeout_ms = 4000";
    let process = serve::spawn_with(crate::BIN, server, &two_keys(), up).await;
    let addr = host(&process.base);
    let client = reqwest::Client::new();
    assert_eq!(route(&client, &process.base, "victim-key", "warm up the encoder").await.0, StatusCode::OK);

    let mut slow = Vec::new();
    for _ in 0..25 {
        slow.push(slow_body(&addr, "attacker-key").await);
    }
    let mut half = Vec::new();
    for _ in 0..25 {
        half.push(half_headers(&addr).await);
    }
    // While all fifty are open, the other key is answered, each time within a second.
    for i in 0..10 {
        let (status, took) = route(&client, &process.base, "victim-key", &format!("What is {i} plus {i}?")).await;
        assert_eq!(status, StatusCode::OK, "request {i} of the other key");
        assert!(took < Duration::from_secs(1), "request {i} of the other key took {took:?}");
    }
    // The attacker had its share (8 / 2 keys = 4 in flight); the rest of its requests were refused at once,
    // and the four that held a slot end with 408 when their body's time is up.
    let mut answers = Vec::new();
    for stream in &mut slow {
        answers.push(until_closed(stream).await);
    }
    let refused = answers.iter().filter(|a| a.starts_with("HTTP/1.1 429")).count();
    let timed_out = answers.iter().filter(|a| a.starts_with("HTTP/1.1 408")).count();
    assert_eq!((refused, timed_out), (21, 4), "{answers:#?}");
    assert!(answers.iter().any(|a| a.contains("concurrency_limit_exceeded") && a.contains("attacker")));
    assert!(answers.iter().any(|a| a.contains("server.body_timeout_ms")));
    // Half-sent headers are closed when their time is up, without an answer.
    for stream in &mut half {
        let got = until_closed(stream).await;
        assert!(!got.contains("still open"), "a half-sent header set stayed open: {got}");
    }
    let metrics = client.get(format!("{}/metrics", process.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchyard_connections_closed_total{reason=\"header_timeout\"} 25"), "{metrics}");
}

#[tokio::test]
async fn unauthenticated_connections_have_a_small_pool_and_idle_ones_close() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (up, _) = upstream::start().await;
    let server = "max_unauthenticated_connections = 8\nheader_timeout_ms = 60000\nkeepalive_timeout_ms = 1500";
    let process = serve::spawn_with(crate::BIN, server, &two_keys(), up).await;
    let addr = host(&process.base);
    let mut half = Vec::new();
    for _ in 0..30 {
        half.push(half_headers(&addr).await);
    }
    // Each new connection closed the oldest unauthenticated one: the first 22 are closed long before their
    // header limit of a minute.
    for (i, stream) in half.iter_mut().take(22).enumerate() {
        let got = until_closed(stream).await;
        assert!(got.is_empty(), "connection {i}: {got}");
    }
    // A client with a key is served all the same.
    let client = reqwest::Client::new();
    assert_eq!(route(&client, &process.base, "victim-key", "hello there").await.0, StatusCode::OK);

    // A keep-alive connection with nothing on it is closed after keepalive_timeout_ms.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    idle.write_all(request.as_bytes()).await.unwrap();
    let got = until_closed(&mut idle).await;
    assert!(got.starts_with("HTTP/1.1 200") && !got.contains("still open"), "{got}");
    // A client without pooled connections: the one above sat idle past keepalive_timeout_ms, so the server has
    // closed it, and reusing it would race that close.
    let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let metrics = fresh.get(format!("{}/metrics", process.base)).send().await.unwrap().text().await.unwrap();
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_connections_closed_total{reason=\"unauthenticated_evicted\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(evicted >= Some(22), "{metrics}");
    assert!(metrics.contains("switchyard_connections_closed_total{reason=\"keepalive_timeout\"}"), "{metrics}");
}

/// The value of a `/metrics` line `name`, once it appears (or panics after 60 s).
async fn until_metric(client: &reqwest::Client, base: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if let Some(value) = text.lines().find_map(|l| l.strip_prefix(name)) {
            return value.trim().to_string();
        }
        assert!(Instant::now() < deadline, "{name} never appeared:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_its_answer_gives_its_slot_back() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (up, fake) = upstream::start().await;
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let model = router.manifest.models[0].model.clone();
    fake.modes.lock().unwrap().insert(model.clone(), upstream::Mode::Large);
    let server = "max_concurrency_per_key = 1\nsend_timeout_ms = 1000";
    let process = serve::spawn_with(crate::BIN, server, &two_keys(), up).await;
    let addr: std::net::SocketAddr = host(&process.base).parse().unwrap();
    // A 16 MB answer to a client with a small window that never reads it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    let body = json!({"model": model, "messages": [{"role": "user", "content": "Write a very long essay."}]});
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer victim-key\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.to_string().len()
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    // The key's one slot is held while the answer cannot go out; then the connection is closed and the slot
    // freed.
    let client = reqwest::Client::new();
    let closed = "switchyard_connections_closed_total{reason=\"send_timeout\"}";
    assert_eq!(until_metric(&client, &process.base, closed).await, "1");
    fake.modes.lock().unwrap().remove(&model);
    let (status, _) = route(&client, &process.base, "victim-key", "and now a short question").await;
    assert_eq!(status, StatusCode::OK);
    drop(stuck);
}
