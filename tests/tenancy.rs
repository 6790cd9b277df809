//! One tenant cannot hurt another: slow and half-open connections against a real `switchyard serve` process
//! (other keys keep getting answers within a second while 50 slow connections are open), per-key
//! concurrency, bounded identifiers, and what `/metrics` and `/v1/models` show to whom.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{serve, upstream};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

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

/// What the server sends on `stream` until it closes it (or 15 s pass: the test then fails on what it got).
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return format!("{}<still open after 15 s>", String::from_utf8_lossy(&out)),
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
    let process = serve::spawn_with(server, &two_keys(), up).await;
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
    let process = serve::spawn_with(server, &two_keys(), up).await;
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
    let metrics = client.get(format!("{}/metrics", process.base)).send().await.unwrap().text().await.unwrap();
    let evicted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("switchyard_connections_closed_total{reason=\"unauthenticated_evicted\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(evicted >= Some(22), "{metrics}");
    assert!(metrics.contains("switchyard_connections_closed_total{reason=\"keepalive_timeout\"}"), "{metrics}");
}

/// The value of a `/metrics` line `name`, once it appears (or panics after 15 s).
async fn until_metric(client: &reqwest::Client, base: &str, name: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
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
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let model = router.manifest.models[0].model.clone();
    fake.modes.lock().unwrap().insert(model.clone(), upstream::Mode::Large);
    let server = "max_concurrency_per_key = 1\nsend_timeout_ms = 1000";
    let process = serve::spawn_with(server, &two_keys(), up).await;
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

fn state(server: &str, keys: &str) -> Arc<AppState> {
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let path = common::workspace_root().join("models/default");
    let text = format!("[log]\nenabled = false\n[router]\npath = {path:?}\n[server]\n{server}\n{keys}");
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

async fn call(state: &Arc<AppState>, request: axum::http::request::Builder, body: Value) -> (StatusCode, Value) {
    let request = request.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

#[tokio::test]
async fn identifiers_the_server_keeps_are_bounded() {
    let state = state("", "");
    let chat = |metadata: Value| json!({"messages": [{"role": "user", "content": "Tell me about rivers."}], "metadata": metadata});
    let big = "s".repeat(400_000);
    let cases = [
        (Request::post("/v1/route"), chat(json!({"session_id": big})), "identifier_too_long", "metadata.session_id"),
        (
            Request::post("/v1/route").header("x-session-id", "x".repeat(300)),
            chat(json!({})),
            "identifier_too_long",
            "x-session-id",
        ),
        (Request::post("/v1/route"), json!({"prompt": "hi", "user": "u".repeat(257)}), "identifier_too_long", "`user`"),
        (
            Request::post("/v1/route"),
            json!({"prompt": "hi", "user": "eve\nINFO forged line"}),
            "invalid_identifier",
            "`user`",
        ),
        (Request::post("/v1/route"), chat(json!({"tier": "t".repeat(1000)})), "identifier_too_long", "metadata.tier"),
        (Request::post("/v1/route"), chat(json!({"k".repeat(300): "v"})), "identifier_too_long", "`metadata` key"),
    ];
    for (request, body, code, field) in cases {
        let (status, answer) = call(&state, request, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(field) && message.len() < 400, "{message}");
    }
    // Feedback's request id too: a newline would forge a line in the server's log.
    for (id, code) in [("sy-1\nWARN forged", "invalid_identifier"), (&*"i".repeat(300), "identifier_too_long")] {
        let (status, answer) = call(&state, Request::post("/v1/feedback"), json!({"request_id": id, "score": 1})).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{answer}");
    }
    assert!(state.sessions.is_empty(), "no refused conversation was pinned");
    // At the limit, an id is kept.
    let (status, _) = call(&state, Request::post("/v1/route"), chat(json!({"session_id": "s".repeat(256)}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state.sessions.len(), 1);
}

#[tokio::test]
async fn metrics_and_models_show_each_caller_only_its_own() {
    let keys = format!(
        "[[keys]]\nname = \"team-secret-name\"\nkey_sha256 = \"{}\"\nallowed_models = [\"gpt-4o-mini\"]\n\
         [[models]]\nname = \"gpt-4o-mini\"\ninput_usd_per_mtok = 0.15\noutput_usd_per_mtok = 0.6\n",
        sha256("team-key")
    );
    let server = format!(
        "metrics_keys = [\"metrics-key\"]\nmetrics_key_labels = \"hash\"\nadmin_keys_sha256 = [\"{}\"]",
        sha256("admin-key")
    );
    let state = state(&server, &keys);
    // The key's scheme may be written in any case.
    let (status, models) =
        call(&state, Request::get("/v1/models").header("authorization", "bearer team-key"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, ["switchyard", "gpt-4o-mini"], "a restricted key sees only what it may use");
    let (status, _) =
        call(&state, Request::post("/v1/route").header("authorization", "Bearer team-key"), json!({"prompt": "hi"}))
            .await;
    assert_eq!(status, StatusCode::OK);

    let get = |auth: Option<&str>| {
        let mut request = Request::get("/metrics");
        if let Some(auth) = auth {
            request = request.header("authorization", format!("Bearer {auth}"));
        }
        request
    };
    for refused in [None, Some("team-key"), Some("wrong")] {
        let (status, _) = call(&state, get(refused), json!({})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused:?}");
    }
    for allowed in ["metrics-key", "admin-key"] {
        let (status, text) = call(&state, get(Some(allowed)), json!({})).await;
        let text = text.as_str().unwrap_or_default().to_string();
        assert_eq!(status, StatusCode::OK, "{allowed}");
        assert!(!text.contains("team-secret-name"), "key names stay on the server:\n{text}");
        let hashed = &sha256("team-secret-name")[..12];
        assert!(
            text.contains(&format!("switchyard_key_requests_total{{key=\"{hashed}\",status=\"200\"}} 2")),
            "{text}"
        );
    }
    // The admin key, given by its digest only, opens the admin endpoints.
    let (status, _) =
        call(&state, Request::post("/admin/reload").header("authorization", "Bearer admin-key"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) =
        call(&state, Request::post("/admin/reload").header("authorization", "Bearer metrics-key"), json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn per_key_limits_hold_with_a_shared_state_too() {
    // With [state] url, the keys are shared with the Redis state as the server starts: the per-key limit must
    // still be set (Redis need not answer for it; this one never does).
    for tables in ["", "[state]\nurl = \"redis://127.0.0.1:1\"\n"] {
        let state = state("max_concurrency = 4\nbody_timeout_ms = 60000", &format!("{}{tables}", two_keys()));
        // Three requests of one key whose bodies never end: two hold its share (4 / 2 keys), one is refused.
        let mut senders = Vec::new();
        let mut calls = Vec::new();
        for _ in 0..3 {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
            let mut rx = rx;
            let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
            let request = Request::post("/v1/route").header("authorization", "Bearer attacker-key").body(body).unwrap();
            senders.push(tx);
            calls.push(tokio::spawn(app(state.clone()).oneshot(request)));
        }
        let (first, _, _) = tokio::time::timeout(Duration::from_secs(10), futures_util::future::select_all(calls))
            .await
            .expect("one of the three is answered at once");
        let response = first.unwrap().unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "{tables}");
        let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(text.contains("concurrency_limit_exceeded"), "{tables}: {text}");
        // The other key is not held by them.
        let (status, _) = call(
            &state,
            Request::post("/v1/route").header("authorization", "Bearer victim-key"),
            json!({"prompt": "hi"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{tables}");
        drop(senders);
    }
}
