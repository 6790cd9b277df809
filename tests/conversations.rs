//! Conversations, capabilities and semantic rules, end to end on the default router with real upstreams:
//! a pinned conversation keeps its model, escalates at once and comes down only after enough cheaper turns;
//! a request with tools never reaches a model without `supports_tools`; a rule built from 20 legal example
//! prompts sends unseen legal prompts to its model and leaves unrelated prompts alone, in `serve` and in the
//! CLI's `route --config` alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::upstream::{self, Fake};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

/// Every model of the default router behind one upstream; `extra` is added to the config, `capable` models
/// declare `supports_tools`.
fn gateway(addr: SocketAddr, extra: &str, capable: &[&str]) -> Arc<AppState> {
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
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
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

async fn post(
    state: &Arc<AppState>,
    uri: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(state.clone()).oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
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

/// Legal questions written for this test, none of them among the rule's examples.
const LEGAL: [&str; 15] = [
    "Can my neighbor sue me if a tree from my yard falls on his garage?",
    "What should I do if I receive a cease and desist letter about my website's name?",
    "Is it legal for my landlord to enter my apartment without notice?",
    "How do I contest a speeding ticket in traffic court?",
    "What rights does a buyer have if a used car dealer hid known defects?",
    "Explain how probate works when someone dies without a will.",
    "Can a company enforce a non-disclosure agreement after I quit?",
    "What is the difference between a patent and a trade secret for protecting an invention?",
    "My former employer has not paid my final paycheck. What legal options do I have?",
    "Draft a clause limiting a consultant's liability to the fees paid under the contract.",
    "Is it legal to record a phone call without telling the other person?",
    "What does it mean to plead no contest to a criminal charge?",
    "How do I evict a tenant who has stopped paying rent?",
    "Can I get out of a gym membership contract that says it cannot be cancelled?",
    "What are the penalties for breaking an HOA rule about fences?",
];

/// Everything else.
const OTHER: [&str; 15] = [
    "What is the capital of Australia?",
    "Write a haiku about autumn leaves.",
    "How do I reverse a linked list in Python?",
    "Give me a recipe for a vegetarian lasagna.",
    "Explain how photosynthesis works.",
    "What are good stretches for lower back pain after running?",
    "Translate \"good morning, how are you\" into Spanish.",
    "Summarize the plot of Moby-Dick in three sentences.",
    "How many moons does Jupiter have?",
    "Write a SQL query that returns the top five customers by total order value.",
    "What is the difference between a virus and a bacterium?",
    "Plan a three-day trip to Kyoto for a first-time visitor.",
    "How do interest rates affect bond prices?",
    "Suggest a name for a golden retriever puppy.",
    "Prove that the square root of two is irrational.",
];

#[tokio::test]
async fn a_semantic_rule_sends_unseen_legal_prompts_to_its_model_and_leaves_the_rest() {
    let examples = common::workspace_root().join("tests/fixtures/legal-examples.txt");
    let rule = format!(
        "[[rules]]\nname = \"legal\"\nwhen = {{ similar_to = {:?} }}\nthen = {{ model = \"mistral-large\" }}\n",
        examples.display().to_string()
    );
    let (addr, _) = upstream::start().await;
    let state = gateway(addr, &rule, &[]);
    let mut hits = Vec::new();
    for (prompt, legal) in LEGAL.iter().map(|p| (p, true)).chain(OTHER.iter().map(|p| (p, false))) {
        let (status, h, v) = post(&state, "/v1/route", &[], json!({"prompt": prompt})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let fired = v["rule"] == "legal";
        if fired {
            assert_eq!(v["model"], "mistral-large", "{v}");
            assert_eq!(header(&h, "x-switchyard-rule"), "legal");
            let similarity = v["similarity"].as_f64().unwrap();
            assert!(similarity > 0.0 && v["reason"].as_str().unwrap().contains("similarity"), "{v}");
        } else {
            assert!(v["similarity"].is_null(), "{v}");
        }
        hits.push((legal, fired));
    }
    let tp = hits.iter().filter(|(l, f)| *l && *f).count() as f64;
    let fp = hits.iter().filter(|(l, f)| !*l && *f).count() as f64;
    let recall = tp / LEGAL.len() as f64;
    let precision = tp / (tp + fp).max(1.0);
    assert!(recall >= 0.85, "recall {recall}: {hits:?}");
    assert!(precision >= 0.9, "precision {precision}: {hits:?}");

    // The CLI runs the same pipeline from the same config.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    let router = common::workspace_root().join("models/default");
    std::fs::write(
        &config,
        format!("[router]\npath = {:?}\n[log]\nenabled = false\n{rule}", router.display().to_string()),
    )
    .unwrap();
    let run = |prompt: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["route", "--config"])
            .arg(&config)
            .arg("--model-dir")
            .arg(common::model_files().weights.parent().unwrap())
            .arg(prompt)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let legal = run(LEGAL[2]);
    assert_eq!((legal["rule"].as_str(), legal["model"].as_str()), (Some("legal"), Some("mistral-large")), "{legal}");
    let other = run(OTHER[0]);
    assert!(other["rule"].is_null() && other["model"] != "mistral-large", "{other}");
}
