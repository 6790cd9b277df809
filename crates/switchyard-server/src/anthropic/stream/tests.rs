use serde_json::{json, Value};

use super::*;

/// An Anthropic stream as the API sends it: text, then a tool call whose input comes in two pieces.
fn anthropic_stream() -> String {
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1",
            "name": "weather", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
            "usage": {"output_tokens": 12}}),
        json!({"type": "message_stop"}),
    ];
    events.iter().map(anthropic_event).collect()
}

/// The `data:` payloads of an SSE text, parsed.
fn data(text: &str) -> Vec<Value> {
    let mut events = Events::default();
    let mut all = events.push(text.as_bytes());
    all.extend(events.finish());
    all.into_iter().filter(|e| e.data != "[DONE]").map(|e| serde_json::from_str(&e.data).unwrap()).collect()
}

/// Feeds `input` split into pieces of `size` bytes.
fn run<F: FnMut(&[u8]) -> Bytes>(input: &str, size: usize, mut feed: F) -> String {
    let mut out = Vec::new();
    for piece in input.as_bytes().chunks(size) {
        out.extend_from_slice(&feed(piece));
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn an_anthropic_stream_becomes_openai_chunks_however_it_is_split() {
    let whole = {
        let mut t = ToOpenAi::new(7);
        let mut out = run(&anthropic_stream(), usize::MAX, |c| t.feed(c));
        out.push_str(std::str::from_utf8(&t.finish()).unwrap());
        out
    };
    for size in [1, 3, 17, 64] {
        let mut t = ToOpenAi::new(7);
        let mut out = run(&anthropic_stream(), size, |c| t.feed(c));
        out.push_str(std::str::from_utf8(&t.finish()).unwrap());
        assert_eq!(out, whole, "split into pieces of {size} bytes");
    }
    assert!(whole.ends_with("data: [DONE]\n\n"));
    let chunks = data(&whole);
    let text: String = chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content")?.as_str()).collect();
    assert_eq!(text, "Let me check.");
    let arguments: String =
        chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments")?.as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris"}));
    let named = chunks.iter().find_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/name")?.as_str());
    assert_eq!(named, Some("weather"));
    let finish = chunks.iter().find_map(|c| c.pointer("/choices/0/finish_reason")?.as_str());
    assert_eq!(finish, Some("tool_calls"));
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(25), Some(12)));
    assert!(chunks.iter().all(|c| c["id"] == "msg_1" && c["model"] == "claude-x"));
}

#[test]
fn openai_chunks_become_the_anthropic_event_sequence() {
    let openai = {
        let mut t = ToOpenAi::new(7);
        let mut out = run(&anthropic_stream(), usize::MAX, |c| t.feed(c));
        out.push_str(std::str::from_utf8(&t.finish()).unwrap());
        out
    };
    for size in [1, 5, 4096] {
        let mut t = FromOpenAi::default();
        let mut out = run(&openai, size, |c| t.feed(c));
        out.push_str(std::str::from_utf8(&t.finish()).unwrap());
        let events = data(&out);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ],
            "split into pieces of {size} bytes"
        );
        // The same events, field for field, as the original stream (ids and usage as Anthropic gives them).
        let original = data(&anthropic_stream());
        for i in [2, 3, 4, 5, 6, 7, 8, 9] {
            assert_eq!(events[i], original[i], "event {i}");
        }
        assert_eq!(events[0]["message"]["id"], "msg_1");
        assert_eq!(events[10]["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[10]["usage"]["output_tokens"], 12);
        assert_eq!(events[10]["usage"]["input_tokens"], 25);
        assert!(out.contains("event: message_stop\ndata: "), "each event is named by its type");
    }
}

