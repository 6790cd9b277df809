//! The OpenAI-compatible gateway against real HTTP upstreams started in-process, which speak the OpenAI
//! protocol (plain and streaming) and can be told to fail: routing, pass-through, fallback on 500, 429,
//! timeouts and refused connections, client errors passed on, streaming, and failures mid-stream.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_testkit::upstream::{self, Fake, Mode};
use tower::ServiceExt;

struct Setup {
    state: Arc<AppState>,
    modes: Arc<Fake>,
    /// Holds the decision log.
    dir: tempfile::TempDir,
    /// The address the `refused` models point at, reserved for as long as the test runs.
    _closed: upstream::Closed,
}

/// The default router, and every catalog model served by one fake upstream (`refused` models point at a
/// loopback address that refuses connections).
async fn setup(refused: &[&str]) -> Setup {
    setup_with(refused, "", &[]).await
}

/// As [`setup`], with extra `[server]` settings.
async fn setup_with(refused: &[&str], server: &str, small_window: &[&str]) -> Setup {
    let (addr, modes) = upstream::start().await;
    let closed = upstream::closed();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.sqlite");
    let mut config =
        format!("[log]\npath = {log:?}\n[server]\nfirst_byte_timeout_ms = 500\nmax_attempts = 4\n{server}");
    for m in &router.manifest.models {
        let at = if refused.contains(&m.model.as_str()) { closed.addr } else { addr };
        config.push_str(&format!(
            "[[models]]\nname = \"{}\"\nbase_url = \"http://{at}/v1\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n",
            m.model
        ));
        if small_window.contains(&m.model.as_str()) {
            config.push_str("context_window = 40\n");
        }
    }
    let config = Config::parse(&config, std::path::Path::new("test.toml")).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    Setup { state: Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap()), modes, dir, _closed: closed }
}

const PROMPT: &str = "Summarise the causes of the French Revolution in three sentences.";

/// The models the router ranks for PROMPT, best first.
async fn ranking(s: &Setup) -> Vec<String> {
    let (_, _, body) = send(s, "/v1/route", json!({"prompt": PROMPT})).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    v["ranking"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect()
}

async fn send(s: &Setup, uri: &str, body: Value) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request =
        Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let response = app(s.state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]})
}

/// The decision log's record of one request (after the writer has caught up).
fn logged(s: &Setup, request_id: &str) -> switchyard_store::DecisionRecord {
    s.state.log.as_ref().unwrap().flush();
    let store = switchyard_store::Store::open(&s.dir.path().join("decisions.sqlite")).unwrap();
    let mut found = None;
    store
        .for_each(i64::MIN, |r| {
            if r.record.request_id == request_id {
                found = Some(r.record);
            }
        })
        .unwrap();
    found.unwrap_or_else(|| panic!("request {request_id} is not in the decision log"))
}

/// The line of `/metrics` that starts with `prefix` (empty when there is none).
async fn metric_line(s: &Setup, prefix: &str) -> String {
    let response = app(s.state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    text.lines().find(|l| l.starts_with(prefix)).unwrap_or_default().to_string()
}

fn header<'a>(h: &'a axum::http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn routes_to_the_first_choice_and_passes_named_models_through() {
    let s = setup(&[]).await;
    let ranking = ranking(&s).await;
    let (status, h, body) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&h, "x-switchyard-model"), ranking[0]);
    assert_eq!(header(&h, "x-switchyard-fallbacks"), "0");
    assert!(header(&h, "x-switchyard-request-id").starts_with("sy-"));
    assert!(header(&h, "x-switchyard-decision-ms").parse::<f64>().unwrap() > 0.0);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], format!("hello from {}", ranking[0]));

    // Upstream-reported tokens and their list-price cost (5 in at $1/M, 3 out at $2/M for the one call so far).
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app(s.state.clone()).oneshot(request).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains(&format!("switchyard_tokens_total{{model=\"{}\",kind=\"input\"}} 5", ranking[0])), "{text}");
    let cost = text.lines().find(|l| l.starts_with(&format!("switchyard_cost_usd_total{{model=\"{}\"}}", ranking[0])));
    let cost: f64 = cost.and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    assert!((cost - 1.1e-5).abs() < 1e-12, "{text}");

    let (status, h, _) = send(&s, "/v1/chat/completions", chat("gpt-4o-mini", false)).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, "gpt-4o-mini"));

    // Knobs in metadata narrow the choice.
    let mut req = chat("auto", false);
    req["metadata"] = json!({"allowed_models": "claude-3-haiku", "willingness_to_pay": "0.01"});
    let (status, h, _) = send(&s, "/v1/chat/completions", req).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, "claude-3-haiku"));

    let (status, _, body) = send(&s, "/v1/chat/completions", chat("gpt-9", false)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("model_not_found"));
}

