//! The HTTP API in-process, with the bundled default router and the real encoder: routing decisions, the
//! model list, health, authentication, and the documented status and error body for each kind of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

fn state(config: &str) -> Arc<AppState> {
    // These tests are about the API, not the decision log.
    let config = format!("{config}\n[log]\nenabled = false\n");
    let config = Config::parse(&config, std::path::Path::new("test.toml")).unwrap();
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

async fn call(
    state: &Arc<AppState>,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(key) = auth {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = app(state.clone()).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(body: Value) -> Vec<u8> {
    body.to_string().into_bytes()
}

fn assert_error(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    let error = &response.1["error"];
    assert_eq!(error["code"], code, "{}", response.1);
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()) && error["type"].is_string());
}

#[tokio::test]
async fn routes_prompts_and_chat_requests() {
    let s = state("");
    let (status, body) = call(&s, "POST", "/v1/route", None, post(json!({"prompt": "What is 17 * 23?"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let model = body["model"].as_str().unwrap();
    assert!(s.routers().main.manifest.models.iter().any(|m| m.model == model));
    assert_eq!(body["models"].as_array().unwrap().len(), 15);
    assert!(body["timing_ms"]["encode"].is_number() && body["complexity"].is_number());

    // An OpenAI chat request with knobs: the last user turn is routed; the allowed list is honoured.
    let chat = json!({"model": "switchyard", "messages": [{"role": "system", "content": "be brief"},
        {"role": "user", "content": "Translate 'good night' into French."}],
        "willingness_to_pay": 0.001, "allowed_models": ["gpt-4o-mini", "claude-3-haiku"]});
    let (status, body) = call(&s, "POST", "/v1/route", None, post(chat)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(["gpt-4o-mini", "claude-3-haiku"].contains(&body["model"].as_str().unwrap()));
    assert_eq!(body["policy"]["knob"]["willingness_to_pay"], 0.001);
}

#[tokio::test]
async fn models_health_and_ready() {
    let s = state("");
    let (status, body) = call(&s, "GET", "/v1/models", None, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"][0]["id"], "switchyard");
    assert_eq!(body["data"].as_array().unwrap().len(), 16);
    assert_eq!(call(&s, "GET", "/healthz", None, Vec::new()).await.0, StatusCode::OK);
    let (status, body) = call(&s, "GET", "/readyz", None, Vec::new()).await;
    assert_eq!((status, body["models"].clone()), (StatusCode::OK, json!(15)));
    assert_error(&call(&s, "GET", "/v2/nothing", None, Vec::new()).await, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn bad_input_gets_the_documented_status_and_error() {
    let s = state("[server]\nmax_prompt_chars = 1000\nmax_body_bytes = 100000\n");
    let route = |body: Vec<u8>| {
        let s = s.clone();
        async move { call(&s, "POST", "/v1/route", None, body).await }
    };
    assert_error(&route(b"{not json".to_vec()).await, StatusCode::BAD_REQUEST, "invalid_json");
    assert_error(&route(post(json!({"prompt": 42}))).await, StatusCode::BAD_REQUEST, "invalid_type");
    assert_error(&route(post(json!({"prompt": "  "}))).await, StatusCode::BAD_REQUEST, "empty_prompt");
    assert_error(&route(post(json!({"messages": []}))).await, StatusCode::BAD_REQUEST, "no_user_message");
    assert_error(&route(post(json!({"temperature": 1}))).await, StatusCode::BAD_REQUEST, "missing_prompt");
    assert_error(&route(b"{\"prompt\": \"caf\xe9\"}".to_vec()).await, StatusCode::BAD_REQUEST, "invalid_json");
    assert_error(
        &route(post(json!({"prompt": "x".repeat(2000)}))).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
    );
    let huge = post(json!({"prompt": "y".repeat(5 << 20)}));
    assert_error(&route(huge).await, StatusCode::PAYLOAD_TOO_LARGE, "request_too_large");
    assert_error(
        &route(post(json!({"prompt": "hi", "min_quality": 3}))).await,
        StatusCode::BAD_REQUEST,
        "invalid_knob",
    );
    let unknown = post(json!({"prompt": "hi", "allowed_models": ["gpt-9"]}));
    let response = route(unknown).await;
    assert_error(&response, StatusCode::BAD_REQUEST, "invalid_policy");
    assert!(response.1["error"]["message"].as_str().unwrap().contains("gpt-9"));
}

#[tokio::test]
async fn client_keys_guard_the_api_but_not_health() {
    let s = state("[server]\nclient_keys = [\"sk-test\"]\n");
    let body = || post(json!({"prompt": "hello"}));
    assert_error(&call(&s, "POST", "/v1/route", None, body()).await, StatusCode::UNAUTHORIZED, "invalid_api_key");
    assert_error(
        &call(&s, "POST", "/v1/route", Some("wrong"), body()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    );
    assert_eq!(call(&s, "POST", "/v1/route", Some("sk-test"), body()).await.0, StatusCode::OK);
    assert_eq!(call(&s, "GET", "/healthz", None, Vec::new()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_get_429() {
    let s = state("[server]\nmax_concurrency = 1\n");
    let body = || post(json!({"prompt": "hello"}));
    let busy = s.in_flight.clone().try_acquire_owned().unwrap(); // one request in flight
    assert_error(
        &call(&s, "POST", "/v1/route", None, body()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
    );
    assert_eq!(call(&s, "GET", "/healthz", None, Vec::new()).await.0, StatusCode::OK);
    drop(busy);
    assert_eq!(call(&s, "POST", "/v1/route", None, body()).await.0, StatusCode::OK);
    // The permit of a finished request is given back.
    assert_eq!(s.in_flight.available_permits(), 1);
}

/// Distinct prompts of about 15 tokens.
fn prompts(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("Question number {i}: which model should answer this request about topic {}?", i * 7))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_prompts_are_batched_and_decided_as_if_alone() {
    let s = state("[encoder]\ncache_entries = 0\n");
    let prompts = prompts(48);
    let mut alone = Vec::new();
    for p in &prompts {
        let (status, body) = call(&s, "POST", "/v1/route", None, post(json!({"prompt": p}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        alone.push(body);
    }
    let tasks: Vec<_> = prompts
        .iter()
        .map(|p| {
            let (s, body) = (s.clone(), post(json!({"prompt": p})));
            tokio::spawn(async move { call(&s, "POST", "/v1/route", None, body).await })
        })
        .collect();
    for (task, want) in tasks.into_iter().zip(&alone) {
        let (status, got) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["model"], want["model"]);
        let (a, b) = (got["complexity"].as_f64().unwrap(), want["complexity"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "complexity {a} batched vs {b} alone");
    }
    let (_, text) = metrics_text(&s).await;
    let counter = |name: &str| -> u64 {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).unwrap().trim().parse().unwrap()
    };
    let (batches, batched) =
        (counter("switchyard_encode_batches_total"), counter("switchyard_encode_batched_prompts_total"));
    assert_eq!(batched, 96);
    assert!(batches < 96, "48 concurrent prompts were never batched ({batches} passes)");
}

/// `encoder.batch_wait_ms` only applies under load: requests one at a time are each a pass of one and never
/// wait, however long the configured wait (here 800 ms, against passes of a few). When a busy embedder
/// waits is checked deterministically next to the batcher (`embedder.rs`); a burst through HTTP cannot
/// fix which prompts share a pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_server_never_waits_for_a_batch() {
    let s = state("[encoder]\ncache_entries = 0\nbatch_wait_ms = 800\n");
    for p in prompts(4) {
        let start = std::time::Instant::now();
        let (status, body) = call(&s, "POST", "/v1/route", None, post(json!({"prompt": p}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_millis(400), "an idle request waited {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_encoder_queue_is_refused_with_429() {
    let s = state("[encoder]\ncache_entries = 0\nqueue_capacity = 1\n");
    let tasks: Vec<_> = prompts(40)
        .into_iter()
        .map(|p| {
            let s = s.clone();
            tokio::spawn(async move { call(&s, "POST", "/v1/route", None, post(json!({"prompt": p}))).await })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        let response = task.await.unwrap();
        if response.0 == StatusCode::OK {
            continue;
        }
        assert_error(&response, StatusCode::TOO_MANY_REQUESTS, "encoder_busy");
        refused += 1;
    }
    assert!(refused > 0, "40 concurrent prompts never filled a queue of one");
    let (_, text) = metrics_text(&s).await;
    assert!(text.contains(&format!("switchyard_encode_rejected_total {refused}")), "{text}");
}

async fn metrics_text(s: &Arc<AppState>) -> (StatusCode, String) {
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app(s.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    (status, String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}
