//! Anthropic's Messages API, both ways, in-process against the stand-in upstream (which speaks both APIs):
//! `/v1/messages` served by OpenAI upstreams (whole, streamed, tools, errors, keys and limits,
//! `count_tokens`), `/v1/chat/completions` served by an `api = "anthropic"` deployment, and fallbacks that
//! cross APIs. The official `anthropic` SDK drives a real `switchyard serve` in the `switchyard` crate's tests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;
use switchyard_core::Router;
use switchyard_server::AppState;
use switchyard_testkit::upstream::{self, Mode};

/// The catalog's Anthropic model in these tests; every other model of the default router is OpenAI's.
const CLAUDE: &str = "claude-3-5-sonnet";

/// Every model of the default router behind the stand-in: [`CLAUDE`] through its Anthropic side, the others
/// through its OpenAI side; `extra` is added to the config.
fn gateway(addr: SocketAddr, extra: &str, claude_falls_back_to: Option<&str>) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let mut text = format!("[log]\nenabled = false\n{extra}\n");
    for m in &router.manifest.models {
        // The Anthropic deployment's key: an environment variable cargo sets for every test process.
        let (url, api) = if m.model == CLAUDE {
            (format!("http://{addr}\"\napi_key_env = \"CARGO_PKG_NAME"), "anthropic")
        } else {
            (format!("http://{addr}/v1"), "openai")
        };
        text.push_str(&format!(
            "[[models]]\nname = \"{}\"\nbase_url = \"{url}\"\napi = \"{api}\"\nsupports_tools = true\n\
             input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n",
            m.model
        ));
        if let Some(to) = claude_falls_back_to.filter(|_| m.model == CLAUDE) {
            text.push_str(&format!("fallbacks = [\"{to}\"]\n"));
        }
    }
    switchyard_testkit::app::state(&text)
}

async fn post(state: &Arc<AppState>, uri: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    switchyard_testkit::app::post(state, uri, headers, &body).await
}

/// A status, the headers and the body's bytes.
type Reply = (StatusCode, axum::http::HeaderMap, Vec<u8>);

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// The `(event name, data)` pairs of an SSE body.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: "))?.to_string();
            let data = e.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((name, serde_json::from_str(data).ok()?))
        })
        .collect()
}

fn header(h: &axum::http::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_messages_api_is_served_by_openai_upstreams() {
    let (addr, _fake) = upstream::start().await;
    let state = gateway(addr, "", None);
    let ask = |extra: Value| {
        let mut body = json!({"model": "switchyard", "max_tokens": 100,
            "messages": [{"role": "user", "content": "What is the capital of Japan?"}]});
        body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    // A whole answer, routed.
    let (status, h, bytes) = post(&state, "/v1/messages", &[], ask(json!({}))).await;
    let v = json_of(&bytes);
    assert_eq!(status, StatusCode::OK, "{v}");
    let model = header(&h, "x-switchyard-model");
    assert_ne!(model, CLAUDE, "the question is routed to a cheap model: {model}");
    assert_eq!((v["type"].as_str(), v["role"].as_str()), (Some("message"), Some("assistant")));
    assert_eq!(v["content"], json!([{"type": "text", "text": format!("hello from {model}")}]));
    assert_eq!((v["stop_reason"].as_str(), v["usage"]["input_tokens"].as_u64()), (Some("end_turn"), Some(5)));
    assert_eq!(v["usage"]["output_tokens"], 3);

    // A stream: Anthropic's event sequence, with the usage in message_delta.
    let (status, h, bytes) = post(&state, "/v1/messages", &[], ask(json!({"stream": true}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "text/event-stream");
    let stream = events(&bytes);
    let names: Vec<&str> = stream.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let text: String = stream.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "hello");
    assert_eq!(stream[6].1["usage"]["output_tokens"], 3, "the usage the gateway asked for reaches the client");

    // Tools, a round trip: the model calls the tool, the client sends its result back.
    let tools = json!([{"name": "weather", "description": "The weather", "input_schema": {"type": "object",
        "properties": {"city": {"type": "string"}}}}]);
    let (_, _, bytes) = post(&state, "/v1/messages", &[], ask(json!({"tools": tools}))).await;
    let call = json_of(&bytes);
    assert_eq!(call["stop_reason"], "tool_use", "{call}");
    let block = &call["content"][0];
    assert_eq!((block["type"].as_str(), block["name"].as_str()), (Some("tool_use"), Some("weather")));
    assert_eq!(block["input"], json!({"city": "Paris"}));
    let turns = json!([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": call["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "18 C"}]}
    ]);
    let (status, _, bytes) = post(&state, "/v1/messages", &[], ask(json!({"tools": tools, "messages": turns}))).await;
    let v = json_of(&bytes);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["content"][0]["text"], "the tool said: 18 C");

    // A named model, and count_tokens (an estimate, marked so).
    let (_, h, _) = post(&state, "/v1/messages", &[], ask(json!({"model": "gpt-4o"}))).await;
    assert_eq!(header(&h, "x-switchyard-model"), "gpt-4o");
    let (status, h, bytes) = post(&state, "/v1/messages/count_tokens", &[], ask(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&bytes)["input_tokens"], 8, "29 characters at 4 a token");
    assert_eq!(header(&h, "x-switchyard-token-count"), "estimated");
}