#[tokio::test]
async fn falls_back_on_500_429_timeouts_and_refused_connections() {
    let first = {
        let s = setup(&[]).await;
        ranking(&s).await
    };
    // The first choice refuses connections; the second answers 500, the third 429, the fourth is too slow.
    let s = setup(&[first[0].as_str()]).await;
    {
        let mut modes = s.modes.modes.lock().unwrap();
        modes.insert(first[1].clone(), Mode::Fail500);
        modes.insert(first[2].clone(), Mode::Fail429);
    }
    let (status, h, body) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), (first[3].as_str(), "3"));
    // The decision log has the whole chain: each attempt's model, status and latency, then tokens and cost.
    let record = logged(&s, header(&h, "x-switchyard-request-id"));
    let chain: Vec<(&str, Option<u16>)> = record.attempts.iter().map(|a| (a.model.as_str(), a.status)).collect();
    assert_eq!(
        chain,
        [
            (first[0].as_str(), None),
            (first[1].as_str(), Some(500)),
            (first[2].as_str(), Some(429)),
            (first[3].as_str(), Some(200))
        ]
    );
    assert!(record.attempts.iter().all(|a| a.latency_ms > 0.0) && record.attempts[0].error.is_some());
    assert_eq!(
        (record.chosen_model.as_deref(), record.decided_model.as_deref()),
        (Some(first[3].as_str()), Some(first[0].as_str()))
    );
    assert_eq!((record.input_tokens, record.output_tokens, record.status), (Some(5), Some(3), 200));
    assert!((record.cost_usd.unwrap() - 11e-6).abs() < 1e-12);
    assert_eq!(record.prompt.as_deref(), Some(PROMPT));
    assert_eq!(record.estimates.len(), s.state.routers().main.manifest.models.len());
    assert!(record.latency_ms >= record.attempts.iter().map(|a| a.latency_ms).sum::<f64>());

    s.modes.modes.lock().unwrap().insert(first[3].clone(), Mode::Slow);
    let (status, h, body) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(
        text.contains("upstreams_failed") && text.contains("first_byte_timeout_ms") && text.contains("HTTP 429"),
        "{text}"
    );
    let failed = logged(&s, header(&h, "x-switchyard-request-id"));
    assert_eq!((failed.status, failed.chosen_model.as_ref(), failed.attempts.len()), (502, None, 4));

    // A model named by the client has no fallback.
    let (status, _, body) = send(&s, "/v1/chat/completions", chat(&first[1], false)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", String::from_utf8_lossy(&body));
    // A client error from the upstream is the client's: passed on as it is.
    let s2 = setup(&[]).await;
    s2.modes.modes.lock().unwrap().insert("gpt-4o".into(), Mode::BadRequest);
    let (status, _, body) = send(&s2, "/v1/chat/completions", chat("gpt-4o", false)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("upstream_says_no"));
}

