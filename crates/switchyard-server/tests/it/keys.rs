//! Client keys against a real gateway and real OpenAI-protocol upstreams on loopback ports: exact per-minute
//! limits and budgets (N allowed, N+1 refused with an OpenAI-shaped 429; N of a burst sent at once), spend
//! counted from upstream usage for streams too, and the models a key may use. (Budgets surviving a restart and
//! `logs stats --by key` are tested in the `switchyard` crate.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_testkit::upstream;
use tower::ServiceExt;

fn sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every model of the default router served by one upstream (5 prompt and 3 completion tokens a call, at $1
/// and $2 per million: $0.000011 a call), `[[keys]]` as given, and the decision log at `log`.
fn gateway(addr: SocketAddr, keys: &str, log: &Path) -> Arc<AppState> {
    let _router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let catalog = upstream::catalog(addr);
    let text = format!("[log]\npath = {log:?}\n[server]\nclient_keys = [\"plain-key\"]\n{keys}\n{catalog}");
    switchyard_testkit::app::state(&text)
}

async fn call(
    state: &Arc<AppState>,
    key: Option<&str>,
    uri: &str,
    body: Value,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer.as_deref().map(|b| ("authorization", b)).into_iter().collect();
    let (status, headers, bytes) = switchyard_testkit::app::post(state, uri, &headers, &body).await;
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Name three rivers in Europe."}]})
}

async fn metrics(state: &Arc<AppState>) -> String {
    let response = app(state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn code(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rpm_and_budget_limits_refuse_exactly_the_request_over_them() {
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Five requests a minute; a budget of three calls ($0.000033 less a hair, so three calls reach it).
    let keys = format!(
        "[[keys]]\nname = \"limited\"\nkey_sha256 = \"{}\"\nrpm = 5\n\
         [[keys]]\nname = \"budgeted\"\nkey_sha256 = \"{}\"\nbudget_usd = 0.0000329\nbudget_period = \"day\"\n",
        sha256("rpm-key"),
        sha256("budget-key")
    );
    let state = gateway(addr, &keys, &dir.path().join("log.sqlite"));
    // Eight requests at once against rpm = 5: exactly five are answered, three refused.
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let state = state.clone();
            tokio::spawn(async move {
                call(&state, Some("rpm-key"), "/v1/chat/completions", chat("switchyard", false)).await
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for task in burst {
        let (status, h, text) = task.await.unwrap();
        if status == StatusCode::OK {
            answered += 1;
            continue;
        }
        assert_eq!((status, code(&text).as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"), "{text}");
        let retry: u64 = h.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap();
        assert!((1..=60).contains(&retry), "retry-after {retry}");
        assert!(text.contains("\"type\":\"rate_limit_error\"") && text.contains("5 requests per minute"), "{text}");
        refused += 1;
    }
    assert_eq!((answered, refused), (5, 3), "rpm = 5 admits exactly five of a burst of eight");
    // /v1/route takes a slot too; another key is not held by this one's limit.
    let (status, _, _) = call(&state, Some("rpm-key"), "/v1/route", json!({"prompt": "hi"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = call(&state, Some("plain-key"), "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::OK);

    for i in 0..3 {
        let (status, _, text) =
            call(&state, Some("budget-key"), "/v1/chat/completions", chat("switchyard", false)).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {text}");
    }
    let (status, h, text) = call(&state, Some("budget-key"), "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"), "{text}");
    assert!(text.contains("daily budget") && h.get("retry-after").is_some(), "{text}");
    // A decision alone spends nothing, so the budget does not hold it.
    let (status, _, _) = call(&state, Some("budget-key"), "/v1/route", json!({"prompt": "hi"})).await;
    assert_eq!(status, StatusCode::OK);

    let text = metrics(&state).await;
    for line in [
        "switchyard_key_requests_total{key=\"limited\",status=\"200\"} 5",
        "switchyard_key_requests_total{key=\"limited\",status=\"429\"} 4",
        "switchyard_key_refusals_total{key=\"budgeted\",reason=\"budget_exceeded\"} 1",
        "switchyard_key_tokens_total{key=\"budgeted\",kind=\"input\"} 15",
        "switchyard_key_budget_usd{key=\"budgeted\"} 0.0000329",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
}

#[tokio::test]
async fn streamed_usage_is_counted_against_the_key_and_hidden_from_a_client_that_did_not_ask() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = format!("[[keys]]\nname = \"team\"\nkey_sha256 = \"{}\"\ntpm = 16\n", sha256("team-key"));
    let state = gateway(addr, &keys, &dir.path().join("log.sqlite"));
    for _ in 0..2 {
        let (status, h, text) = call(&state, Some("team-key"), "/v1/chat/completions", chat("switchyard", true)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("\"hel\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(!text.contains("usage") && !text.contains("prompt_tokens"), "{text}");
        assert!(h.get("x-switchyard-request-id").is_some());
    }
    // The upstream was asked for usage each time.
    assert_eq!(fake.calls.lock().unwrap().values().sum::<usize>(), 2);
    // 2 x 8 tokens reached the key's 16 tokens a minute: the next request is refused.
    let (status, _, text) = call(&state, Some("team-key"), "/v1/chat/completions", chat("switchyard", true)).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded"), "{text}");
    assert!(text.contains("16 tokens per minute"), "{text}");
    let text = metrics(&state).await;
    assert!(text.contains("switchyard_key_tokens_total{key=\"team\",kind=\"output\"} 6"), "{text}");
    assert!(text.contains("switchyard_key_cost_usd_total{key=\"team\"} 0.000022"), "{text}");
}

#[tokio::test]
async fn keys_bound_the_models_and_unknown_keys_are_refused() {
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let keys = format!(
        "[[keys]]\nname = \"cheap\"\nkey_sha256 = \"{}\"\nallowed_models = [\"gpt-4o-mini\", \"claude-3-haiku\"]\n",
        sha256("cheap-key")
    );
    let state = gateway(addr, &keys, &dir.path().join("log.sqlite"));
    let (status, _, text) = call(&state, Some("cheap-key"), "/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::FORBIDDEN, "model_not_allowed"), "{text}");
    assert!(text.contains("gpt-4o-mini, claude-3-haiku"), "{text}");
    // Routed requests choose among the key's models only, whatever the prompt.
    for prompt in ["hi", "Prove that there are infinitely many primes of the form 4k+3, with every step justified."] {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": prompt}]});
        let (status, h, text) = call(&state, Some("cheap-key"), "/v1/chat/completions", body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let model = h.get("x-switchyard-model").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert!(["gpt-4o-mini", "claude-3-haiku"].contains(&model.as_str()), "{prompt}: {model}");
        let (_, _, decision) = call(&state, Some("cheap-key"), "/v1/route", json!({"prompt": prompt})).await;
        let v: Value = serde_json::from_str(&decision).unwrap();
        assert!(["gpt-4o-mini", "claude-3-haiku"].contains(&v["model"].as_str().unwrap_or_default()), "{decision}");
    }
    // A request that allows only models outside the key's is refused, not silently widened.
    let body = json!({"prompt": "hi", "allowed_models": ["gpt-4o"]});
    let (status, _, text) = call(&state, Some("cheap-key"), "/v1/route", body).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::FORBIDDEN, "model_not_allowed"), "{text}");

    let (status, _, text) = call(&state, Some("wrong"), "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::UNAUTHORIZED, "invalid_api_key"), "{text}");
    let (status, _, _) = call(&state, None, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // server.client_keys still work, without limits.
    let (status, _, _) = call(&state, Some("plain-key"), "/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn bad_keys_are_start_up_errors_naming_the_key() {
    for (text, needle) in [
        ("[[keys]]\nname = \"ops\"\nrpm = 10\n", "key \"ops\": has no secret"),
        ("[[keys]]\nname = \"ops\"\nkey_env = \"OPS_KEY\"\nbudget_usd = -3.0\n", "budget_usd must be a number >= 0"),
        ("[[keys]]\nname = \"ops\"\nkey_env = \"OPS_KEY\"\nbudget = 3.0\n", "unknown field `budget`"),
    ] {
        let err = Config::parse(text, Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    // A key_env that is not set stops the server at start-up, naming the key and the variable.
    let config = Config::parse(
        "[log]\nenabled = false\n[[keys]]\nname = \"ops\"\nkey_env = \"SWITCHYARD_TEST_UNSET_KEY_VAR\"\n",
        Path::new("s.toml"),
    )
    .unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let err = AppState::new(router, Arc::new(encoder), config).err().unwrap().to_string();
    assert!(err.contains("\"ops\"") && err.contains("SWITCHYARD_TEST_UNSET_KEY_VAR is not set"), "{err}");
}
