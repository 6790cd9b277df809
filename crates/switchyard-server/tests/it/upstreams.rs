//! The gateway against real OpenAI-protocol upstreams on loopback ports, for what production traffic needs:
//! time limits that suit streams (connect, first byte, idle), provider failures (401/403/404) that fall back
//! instead of reaching the client, weighted deployments of one model with cooldowns, and named fallbacks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_testkit::upstream::{self, Fake, Mode};
use tower::ServiceExt;

/// A gateway over the default router whose catalog is `models` (TOML `[[models]]` tables), with extra
/// `[server]` settings; the decision log is off.
fn gateway(server: &str, models: &str) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = format!("[log]\nenabled = false\n[server]\nmax_attempts = 4\n{server}\n{models}");
    let config = Config::parse(&text, std::path::Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

/// A catalog model with one deployment per address, each weighted as given.
fn model(name: &str, deployments: &[(SocketAddr, u32)], extra: &str) -> String {
    let mut text = format!("[[models]]\nname = \"{name}\"\ninput_usd_per_mtok = 1.0\n{extra}\n");
    for (i, (addr, weight)) in deployments.iter().enumerate() {
        text.push_str(&format!(
            "[[models.deployments]]\nname = \"{name}@{i}\"\nbase_url = \"http://{addr}/v1\"\nweight = {weight}\n"
        ));
    }
    text
}

async fn chat(state: &Arc<AppState>, model: &str, stream: bool) -> (StatusCode, axum::http::HeaderMap, String) {
    let body =
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Name three rivers."}]});
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn header<'a>(h: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn calls(fake: &Fake, model: &str) -> usize {
    fake.calls.lock().unwrap().get(model).copied().unwrap_or(0)
}

fn set(fake: &Fake, model: &str, mode: Mode) {
    fake.modes.lock().unwrap().insert(model.to_string(), mode);
}

async fn metrics(state: &Arc<AppState>) -> String {
    let response = app(state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_long_stream_arrives_whole_while_it_keeps_sending() {
    let (addr, fake) = upstream::start().await;
    // 100 chunks 200 ms apart: 20 seconds, far past the first-byte and idle limits, each gap well inside.
    set(&fake, "m", Mode::LongStream(100, 200));
    let state = gateway("first_byte_timeout_ms = 1000\nidle_timeout_ms = 1000", &model("m", &[(addr, 1)], ""));
    let started = Instant::now();
    let (status, h, text) = chat(&state, "m", true).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(started.elapsed() >= Duration::from_secs(19), "the stream took {:?}", started.elapsed());
    let chunks = (0..100).filter(|i| text.contains(&format!("\"<{i}>\""))).count();
    assert_eq!(chunks, 100, "{text}");
    assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("upstream_stream_error"), "{text}");
    assert_eq!(header(&h, "x-switchyard-deployment"), "m@0");
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_with_an_error_event() {
    let (addr, fake) = upstream::start().await;
    set(&fake, "m", Mode::StallAfter(3));
    let state = gateway("idle_timeout_ms = 300", &model("m", &[(addr, 1)], ""));
    let started = Instant::now();
    let (status, _, text) = chat(&state, "m", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(text.contains("\"<2>\"") && text.contains("upstream_stream_error"), "{text}");
    assert!(text.contains("idle_timeout_ms") && !text.contains("[DONE]"), "{text}");
}

#[tokio::test]
async fn a_silent_upstream_times_out_at_the_first_byte_limit_and_falls_back() {
    let (silent, silent_fake) = upstream::start().await;
    let (healthy, healthy_fake) = upstream::start().await;
    set(&silent_fake, "m", Mode::Silent);
    let state = gateway("first_byte_timeout_ms = 300", &model("m", &[(silent, 1), (healthy, 1)], ""));
    let started = Instant::now();
    let (status, h, text) = chat(&state, "m", false).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(started.elapsed() >= Duration::from_millis(300) && started.elapsed() < Duration::from_secs(5));
    assert_eq!((header(&h, "x-switchyard-deployment"), header(&h, "x-switchyard-fallbacks")), ("m@1", "1"));
    assert_eq!((calls(&silent_fake, "m"), calls(&healthy_fake, "m")), (1, 1));

    // A stream whose headers come at once but whose first event never does falls back too.
    set(&silent_fake, "m", Mode::SilentStream);
    let state = gateway("first_byte_timeout_ms = 300", &model("m", &[(silent, 1), (healthy, 1)], ""));
    let (status, h, text) = chat(&state, "m", true).await;
    assert_eq!((status, header(&h, "x-switchyard-deployment")), (StatusCode::OK, "m@1"), "{text}");
    assert!(text.contains("\"hel\"") && !text.contains("keep-alive"), "{text}");
    let text = metrics(&state).await;
    assert!(
        text.contains("switchyard_upstream_calls_total{model=\"m\",deployment=\"m@0\",outcome=\"timeout\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn provider_auth_failures_fall_back_and_never_reach_the_client_as_its_own() {
    for mode in [Mode::Unauthorized, Mode::Forbidden, Mode::NotFound] {
        let (bad, bad_fake) = upstream::start().await;
        let (good, good_fake) = upstream::start().await;
        set(&bad_fake, "m", mode);
        let models = [model("m", &[(bad, 1)], "fallbacks = [\"n\"]"), model("n", &[(good, 1)], "")].concat();
        let state = gateway("", &models);
        for _ in 0..3 {
            let (status, h, text) = chat(&state, "m", false).await;
            assert_eq!(status, StatusCode::OK, "{mode:?}: {text}");
            assert_eq!(header(&h, "x-switchyard-deployment"), "n@0", "{mode:?}");
            assert_eq!(header(&h, "x-switchyard-fallbacks"), "1", "{mode:?}");
        }
        // Three auth failures in a row count toward cooldown like any upstream fault: m is skipped now.
        let (_, h, _) = chat(&state, "m", false).await;
        assert_eq!(header(&h, "x-switchyard-fallbacks"), "0", "{mode:?}");
        assert_eq!((calls(&bad_fake, "m"), calls(&good_fake, "n")), (3, 4), "{mode:?}");
        let text = metrics(&state).await;
        let line = "switchyard_upstream_calls_total{model=\"m\",deployment=\"m@0\",outcome=\"auth_error\"} 3";
        assert!(text.contains(line), "{mode:?}: {text}");
    }
    // Of two deployments of one model, the one that answers is preferred once both have been called.
    let (bad, bad_fake) = upstream::start().await;
    let (good, _) = upstream::start().await;
    set(&bad_fake, "m", Mode::Unauthorized);
    let state = gateway("", &model("m", &[(bad, 1), (good, 1)], ""));
    for _ in 0..5 {
        let (status, h, _) = chat(&state, "m", false).await;
        assert_eq!((status, header(&h, "x-switchyard-deployment")), (StatusCode::OK, "m@1"));
    }
    assert_eq!(calls(&bad_fake, "m"), 1);
    // With no healthy deployment the client gets a 502 naming each failure, never the provider's 401.
    let (bad, bad_fake) = upstream::start().await;
    set(&bad_fake, "m", Mode::Unauthorized);
    let state = gateway("", &model("m", &[(bad, 1)], ""));
    let (status, _, text) = chat(&state, "m", false).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("m@0: HTTP 401") && text.contains("api_key_env") && !text.contains("sk-"), "{text}");
}

#[tokio::test]
async fn weighted_deployments_share_traffic_by_their_weights() {
    let (a, a_fake) = upstream::start().await;
    let (b, b_fake) = upstream::start().await;
    let state = gateway("", &model("m", &[(a, 2), (b, 1)], ""));
    for _ in 0..1000 {
        let (status, _, text) = chat(&state, "m", false).await;
        assert_eq!(status, StatusCode::OK, "{text}");
    }
    // Smooth weighted round-robin over weights 2 and 1 is the sequence a, b, a, repeated: 667 and 333 exactly.
    assert_eq!((calls(&a_fake, "m"), calls(&b_fake, "m")), (667, 333));
}

#[tokio::test]
async fn a_cooled_down_deployment_is_skipped_until_its_cooldown_ends() {
    let (a, a_fake) = upstream::start().await;
    let (b, b_fake) = upstream::start().await;
    set(&a_fake, "m", Mode::Fail500);
    // m@0 (weight 3) gets three of every four first tries while it is healthy.
    let models = model("m", &[(a, 3), (b, 1)], "");
    let state = gateway("cooldown_failures = 2\ncooldown_ms = 60000", &models);
    for _ in 0..10 {
        let (status, h, _) = chat(&state, "m", false).await;
        assert_eq!((status, header(&h, "x-switchyard-deployment")), (StatusCode::OK, "m@1"));
    }
    // Two failures in a row put m@0 in cooldown; after that it is not called at all.
    assert_eq!((calls(&a_fake, "m"), calls(&b_fake, "m")), (2, 10));
    let text = metrics(&state).await;
    assert!(text.contains("switchyard_upstream_cooling{model=\"m\",deployment=\"m@0\"} 1"), "{text}");
    assert!(text.contains("switchyard_upstream_cooling{model=\"m\",deployment=\"m@1\"} 0"), "{text}");
}

#[tokio::test]
async fn a_named_model_falls_back_to_its_fallbacks_in_order() {
    let (addr, fake) = upstream::start().await;
    let models = [
        model("big", &[(addr, 1)], "fallbacks = [\"mid\"]"),
        model("mid", &[(addr, 1)], "fallbacks = [\"small\"]"),
        model("small", &[(addr, 1)], ""),
    ]
    .concat();
    let state = gateway("", &models);
    set(&fake, "big", Mode::Fail500);
    set(&fake, "mid", Mode::Fail429);
    let (status, h, text) = chat(&state, "big", false).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), ("small", "2"));
    assert!(text.contains("hello from small"), "{text}");
    // Naming a model in the middle of the chain starts there.
    set(&fake, "small", Mode::Fail500);
    let (status, _, text) = chat(&state, "mid", false).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(text.contains("mid@0: HTTP 429") && text.contains("small@0: HTTP 500") && !text.contains("big"), "{text}");
    // The name sent upstream is the deployment's upstream_model.
    let (addr2, fake2) = upstream::start().await;
    let state = gateway(
        "",
        &format!(
            "[[models]]\nname = \"gpt-4o\"\n[[models.deployments]]\nbase_url = \"http://{addr2}/v1\"\n\
             upstream_model = \"gpt-4o-2024-08-06\"\n"
        ),
    );
    let (status, h, _) = chat(&state, "gpt-4o", false).await;
    assert_eq!((status, header(&h, "x-switchyard-deployment")), (StatusCode::OK, "gpt-4o#1"));
    assert_eq!((calls(&fake2, "gpt-4o-2024-08-06"), calls(&fake2, "gpt-4o")), (1, 0));
}

#[test]
fn bad_deployment_configs_name_the_key() {
    let cases = [
        (
            "[[models]]\nname = \"a\"\n[[models.deployments]]\nbase_url = \"http://x\"\nzone = \"eu\"\n",
            "unknown field `zone`",
        ),
        (
            "[[models]]\nname = \"a\"\nbase_url = \"http://a\"\nfallbacks = [\"b\"]\n\
             [[models]]\nname = \"b\"\nbase_url = \"http://b\"\nfallbacks = [\"a\"]\n",
            "cycle: a -> b -> a",
        ),
        ("[[models]]\nname = \"a\"\nfallbacks = [\"a\"]\n", "no deployment"),
        ("[server]\nidle_timeout_ms = 0\n", "server.idle_timeout_ms"),
    ];
    for (text, needle) in cases {
        let err = Config::parse(text, std::path::Path::new("s.toml")).unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
}