#[tokio::test]
async fn streams_pass_through_and_fail_cleanly() {
    let s = setup(&[]).await;
    let ranking = ranking(&s).await;
    let (status, h, body) = send(&s, "/v1/chat/completions", chat("switchyard", true)).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(header(&h, "content-type"), "text/event-stream");
    assert!(text.contains("\"hel\"") && text.contains("\"lo\"") && text.ends_with("data: [DONE]\n\n"), "{text}");
    // A stream is logged when it ends, with the usage the gateway asked the upstream for; the client, which
    // did not ask for usage, does not see it.
    assert!(!text.contains("usage") && !text.contains("prompt_tokens"), "{text}");
    let record = logged(&s, header(&h, "x-switchyard-request-id"));
    assert!(record.stream);
    assert_eq!((record.input_tokens, record.output_tokens), (Some(5), Some(3)));
    let mut with_usage = chat("switchyard", true);
    with_usage["stream_options"] = json!({"include_usage": true});
    let (status, h, body) = send(&s, "/v1/chat/completions", with_usage).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("\"prompt_tokens\":5"), "a client that asks gets the usage");
    let record = logged(&s, header(&h, "x-switchyard-request-id"));
    assert_eq!((record.input_tokens, record.output_tokens, record.status), (Some(5), Some(3), 200));

    // Before the first byte a failure falls back; after it the client gets an SSE error event.
    {
        let mut modes = s.modes.modes.lock().unwrap();
        modes.insert(ranking[0].clone(), Mode::Fail500);
        modes.insert(ranking[1].clone(), Mode::DropMidStream);
    }
    let (status, h, body) = send(&s, "/v1/chat/completions", chat("switchyard", true)).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, ranking[1].as_str()));
    assert!(text.contains("\"hel\"") && text.contains("upstream_stream_error") && !text.contains("[DONE]"), "{text}");

    // An upstream whose stream never reports usage is charged an estimate at four characters a token: the
    // request's text (PROMPT, rounded up to whole tokens), and the generated "<0><1><2>" (9 characters: 3).
    s.modes.modes.lock().unwrap().insert(ranking[0].clone(), Mode::LongStream(3, 5));
    let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", true)).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, ranking[0].as_str()));
    let record = logged(&s, header(&h, "x-switchyard-request-id"));
    let input = PROMPT.chars().count().div_ceil(4) as u64;
    assert_eq!((record.input_tokens, record.output_tokens, record.usage_estimated), (Some(input), Some(3), true));
    // At $1 and $2 per million tokens.
    let cost = (input as f64 + 3.0 * 2.0) * 1e-6;
    assert!(record.cost_usd.is_some_and(|c| (c - cost).abs() < 1e-12), "{record:?}, expected ${cost}");
}

#[tokio::test]
async fn malformed_gateway_requests_get_openai_errors() {
    let s = setup(&[]).await;
    for (body, code) in [
        (json!({"messages": [{"role": "user", "content": "hi"}]}), "missing_model"),
        (json!({"model": "switchyard"}), "missing_messages"),
        (json!({"model": "switchyard", "messages": []}), "missing_messages"),
        (json!({"model": "switchyard", "messages": [{"role": "system", "content": "x"}]}), "no_user_message"),
        (
            json!({"model": "switchyard", "messages": [{"role": "user", "content": "hi"}], "metadata": {"min_quality": "high"}}),
            "invalid_knob",
        ),
        (json!([1, 2]), "invalid_type"),
    ] {
        let (status, _, bytes) = send(&s, "/v1/chat/completions", body.clone()).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!((status, v["error"]["code"].as_str().unwrap()), (StatusCode::BAD_REQUEST, code), "{body}");
    }
}

