//! Answers that used to go uncharged or overcharged, against a fake OpenAI-protocol upstream: a whole answer
//! without `usage` is charged an estimate (and marked so), a 200 that is not JSON and a redirect fail the
//! attempt and fall back, `stream` must be a boolean, a stream's head is bounded, and only `data:` lines are
//! charged as output. (The stream cases, against a real `switchyard serve` process, are in the `switchyard`
//! crate's `billing` tests.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_store::{DecisionRecord, Store};
use switchyard_testkit::upstream::{self, Fake, Mode};
use tower::ServiceExt;

const KEY: &str = "team-key";

/// "Name three rivers in Europe.": 28 characters, 7 input tokens at four characters a token.
const PROMPT: &str = "Name three rivers in Europe.";

/// `[[keys]]` with one key, "team", and three models at the fake upstream, priced $1 and $2 per million
/// tokens: `primary` (falls back to `backup`), `backup` and `lonely` (no fallback).
fn tables(addr: SocketAddr) -> String {
    let digest: String = Sha256::digest(KEY.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let model = |name: &str, extra: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nbase_url = \"http://{addr}/v1\"\ninput_usd_per_mtok = 1.0\n\
             output_usd_per_mtok = 2.0\n{extra}\n"
        )
    };
    format!(
        "[[keys]]\nname = \"team\"\nkey_sha256 = \"{digest}\"\n{}{}{}",
        model("primary", "fallbacks = [\"backup\"]"),
        model("backup", ""),
        model("lonely", "")
    )
}

/// An in-process gateway: [`tables`] plus every model of the default router, the decision log at `log`.
fn gateway(addr: SocketAddr, log: &Path) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = format!("[log]\npath = {log:?}\n[server]\n{}\n{}", tables(addr), upstream::catalog(addr));
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": PROMPT}]})
}

async fn call(state: &Arc<AppState>, body: Value) -> (StatusCode, HeaderMap, String) {
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

async fn metrics(state: &Arc<AppState>) -> String {
    let response = app(state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

/// Every request in the decision log at `path`, oldest first.
fn logged(path: &Path) -> Vec<DecisionRecord> {
    let mut out = Vec::new();
    Store::open(path).unwrap().for_each(0, |r| out.push(r.record)).unwrap();
    out
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn error_code(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

fn set(fake: &Fake, model: &str, mode: Mode) {
    fake.modes.lock().unwrap().insert(model.to_string(), mode);
}

fn calls(fake: &Fake) -> usize {
    fake.calls.lock().unwrap().values().sum()
}

#[tokio::test]
async fn an_answer_without_usage_is_charged_an_estimate_and_marked_so() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sqlite");
    let state = gateway(addr, &log);
    set(&fake, "primary", Mode::NoUsage);
    let (status, h, text) = call(&state, chat("primary")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("hello from primary") && !text.contains("usage"), "{text}");
    assert_eq!(header(&h, "x-switchyard-usage"), "estimated");
    // 7 input tokens (the request's 28 characters) and 5 output ("hello from primary", 18 characters), at $1
    // and $2 per million: $0.000017.
    let text = metrics(&state).await;
    for line in [
        "switchyard_key_tokens_total{key=\"team\",kind=\"input\"} 7",
        "switchyard_key_tokens_total{key=\"team\",kind=\"output\"} 5",
        "switchyard_key_cost_usd_total{key=\"team\"} 0.000017",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // An answer that reports its usage is charged that, and not marked.
    let (status, h, _) = call(&state, chat("backup")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.get("x-switchyard-usage"), None);
    state.log.as_ref().unwrap().flush();
    let records = logged(&log);
    assert_eq!(records.len(), 2);
    let (estimated, reported) = (&records[0], &records[1]);
    assert_eq!((estimated.input_tokens, estimated.output_tokens), (Some(7), Some(5)));
    assert!(estimated.usage_estimated && estimated.cost_usd.is_some_and(|c| c > 0.0), "{estimated:?}");
    assert_eq!((reported.input_tokens, reported.output_tokens, reported.usage_estimated), (Some(5), Some(3), false));
}

#[tokio::test]
async fn a_200_that_is_not_json_fails_the_attempt_and_falls_back() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, &dir.path().join("log.sqlite"));
    set(&fake, "primary", Mode::NotJson);
    let (status, h, text) = call(&state, chat("primary")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("hello from backup"), "{text}");
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), ("backup", "1"));
    // With nothing to fall back to, the client gets a 502 that says why.
    set(&fake, "lonely", Mode::NotJson);
    let (status, _, text) = call(&state, chat("lonely")).await;
    assert_eq!((status, error_code(&text).as_str()), (StatusCode::BAD_GATEWAY, "upstreams_failed"), "{text}");
    assert!(text.contains("HTTP 200 with a body that is not JSON"), "{text}");
    assert!(!text.contains("<html>"), "{text}");
    // Asked for a stream, the same page (no event, then the end) is not an answer either: not passed on, not
    // billed, and the next deployment answers.
    let mut streamed = chat("primary");
    streamed["stream"] = json!(true);
    let (status, h, text) = call(&state, streamed).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("data: ") && !text.contains("<html>"), "{text}");
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), ("backup", "1"));
    // Only the backup's reported usage was charged (3 output tokens a call).
    let text = metrics(&state).await;
    assert!(text.contains("switchyard_key_tokens_total{key=\"team\",kind=\"output\"} 6"), "{text}");
}

#[tokio::test]
async fn stream_must_be_a_boolean() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, &dir.path().join("log.sqlite"));
    for bad in [json!("yes"), json!("true"), json!(1), json!({})] {
        let mut body = chat("primary");
        body["stream"] = bad.clone();
        let (status, _, text) = call(&state, body).await;
        assert_eq!((status, error_code(&text).as_str()), (StatusCode::BAD_REQUEST, "invalid_type"), "{bad}: {text}");
        assert!(text.contains("`stream` must be true or false"), "{text}");
    }
    assert_eq!(calls(&fake), 0, "a request with a bad `stream` reached the upstream");
    // null is the same as leaving it out.
    let mut body = chat("primary");
    body["stream"] = Value::Null;
    let (status, _, text) = call(&state, body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("\"chat.completion\""), "{text}");
}

#[tokio::test]
async fn redirects_are_not_followed_but_fall_back() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, &dir.path().join("log.sqlite"));
    set(&fake, "primary", Mode::Redirect);
    let (status, h, text) = call(&state, chat("primary")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("hello from backup"), "{text}");
    assert_eq!(header(&h, "x-switchyard-model"), "backup");
    set(&fake, "lonely", Mode::Redirect);
    let (status, _, text) = call(&state, chat("lonely")).await;
    assert_eq!((status, error_code(&text).as_str()), (StatusCode::BAD_GATEWAY, "upstreams_failed"), "{text}");
    assert!(text.contains("HTTP 307 redirect") && text.contains("set base_url to the final address"), "{text}");
    // The redirect's target (which may carry secrets in its URL) is neither called nor shown.
    assert!(!text.contains("/v1/moved"), "{text}");
    assert_eq!(fake.moved.load(Ordering::SeqCst), 0, "the redirect was followed");
}
