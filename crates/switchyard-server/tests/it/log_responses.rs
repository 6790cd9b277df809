//! What the decision log keeps of answers (`log.responses`): whole and streamed answers, tool calls (whole and
//! streamed), the cut at `max_response_chars`, and hashed answers, through the gateway to the stand-in upstream.

use serde_json::{json, Value};
use switchyard_store::DecisionRecord;
use switchyard_testkit::replicas::{call, header};
use switchyard_testkit::upstream;

/// A server logging answers as `log` says (TOML lines of `[log]`), every catalog model on the stand-in upstream.
async fn server(dir: &std::path::Path, log: &str) -> std::sync::Arc<switchyard_server::AppState> {
    let (addr, _fake) = upstream::start().await;
    switchyard_testkit::app::state(&format!(
        "[log]\npath = {:?}\n{log}\n{}",
        dir.join("decisions.sqlite").display().to_string(),
        upstream::catalog(addr).replace(
            "output_usd_per_mtok = 2.0\n",
            "output_usd_per_mtok = 2.0\nsupports_tools = true\nsupports_vision = true\n"
        )
    ))
}

/// Sends `body` and returns the decision log's record of it.
async fn logged(
    state: &std::sync::Arc<switchyard_server::AppState>,
    dir: &std::path::Path,
    body: Value,
) -> DecisionRecord {
    let (status, h, text) = call(state, "POST", "/v1/chat/completions", "", &[], body).await;
    assert_eq!(status, 200, "{text}");
    let id = header(&h, "x-switchyard-request-id");
    state.log.as_ref().unwrap().flush();
    let store = switchyard_store::Store::open(&dir.join("decisions.sqlite")).unwrap();
    let mut found = None;
    store
        .for_each(i64::MIN, |r| {
            if r.record.request_id == id {
                found = Some(r.record);
            }
        })
        .unwrap();
    found.unwrap_or_else(|| panic!("{id} is not in the log"))
}

fn chat(model: &str, stream: bool, tools: bool) -> Value {
    let mut body =
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    if tools {
        body["tools"] =
            json!([{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]);
    }
    body
}

fn a_model() -> String {
    let router = switchyard_core::Router::load(&switchyard_testkit::default_router()).unwrap();
    router.manifest.models[0].model.clone()
}

#[tokio::test]
async fn answers_whole_and_streamed_and_tool_calls_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "responses = \"full\"").await;
    let model = a_model();
    let whole = logged(&state, dir.path(), chat(&model, false, false)).await;
    assert_eq!(whole.response, Some(format!("hello from {model}")));
    assert_eq!((whole.finish_reason.as_deref(), whole.response_truncated), (Some("stop"), false));
    assert_eq!(whole.response_sha256, Some(switchyard_store::prompt_hash(&format!("hello from {model}"))));
    // A stream is assembled from its deltas.
    let streamed = logged(&state, dir.path(), chat(&model, true, false)).await;
    assert_eq!((streamed.response.as_deref(), streamed.finish_reason.as_deref()), (Some("hello"), Some("stop")));
    // Tool calls, whole and streamed (its arguments in pieces, joined).
    for stream in [false, true] {
        let tools = logged(&state, dir.path(), chat(&model, stream, true)).await;
        let calls = tools.tool_calls.unwrap_or_else(|| panic!("stream {stream}: no tool calls"));
        assert_eq!(calls[0]["function"]["name"], "weather", "stream {stream}");
        let arguments: Value = serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments, json!({"city": "Paris"}), "stream {stream}");
        assert_eq!(tools.finish_reason.as_deref(), Some("tool_calls"), "stream {stream}");
    }
}

#[tokio::test]
async fn answers_are_cut_at_the_limit_or_hashed_as_prompts_are() {
    let model = a_model();
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "max_response_chars = 5").await;
    let cut = logged(&state, dir.path(), chat(&model, false, false)).await;
    assert_eq!((cut.response.as_deref(), cut.response_truncated), (Some("hello"), true), "prompts kept: truncate");
    assert_eq!(cut.response_sha256, Some(switchyard_store::prompt_hash(&format!("hello from {model}"))));

    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "prompts = \"hash\"").await;
    let hashed = logged(&state, dir.path(), chat(&model, true, true)).await;
    assert_eq!((hashed.prompt, hashed.response, hashed.tool_calls), (None, None, None), "nothing in clear");
    assert!(hashed.response_sha256.is_some() && hashed.finish_reason.as_deref() == Some("tool_calls"));

    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "responses = \"off\"").await;
    let off = logged(&state, dir.path(), chat(&model, false, false)).await;
    assert_eq!((off.response, off.response_sha256, off.finish_reason), (None, None, None));
}

#[tokio::test]
async fn a_conversation_is_logged_with_its_messages_and_images_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "max_response_chars = 12").await;
    let messages = json!([
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
        ]}
    ]);
    let r = logged(&state, dir.path(), json!({"model": a_model(), "messages": messages})).await;
    assert_eq!(r.messages_count, 4);
    let kept = r.messages.expect("the conversation is logged");
    assert_eq!(kept[0], json!({"role": "system", "content": "You answer i", "truncated": true}));
    assert_eq!(kept[2], json!({"role": "assistant", "content": "Hello!"}));
    assert_eq!(kept[3]["content"][1], json!({"type": "image_url", "omitted": true}));
    assert!(!kept.to_string().contains("base64"), "no image bytes in the log");
    // A lone user message is the prompt already; with prompts hashed, nothing of the conversation is kept.
    let lone = logged(&state, dir.path(), chat(&a_model(), false, false)).await;
    assert!(lone.messages.is_none());
    let hashed_dir = tempfile::tempdir().unwrap();
    let hashed = server(hashed_dir.path(), "prompts = \"hash\"").await;
    let r = logged(&hashed, hashed_dir.path(), json!({"model": a_model(), "messages": messages})).await;
    assert!(r.messages.is_none() && r.prompt.is_none());
}

#[tokio::test]
async fn a_routed_request_logs_the_domain_and_complexity_it_was_decided_on() {
    let dir = tempfile::tempdir().unwrap();
    let state = server(dir.path(), "").await;
    let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "Solve for x: 3x + 7 = 22."}]});
    let routed = logged(&state, dir.path(), body).await;
    let router = state.routers().main.clone();
    assert!(router.manifest.domains.contains(routed.domain.as_ref().unwrap()), "{:?}", routed.domain);
    assert!((0.0..=1.0).contains(&routed.complexity.unwrap()));
    // A request that names its model is not decided: nothing to log.
    let named = logged(&state, dir.path(), chat(&a_model(), false, false)).await;
    assert_eq!((named.domain, named.complexity), (None, None));
}