/// The cooldown is long (30 s), so that no machine is slow enough for it to end between the failures and the
/// request that must skip the deployment; its end is then observed (`switchyard_upstream_cooling` turns 0), not
/// waited out by the clock.
#[tokio::test]
async fn failing_upstreams_cool_down_and_recover() {
    let s = setup_with(&[], "cooldown_failures = 2\ncooldown_ms = 30000\n", &[]).await;
    let first = ranking(&s).await;
    s.modes.modes.lock().unwrap().insert(first[0].clone(), Mode::Fail500);
    for _ in 0..2 {
        let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
        assert_eq!((status, header(&h, "x-switchyard-fallbacks")), (StatusCode::OK, "1"));
    }
    // Two failures in a row: the first choice is skipped without being called.
    let calls = |s: &Setup| s.modes.calls.lock().unwrap().get(&first[0]).copied().unwrap_or(0);
    assert_eq!(calls(&s), 2);
    s.modes.modes.lock().unwrap().insert(first[0].clone(), Mode::Ok);
    let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), (first[1].as_str(), "0"));
    assert_eq!(calls(&s), 2);
    // After the cooldown it is tried again, and answers.
    let cooling = format!("switchyard_upstream_cooling{{model=\"{0}\",deployment=\"{0}\"}} ", first[0]);
    assert_eq!(metric_line(&s, &cooling).await, format!("{cooling}1"));
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while metric_line(&s, &cooling).await != format!("{cooling}0") {
        assert!(std::time::Instant::now() < deadline, "the 30 s cooldown did not end within 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, first[0].as_str()));
    assert_eq!(calls(&s), 3);

    // The metrics count what happened.
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app(s.state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    let line = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert_eq!(line("switchyard_cooldowns_total"), "switchyard_cooldowns_total 1", "{text}");
    assert_eq!(line("switchyard_fallbacks_total"), "switchyard_fallbacks_total 2", "{text}");
    let served = format!(
        "switchyard_requests_total{{endpoint=\"/v1/chat/completions\",model=\"{}\",status=\"200\",arm=\"-\"}} 3",
        first[1]
    );
    assert!(text.contains(&served), "{text}");
    assert!(
        text.contains(&format!(
            "switchyard_upstream_calls_total{{model=\"{0}\",deployment=\"{0}\",outcome=\"failed\"}} 2",
            first[0]
        )),
        "{text}"
    );
    assert!(
        text.contains("switchyard_decision_seconds_count 5")
            && text.contains("switchyard_encode_seconds_count 5")
            // The same prompt five times: embedded once, then four times from the cache.
            && text.contains("switchyard_encode_tokenize_seconds_count 1")
            && text.contains("switchyard_encode_inference_seconds_count 1")
            && text.contains("switchyard_encode_cache_hits_total 4")
            && text.contains("switchyard_encode_queue_seconds_count 1"),
        "{text}"
    );
}

#[tokio::test]
async fn spent_budgets_fall_back_and_small_context_windows_are_skipped() {
    let first = {
        let s = setup(&[]).await;
        ranking(&s).await
    };
    // 402, and a 400 that says the quota is spent, are the upstream's problem: fall back.
    let s = setup(&[]).await;
    {
        let mut modes = s.modes.modes.lock().unwrap();
        modes.insert(first[0].clone(), Mode::PaymentRequired);
        modes.insert(first[1].clone(), Mode::QuotaExhausted);
    }
    let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((header(&h, "x-switchyard-model"), header(&h, "x-switchyard-fallbacks")), (first[2].as_str(), "2"));

    // The first choice's 40-token window cannot hold this request (prompt + max_tokens): it is not called.
    let s = setup_with(&[], "", &[first[0].as_str()]).await;
    let mut req = chat("switchyard", false);
    req["max_tokens"] = json!(100);
    let (status, h, _) = send(&s, "/v1/chat/completions", req).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, first[1].as_str()));
    assert_eq!(header(&h, "x-switchyard-fallbacks"), "0");
    assert_eq!(s.modes.calls.lock().unwrap().get(&first[0]).copied().unwrap_or(0), 0);
}

#[tokio::test]
async fn max_latency_skips_upstreams_that_are_slow_right_now() {
    let s = setup(&[]).await;
    let first = ranking(&s).await;
    s.modes.modes.lock().unwrap().insert(first[0].clone(), Mode::Delayed);
    let (status, h, _) = send(&s, "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, first[0].as_str()));
    // Its average latency is now about 150 ms: a 100 ms budget routes around it, a 1 s budget does not.
    let mut req = chat("switchyard", false);
    req["metadata"] = json!({"max_latency_ms": "100"});
    let (status, h, _) = send(&s, "/v1/chat/completions", req.clone()).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, first[1].as_str()));
    req["metadata"] = json!({"max_latency_ms": 1000});
    let (_, h, _) = send(&s, "/v1/chat/completions", req).await;
    assert_eq!(header(&h, "x-switchyard-model"), first[0].as_str());
    // /v1/route takes the same knob.
    let (_, _, body) = send(&s, "/v1/route", json!({"prompt": PROMPT, "max_latency_ms": 100})).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["model"], first[1].as_str());
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app(s.state.clone()).oneshot(request).await.unwrap();
    let text = String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.contains(&format!("switchyard_upstream_latency_ewma_ms{{model=\"{0}\",deployment=\"{0}\"}}", first[0])),
        "{text}"
    );
}
