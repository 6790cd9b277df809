//! One tenant cannot hurt another, in-process: per-key concurrency (with a shared state too), bounded
//! identifiers, and what `/metrics` and `/v1/models` show to whom. (Slow and half-open connections against a
//! real `switchyard serve` process are in the `switchyard` crate's `tenancy` tests.)

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

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

fn state(server: &str, keys: &str) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let path = switchyard_testkit::default_router();
    let text = format!("[log]\nenabled = false\n[router]\npath = {path:?}\n[server]\n{server}\n{keys}");
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
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
