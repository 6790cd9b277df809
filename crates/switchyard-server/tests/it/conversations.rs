//! Conversations and capabilities, end to end on the default router with real upstreams: a pinned
//! conversation keeps its model, escalates at once and comes down only after enough cheaper turns; a request
//! with tools never reaches a model without `supports_tools`. (The semantic rule built from 20 legal examples,
//! checked in the server and in the CLI's `route --config` alike, is in the `switchyard` crate's tests.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_server::AppState;
use switchyard_testkit::app::post_json as post;
use switchyard_testkit::upstream::{self, Fake};

/// Every model of the default router behind one upstream; `extra` is added to the config, `capable` models
/// declare `supports_tools`.
fn gateway(addr: SocketAddr, extra: &str, capable: &[&str]) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let mut text = format!("[log]\nenabled = false\n{extra}\n");
    for m in &router.manifest.models {
        text.push_str(&format!(
            "[[models]]\nname = \"{}\"\nbase_url = \"http://{addr}/v1\"\ninput_usd_per_mtok = {}\noutput_usd_per_mtok = {}\n",
            m.model, m.input_usd_per_mtok, m.output_usd_per_mtok
        ));
        if capable.contains(&m.model.as_str()) {
            text.push_str("supports_tools = true\n");
        }
    }
    switchyard_testkit::app::state(&text)
}

fn header(h: &axum::http::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

fn calls(fake: &Fake, model: &str) -> usize {
    fake.calls.lock().unwrap().get(model).copied().unwrap_or(0)
}

const EASY: &str = "Thanks, that's all I needed!";
const HARD: &str =
    "Design a lock-free concurrent hash map in C++ with safe memory reclamation, and prove it linearizable.";

/// A conversation whose user turns are `turns` (assistant replies in between).
fn conversation(turns: &[&str]) -> Vec<Value> {
    let mut messages = Vec::new();
    for (i, t) in turns.iter().enumerate() {
        if i > 0 {
            messages.push(json!({"role": "assistant", "content": "Here you go."}));
        }
        messages.push(json!({"role": "user", "content": t}));
    }
    messages
}

#[tokio::test]
async fn a_pinned_conversation_keeps_its_model_escalates_at_once_and_comes_down_slowly() {
    let (addr, fake) = upstream::start().await;
    let state = gateway(addr, "[routing]\ndeescalate_after = 3", &[]);
    // What the policy alone picks for each conversation so far (a fresh id: nothing pinned yet).
    let mut fresh = 0;
    let mut unpinned = |turns: Vec<&'static str>| {
        fresh += 1;
        let state = state.clone();
        async move {
            let id = format!("fresh-{fresh}");
            let (_, _, v) =
                post(&state, "/v1/route", &[("x-session-id", &id)], json!({"messages": conversation(&turns)})).await;
            assert_eq!(v["session"]["action"], "started", "{v}");
            v["model"].as_str().unwrap().to_string()
        }
    };
    let mut turns = vec![EASY];
    let cheap = unpinned(turns.clone()).await;
    turns.push(HARD);
    let strong = unpinned(turns.clone()).await;
    assert_ne!(cheap, strong, "the default router must tell an easy turn from a hard one");

    // The same conversation, pinned: turn by turn.
    let mut said = Vec::new();
    let mut history = Vec::new();
    for (i, turn) in [EASY, HARD, EASY, EASY, EASY].iter().enumerate() {
        history.push(*turn);
        let body = json!({"messages": conversation(&history)});
        let (status, h, v) = post(&state, "/v1/route", &[("x-session-id", "conv-1")], body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["session"]["turn"], i + 1);
        assert_eq!(header(&h, "x-switchyard-pinned"), v["model"].as_str().unwrap());
        said.push((v["model"].as_str().unwrap().to_string(), v["session"]["action"].clone()));
    }
    let expected_policy = unpinned(vec![EASY, HARD, EASY]).await;
    assert_ne!(expected_policy, strong, "after the hard turn, an easy one needs less");
    assert_eq!(said[0], (cheap.clone(), json!("started")));
    assert_eq!(said[1], (strong.clone(), json!({"escalated": {"from": cheap}})));
    assert_eq!(said[2], (strong.clone(), json!({"held": {"cheaper_turns": 1}})));
    assert_eq!(said[3], (strong.clone(), json!({"held": {"cheaper_turns": 2}})));
    assert_eq!(said[4].1, json!({"deescalated": {"from": strong}}));
    assert_ne!(said[4].0, strong);

    // Through the gateway the pin decides which upstream is called (metadata.session_id names the
    // conversation here): the held turn goes to the strong model although the policy alone would not.
    let before = calls(&fake, &strong);
    let mut history = Vec::new();
    let mut answered = Vec::new();
    for turn in [EASY, HARD, EASY] {
        history.push(turn);
        let body =
            json!({"model": "switchyard", "messages": conversation(&history), "metadata": {"session_id": "conv-2"}});
        let (status, h, v) = post(&state, "/v1/chat/completions", &[], body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(header(&h, "x-switchyard-pinned"), header(&h, "x-switchyard-model"));
        answered.push(header(&h, "x-switchyard-model"));
    }
    assert_eq!(answered, [cheap.clone(), strong.clone(), strong.clone()]);
    assert_eq!(calls(&fake, &strong) - before, 2);
}

#[tokio::test]
async fn a_request_with_tools_never_reaches_a_model_without_supports_tools() {
    let (addr, fake) = upstream::start().await;
    let capable = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "claude-3-haiku"];
    let state = gateway(addr, "", &capable);
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let prompts = [
        "hi",
        "What's the weather in Paris right now?",
        "Thanks!",
        HARD,
        "Write a Rust function that parses ISO 8601 dates and handles time zones.",
        "Design a distributed rate limiter for a global API with strict fairness guarantees.",
        "Convert 5 miles to kilometres.",
        "Book me a table for two tomorrow at 8pm.",
    ];
    for p in prompts {
        let body = json!({"model": "switchyard", "tools": tools, "messages": [{"role": "user", "content": p}]});
        let (status, h, v) = post(&state, "/v1/chat/completions", &[], body).await;
        assert_eq!(status, StatusCode::OK, "{p}: {v}");
        let model = header(&h, "x-switchyard-model");
        assert!(capable.contains(&model.as_str()), "{p}: went to {model}");
        let (_, _, decision) =
            post(&state, "/v1/route", &[], json!({"messages": [{"role": "user", "content": p}], "tools": tools})).await;
        assert!(capable.contains(&decision["model"].as_str().unwrap_or_default()), "{decision}");
        assert!(decision["reason"].as_str().unwrap_or_default().contains("accept tools"), "{decision}");
    }
    let mut total = 0;
    for (model, n) in fake.calls.lock().unwrap().iter() {
        assert!(capable.contains(&model.as_str()), "{model} was called {n} times");
        total += n;
    }
    assert_eq!(total, prompts.len());

    // A named model without tools is refused, not sent a request it cannot take.
    let body =
        json!({"model": "llama-3.1-8b-instruct", "tools": tools, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, v) = post(&state, "/v1/chat/completions", &[], body).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_request")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("supports_tools"), "{v}");
    // An image to a catalog where no model declares vision: a clear error naming the flag.
    let image = json!({"model": "switchyard", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    let (status, _, v) = post(&state, "/v1/chat/completions", &[], image).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_request")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("supports_vision"), "{v}");
}
