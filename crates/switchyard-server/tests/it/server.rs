//! The HTTP API in-process, with the bundled default router and the real encoder: routing decisions, the
//! model list, health, authentication, and the documented status and error body for each kind of bad input.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{Encoder, EncoderOptions, MiniLm, TokenizedText};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

fn state(config: &str) -> Arc<AppState> {
    // These tests are about the API, not the decision log.
    let config = format!("{config}\n[log]\nenabled = false\n");
    let config = Config::parse(&config, std::path::Path::new("test.toml")).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
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

/// The real encoder behind a gate: a forward pass starts (and is counted), then waits while the gate is shut.
/// A test shuts it to hold the inference thread in one pass while it queues the prompts it wants batched.
struct Gated {
    inner: MiniLm,
    shut: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    passes: std::sync::atomic::AtomicUsize,
}

impl Gated {
    fn set(&self, shut: bool) {
        *self.shut.lock().unwrap() = shut;
        self.opened.notify_all();
    }

    fn passes(&self) -> usize {
        self.passes.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Encoder for Gated {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn files_digest(&self) -> Option<&str> {
        self.inner.files_digest()
    }
    fn precision(&self) -> switchyard_encoder::Precision {
        self.inner.precision()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }
    fn tokenize(&self, text: &str) -> switchyard_encoder::Result<TokenizedText> {
        self.inner.tokenize(text)
    }
    fn embed_tokens(&self, batch: &[TokenizedText]) -> switchyard_encoder::Result<Vec<Vec<f32>>> {
        self.passes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut shut = self.shut.lock().unwrap();
        while *shut {
            shut = self.opened.wait(shut).unwrap();
        }
        drop(shut);
        self.inner.embed_tokens(batch)
    }
}

/// Waits (up to 60 s) until `ready` holds.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what} did not happen within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A counter or gauge without labels from `/metrics`.
async fn counter(s: &Arc<AppState>, name: &str) -> f64 {
    let (_, text) = metrics_text(s).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

/// An idle server embeds each prompt at once and alone; a busy one takes everything queued (within
/// `encoder.batch_tokens`) into its next pass, and each prompt is decided as if alone. The inference thread is
/// held in a pass while 47 prompts queue, so which prompts share a pass is known, not left to timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_prompts_are_batched_and_decided_as_if_alone() {
    let config = Config::parse(
        "[log]\nenabled = false\n[encoder]\ncache_entries = 0\nbatch_tokens = 4096\n",
        std::path::Path::new("test.toml"),
    )
    .unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let inner = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let gated = Arc::new(Gated {
        inner,
        shut: std::sync::Mutex::new(false),
        opened: std::sync::Condvar::new(),
        passes: std::sync::atomic::AtomicUsize::new(0),
    });
    let s = Arc::new(AppState::new(router, gated.clone(), config).unwrap());
    let prompts = prompts(48);
    let mut alone = Vec::new();
    for p in &prompts {
        let (status, body) = call(&s, "POST", "/v1/route", None, post(json!({"prompt": p}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        alone.push(body);
    }
    // One at a time: each prompt was a pass of its own.
    assert_eq!(counter(&s, "switchyard_encode_batches_total").await, 48.0);
    assert_eq!(counter(&s, "switchyard_encode_batched_prompts_total").await, 48.0);

    // The first prompt holds the inference thread (its pass waits at the gate); the other 47 queue meanwhile.
    let before = gated.passes();
    gated.set(true);
    let send = |p: &String| {
        let (s, body) = (s.clone(), post(json!({"prompt": p})));
        tokio::spawn(async move { call(&s, "POST", "/v1/route", None, body).await })
    };
    let mut tasks = vec![send(&prompts[0])];
    until("the first prompt's pass", || gated.passes() == before + 1).await;
    tasks.extend(prompts[1..].iter().map(send));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while counter(&s, "switchyard_encode_queue_depth").await < 47.0 {
        assert!(std::time::Instant::now() < deadline, "the 47 prompts did not queue within 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    gated.set(false);
    for (task, want) in tasks.into_iter().zip(&alone) {
        let (status, got) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["model"], want["model"]);
        let (a, b) = (got["complexity"].as_f64().unwrap(), want["complexity"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-5, "complexity {a} batched vs {b} alone");
    }
    // The held pass of one, then one pass of the 47 that queued behind it.
    assert_eq!(counter(&s, "switchyard_encode_batches_total").await, 50.0);
    assert_eq!(counter(&s, "switchyard_encode_batched_prompts_total").await, 96.0);
    assert_eq!(gated.passes(), before + 2);
}

/// `encoder.batch_wait_ms` only applies under load: requests one at a time are each a pass of one and never
/// wait, however long the configured wait (here the longest allowed, 1 s). The queue-wait histogram says
/// whether they waited: all four together waited less than one configured wait (each would have waited a whole
/// one). When a busy embedder waits is checked deterministically next to the batcher (`embedder.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_server_never_waits_for_a_batch() {
    let s = state("[encoder]\ncache_entries = 0\nbatch_wait_ms = 1000\n");
    for p in prompts(4) {
        let (status, body) = call(&s, "POST", "/v1/route", None, post(json!({"prompt": p}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(counter(&s, "switchyard_encode_batches_total").await, 4.0);
    assert_eq!(counter(&s, "switchyard_encode_queue_seconds_count").await, 4.0);
    let waited = counter(&s, "switchyard_encode_queue_seconds_sum").await;
    assert!(waited < 1.0, "four idle requests waited {waited} s in the queue in all (batch_wait_ms = 1000)");
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