#[test]
fn errors_and_cut_streams_end_as_error_events() {
    let mut t = ToOpenAi::new(1);
    let error = json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    let out = String::from_utf8(t.feed(anthropic_event(&error).as_bytes()).to_vec()).unwrap();
    assert_eq!(data(&out), vec![json!({"error": {"message": "Overloaded", "type": "overloaded_error"}})]);

    let mut f = FromOpenAi::default();
    let cut = "data: {\"id\": \"c1\", \"model\": \"m\", \"choices\": [{\"index\": 0, \"delta\": {\"content\": \"Hal\"}}]}\n\n";
    let mut out = String::from_utf8(f.feed(cut.as_bytes()).to_vec()).unwrap();
    out.push_str(std::str::from_utf8(&f.finish()).unwrap());
    let last = data(&out).pop().unwrap();
    assert_eq!(last["type"], "error", "a stream that stops before its finish reason is incomplete: {out}");
    assert_eq!(last["error"]["type"], "api_error");

    let mut f = FromOpenAi::default();
    let gateway_error = "data: {\"error\": {\"message\": \"upstream went silent\", \"type\": \"upstream_error\"}}\n\n";
    let out = String::from_utf8(f.feed(gateway_error.as_bytes()).to_vec()).unwrap();
    assert_eq!(data(&out)[0]["error"]["message"], "upstream went silent");
    assert!(f.finish().is_empty(), "nothing after the error");
}

#[test]
fn a_cut_anthropic_stream_and_a_call_without_input_are_not_passed_off_as_whole() {
    // Cut after the text: the OpenAI client gets an error event, not a stream that merely ends.
    let cut: String = anthropic_stream().split("event: content_block_stop").next().unwrap().to_string();
    let mut t = ToOpenAi::new(1);
    let mut out = String::from_utf8(t.feed(cut.as_bytes()).to_vec()).unwrap();
    out.push_str(std::str::from_utf8(&t.finish()).unwrap());
    assert!(!out.contains("[DONE]"));
    assert_eq!(data(&out).last().unwrap()["error"]["type"], "api_error", "{out}");

    // A tool call whose input never came: its arguments are "{}", which parses.
    let events = [
        json!({"type": "message_start", "message": {"id": "msg_2", "model": "m", "usage": {"input_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_9",
            "name": "now", "input": {}}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}}),
        json!({"type": "message_stop"}),
    ];
    let text: String = events.iter().map(anthropic_event).collect();
    let mut t = ToOpenAi::new(1);
    let out = String::from_utf8(t.feed(text.as_bytes()).to_vec()).unwrap();
    let arguments: String = data(&out)
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/arguments")?.as_str())
        .collect();
    assert_eq!(arguments, "{}");
    assert!(t.finish().is_empty(), "nothing after message_stop");
}

#[test]
fn openai_tool_calls_ending_in_stop_are_tool_use_and_an_empty_stream_is_an_error() {
    let chunks = [
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
            "id": "functions.now:0", "type": "function", "function": {"name": "now", "arguments": "{}"}}]}}]}),
        json!({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    ];
    let mut text: String = chunks.iter().map(openai_event).collect();
    text.push_str("data: [DONE]\n\n");
    let mut f = FromOpenAi::default();
    let events = data(std::str::from_utf8(&f.feed(text.as_bytes())).unwrap());
    assert_eq!(events[2]["content_block"]["id"], "functions_now_0", "an id Anthropic's clients accept");
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use", "the client must act on the call");

    let mut f = FromOpenAi::default();
    let out = String::from_utf8(f.feed(b"data: [DONE]\n\n").to_vec()).unwrap();
    assert_eq!(data(&out)[0]["type"], "error", "no answer is not an empty success: {out}");
}

#[test]
fn an_error_as_the_first_event_is_found_in_the_head() {
    let overloaded =
        anthropic_event(&json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}));
    assert_eq!(first_event_error(overloaded.as_bytes()).as_deref(), Some("Overloaded"));
    assert_eq!(first_event_error(anthropic_stream().as_bytes()), None);
    assert_eq!(first_event_error(b"event: error\ndata: {\"type\": \"err"), None, "a partial event is not judged");
}
