//! Supervision: a panic in the inference thread fails only the batch it hit; the thread is restarted,
//! `/readyz` answers 503 naming it until then, the restart is counted, and prompts that were waiting are
//! answered afterwards.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{Encoder, EncoderOptions, MiniLm, TokenizedText};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

/// The real encoder, except that it panics on one prompt: a fault injected to exercise the supervisor.
struct PanicsOn {
    inner: MiniLm,
    poison: Vec<u32>,
}

impl Encoder for PanicsOn {
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn precision(&self) -> switchyard_encoder::Precision {
        self.inner.precision()
    }
    fn max_tokens(&self) -> usize {
        self.inner.max_tokens()
    }
    fn tokenize(&self, text: &str) -> switchyard_encoder::Result<TokenizedText> {
        self.inner.tokenize(text)
    }
    fn embed_tokens(&self, batch: &[TokenizedText]) -> switchyard_encoder::Result<Vec<Vec<f32>>> {
        if batch.iter().any(|t| t.ids == self.poison) {
            panic!("injected fault: the poison prompt reached the model");
        }
        self.inner.embed_tokens(batch)
    }
}

async fn get(state: &Arc<AppState>, uri: &str) -> (StatusCode, String) {
    let response = app(state.clone()).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    (status, String::from_utf8_lossy(&response.into_body().collect().await.unwrap().to_bytes()).into_owned())
}

async fn route(state: &Arc<AppState>, prompt: &str) -> (StatusCode, Value) {
    let request = Request::post("/v1/route")
        .header("content-type", "application/json")
        .body(Body::from(json!({"prompt": prompt}).to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_panicking_inference_thread_is_restarted_and_readyz_says_so_meanwhile() {
    let inner = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let poison = inner.tokenize("poison prompt that crashes the model").unwrap().ids;
    let encoder = Arc::new(PanicsOn { inner, poison });
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let config = Config::parse("[log]\nenabled = false\n", std::path::Path::new("t.toml")).unwrap();
    let state = Arc::new(AppState::new(router, encoder, config).unwrap());
    assert_eq!(get(&state, "/readyz").await.0, StatusCode::OK);
    assert_eq!(route(&state, "What is the capital of Italy?").await.0, StatusCode::OK);

    let (status, v) = route(&state, "poison prompt that crashes the model").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("inference thread"), "{v}");
    // The thread was marked down before the failed request was answered: readiness fails now, naming it.
    let (status, body) = get(&state, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"inference\""), "{body}");
    // A prompt sent while it is down waits in the queue and is answered after the restart.
    let waiting = tokio::spawn({
        let state = state.clone();
        async move { route(&state, "Summarise the plot of Hamlet.").await }
    });
    let started = Instant::now();
    while get(&state, "/readyz").await.0 != StatusCode::OK {
        assert!(started.elapsed() < Duration::from_secs(30), "the inference thread was not restarted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, v) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(route(&state, "What is 2 + 2?").await.0, StatusCode::OK);
    let (_, metrics) = get(&state, "/metrics").await;
    assert!(metrics.contains("switchyard_restarts_total{component=\"inference\"} 1"), "{metrics}");
    assert!(metrics.contains("switchyard_component_up{component=\"inference\"} 1"), "{metrics}");
}
