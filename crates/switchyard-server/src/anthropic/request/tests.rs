use serde_json::json;

use super::*;

/// A Messages request with everything the translation carries: system, turns of strings and blocks, an
/// image, a tool call and its result, tools, sampling and metadata.
fn messages_request() -> Value {
    json!({
        "model": "switchyard",
        "system": [{"type": "text", "text": "Be brief."}],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "stream": true,
        "metadata": {"user_id": "u-1", "min_quality": "0.7"},
        "tools": [{"name": "weather", "description": "The weather in a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "A cat. Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18 C"}]},
                {"type": "text", "text": "Thanks"}
            ]}
        ]
    })
}

#[test]
fn a_messages_request_becomes_an_openai_chat_request() {
    let openai = to_openai(&messages_request()).unwrap();
    assert_eq!(openai["model"], "switchyard");
    assert_eq!(openai["max_tokens"], 300);
    assert_eq!(openai["stop"], json!(["END"]));
    assert_eq!(openai["stream"], true);
    assert_eq!(openai["user"], "u-1");
    assert_eq!(openai["metadata"], json!({"min_quality": "0.7"}), "switchyard's knobs stay in metadata");
    assert!(openai.get("top_k").is_none());
    assert_eq!(openai["tool_choice"], "required");
    assert_eq!(openai["parallel_tool_calls"], false);
    assert_eq!(openai["tools"][0]["function"]["parameters"]["properties"]["city"]["type"], "string");
    let m = openai["messages"].as_array().unwrap();
    let roles: Vec<&str> = m.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"], "the tool result right after the call");
    assert_eq!(m[0]["content"], "Be brief.");
    assert_eq!(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
    assert_eq!(m[2]["content"], "A cat. Let me check.");
    assert_eq!(m[2]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(m[3], json!({"role": "tool", "tool_call_id": "toolu_1", "content": "18 C"}));
    assert_eq!(m[4]["content"], json!([{"type": "text", "text": "Thanks"}]));
}

#[test]
fn an_openai_request_becomes_the_same_messages_request() {
    let original = messages_request();
    let back = from_openai(&to_openai(&original).unwrap(), "claude-x");
    assert_eq!(back["model"], "claude-x");
    assert_eq!(back["system"], "Be brief.");
    assert_eq!(back["max_tokens"], 300);
    assert_eq!(back["stop_sequences"], json!(["END"]));
    assert_eq!(back["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["tool_choice"], original["tool_choice"]);
    let turns = back["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "the tool result and the user's words are one user turn");
    assert_eq!(turns[0]["content"], original["messages"][0]["content"], "text and the base64 image");
    assert_eq!(turns[1]["content"], original["messages"][1]["content"], "text and the tool call");
    assert_eq!(
        turns[2]["content"],
        json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}, {"type": "text", "text": "Thanks"}])
    );
}

#[test]
fn anthropic_limits_are_respected_going_out() {
    let body = json!({"model": "x", "temperature": 1.7, "stop": "###", "messages": [
        {"role": "developer", "content": "Rules."},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
    ]});
    let out = from_openai(&body, "claude");
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS, "Anthropic requires max_tokens");
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(out["stop_sequences"], json!(["###"]));
    assert_eq!(out["system"], "Rules.");
    assert_eq!(out["messages"][0]["content"][0]["source"], json!({"type": "url", "url": "https://example.com/a.png"}));
    assert!(out.get("tool_choice").is_none());
    let with_tools = json!({"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}});
    let out = from_openai(&with_tools, "claude");
    assert_eq!(out["tool_choice"], json!({"type": "tool", "name": "f"}));
    assert_eq!(out["tools"][0]["input_schema"]["type"], "object");
}

#[test]
fn a_malformed_messages_request_says_what_is_wrong() {
    let err = |body: Value| to_openai(&body).unwrap_err().0;
    assert!(err(json!([])).contains("JSON object"));
    assert!(err(json!({"model": "m"})).contains("`messages` must be an array"));
    assert!(err(json!({"messages": [{"role": "system", "content": "x"}]})).contains("messages[0]: `role`"));
    assert!(err(json!({"messages": [{"role": "user", "content": 3}]})).contains("`content` must be"));
    assert!(err(json!({"system": 3, "messages": []})).contains("`system`"));
    let bad_image = json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]});
    assert!(err(bad_image).contains("\"base64\" or \"url\""));
    assert!(err(json!({"messages": [], "tool_choice": {"type": "maybe"}})).contains("tool_choice.type"));
}

#[test]
fn what_anthropic_refuses_is_not_sent() {
    let body = json!({"temperature": 0.3, "top_p": 0.9, "messages": [
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Weather?"}]},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "functions.weather:0", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "functions.weather:0", "content": "18 C"},
        {"role": "assistant", "content": ""}
    ]});
    let out = from_openai(&body, "claude");
    assert!(out.get("top_p").is_none(), "temperature and top_p together are refused");
    let turns = out["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3, "no empty turn, no empty text block: {out}");
    assert_eq!(turns[0]["content"], json!([{"type": "text", "text": "Weather?"}]));
    assert_eq!(turns[1]["content"][0]["id"], "functions_weather_0", "an id Anthropic accepts");
    assert_eq!(turns[2]["content"][0]["tool_use_id"], "functions_weather_0", "and its result still pairs with it");
}