#[tokio::test]
async fn messages_errors_have_anthropic_s_shape_from_every_layer() {
    let (addr, _fake) = upstream::start().await;
    let digest: String = sha2::Sha256::digest(b"sk-limited").iter().map(|b| format!("{b:02x}")).collect();
    let keys = format!(
        "[server]\nclient_keys = [\"sk-test\"]\n[[keys]]\nname = \"limited\"\nkey_sha256 = \"{digest}\"\nrpm = 1\n"
    );
    let state = gateway(addr, &keys, None);
    let body = json!({"model": "switchyard", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let error = |bytes: &[u8]| {
        let v = json_of(bytes);
        assert_eq!(v["type"], "error", "not an error: {v}");
        v["error"]["type"].as_str().unwrap_or_default().to_string()
    };
    let (status, _, bytes) = post(&state, "/v1/messages", &[], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no key");
    assert_eq!(error(&bytes), "authentication_error");
    let (status, _, bytes) =
        post(&state, "/v1/messages", &[("x-api-key", "sk-test")], json!({"model": "switchyard"})).await;
    assert_eq!((status, error(&bytes).as_str()), (StatusCode::BAD_REQUEST, "invalid_request_error"));
    assert!(json_of(&bytes)["error"]["message"].as_str().unwrap().contains("`messages` must be an array"));
    let unknown = json!({"model": "gpt-9", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, bytes) = post(&state, "/v1/messages", &[("x-api-key", "sk-test")], unknown).await;
    assert_eq!((status, error(&bytes).as_str()), (StatusCode::NOT_FOUND, "not_found_error"));
    // A key over its rpm: rate_limit_error with retry-after, as the SDK expects.
    let (status, _, _) = post(&state, "/v1/messages", &[("x-api-key", "sk-limited")], body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, h, bytes) = post(&state, "/v1/messages", &[("x-api-key", "sk-limited")], body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "the second request in a minute with rpm = 1");
    assert_eq!(error(&bytes), "rate_limit_error");
    assert!(header(&h, "retry-after").parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn an_anthropic_deployment_serves_openai_clients_and_fallbacks_cross_apis() {
    let (addr, fake) = upstream::start().await;
    let state = gateway(addr, "", Some("gpt-4o"));
    let chat = |extra: Value| {
        let mut body = json!({"model": CLAUDE, "messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."}]});
        body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
        body
    };
    let (status, h, bytes) = post(&state, "/v1/chat/completions", &[], chat(json!({}))).await;
    let v = json_of(&bytes);
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(header(&h, "x-switchyard-model"), CLAUDE);
    assert_eq!(v["choices"][0]["message"]["content"], format!("hello from {CLAUDE}"));
    assert_eq!((v["usage"]["prompt_tokens"].as_u64(), v["usage"]["completion_tokens"].as_u64()), (Some(5), Some(3)));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(fake.anthropic_keys.lock().unwrap().as_slice(), ["switchyard-server"], "x-api-key, from api_key_env");

    // Streamed: OpenAI chunks, usage only when asked for.
    let (_, _, bytes) = post(&state, "/v1/chat/completions", &[], chat(json!({"stream": true}))).await;
    let text = String::from_utf8_lossy(&bytes);
    let chunks: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect();
    let said: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(said, format!("hello from {CLAUDE}"));
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(chunks.iter().all(|c| c.get("usage").is_none_or(Value::is_null)), "usage was not asked for: {text}");

    // Tools, both ways through the translation.
    let tools = json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
    let (_, _, bytes) = post(&state, "/v1/chat/completions", &[], chat(json!({"tools": tools}))).await;
    let call = json_of(&bytes)["choices"][0].clone();
    assert_eq!(call["finish_reason"], "tool_calls", "{call}");
    assert_eq!(call["message"]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    let turns = json!([{"role": "user", "content": "Weather in Paris?"}, call["message"],
        {"role": "tool", "tool_call_id": call["message"]["tool_calls"][0]["id"], "content": "18 C"}]);
    let (_, _, bytes) =
        post(&state, "/v1/chat/completions", &[], chat(json!({"tools": tools, "messages": turns}))).await;
    assert_eq!(json_of(&bytes)["choices"][0]["message"]["content"], "the tool said: 18 C");

    // Overloaded (529) at the Anthropic deployment: the OpenAI fallback answers, for both APIs' clients.
    fake.modes.lock().unwrap().insert(CLAUDE.to_string(), Mode::Fail500);
    let (status, h, bytes) = post(&state, "/v1/chat/completions", &[], chat(json!({}))).await;
    assert_eq!((status, header(&h, "x-switchyard-model")), (StatusCode::OK, "gpt-4o".to_string()));
    assert_eq!(json_of(&bytes)["choices"][0]["message"]["content"], "hello from gpt-4o");
    let messages = json!({"model": CLAUDE, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});
    let (status, h, bytes) = post(&state, "/v1/messages", &[], messages.clone()).await;
    assert_eq!((status, header(&h, "x-switchyard-fallbacks")), (StatusCode::OK, "1".to_string()));
    assert_eq!(json_of(&bytes)["content"][0]["text"], "hello from gpt-4o");

    // The client's own mistake at the Anthropic upstream comes back as the client's error, in its API's shape.
    fake.modes.lock().unwrap().insert(CLAUDE.to_string(), Mode::BadRequest);
    let (status, _, bytes) = post(&state, "/v1/chat/completions", &[], chat(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&bytes)["error"]["message"], "bad max_tokens");
    let (status, _, bytes) = post(&state, "/v1/messages", &[], messages).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(&bytes),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad max_tokens"}})
    );
}
