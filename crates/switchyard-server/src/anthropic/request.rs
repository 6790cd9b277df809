//! Requests: a Messages request as an OpenAI chat request ([`to_openai`], for `POST /v1/messages`), and an
//! OpenAI chat request as a Messages request ([`from_openai`], for an Anthropic upstream).

use serde_json::{json, Map, Value};

use super::{text_of, TranslateError};

/// `max_tokens` sent to an Anthropic upstream when the OpenAI request sets none (Anthropic requires one).
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A Messages request as an OpenAI chat request: `system` becomes the first message; content blocks become
/// content parts (text, images as data or https URLs); `tool_use` blocks become the assistant's
/// `tool_calls`, `tool_result` blocks `tool` messages; `stop_sequences` becomes `stop`, `tools` and
/// `tool_choice` their OpenAI forms, `metadata.user_id` becomes `user` (the other `metadata` keys stay, as
/// switchyard's routing knobs). `top_k` has no OpenAI form and is dropped.
pub(crate) fn to_openai(body: &Value) -> Result<Value, TranslateError> {
    let Some(object) = body.as_object() else {
        return Err(TranslateError::new("the request body must be a JSON object"));
    };
    let mut out = Map::new();
    if let Some(model) = object.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    match object.get("system") {
        None | Some(Value::Null) => {}
        Some(system @ (Value::String(_) | Value::Array(_))) => {
            messages.push(json!({"role": "system", "content": text_of(system)}));
        }
        Some(_) => return Err(TranslateError::new("`system` must be a string or an array of text blocks")),
    }
    let turns = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::new("`messages` must be an array of {\"role\", \"content\"} turns"))?;
    for (i, turn) in turns.iter().enumerate() {
        messages.extend(turn_to_openai(turn).map_err(|e| TranslateError::new(format!("messages[{i}]: {}", e.0)))?);
    }
    out.insert("messages".into(), Value::Array(messages));
    for key in ["max_tokens", "temperature", "top_p", "stream"] {
        if let Some(v) = object.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(stop) = object.get("stop_sequences").filter(|v| !v.is_null()) {
        out.insert("stop".into(), stop.clone());
    }
    if let Some(tools) = object.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools.iter().map(tool_to_openai).collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = object.get("tool_choice").filter(|v| !v.is_null()) {
        let (choice, parallel) = tool_choice_to_openai(choice)?;
        out.insert("tool_choice".into(), choice);
        if !parallel {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    if let Some(metadata) = object.get("metadata").and_then(Value::as_object) {
        let mut knobs = metadata.clone();
        if let Some(user) = knobs.remove("user_id").filter(|u| u.is_string()) {
            out.insert("user".into(), user);
        }
        if !knobs.is_empty() {
            out.insert("metadata".into(), Value::Object(knobs));
        }
    }
    Ok(Value::Object(out))
}

/// One Messages turn as OpenAI messages: a user turn's `tool_result` blocks first, as `tool` messages (OpenAI
/// wants them right after the assistant's calls), then its other blocks as one user message.
fn turn_to_openai(turn: &Value) -> Result<Vec<Value>, TranslateError> {
    let role = turn.get("role").and_then(Value::as_str).unwrap_or_default();
    let content = turn.get("content").unwrap_or(&Value::Null);
    let blocks = match content {
        Value::String(text) => return Ok(vec![json!({"role": role_of(role)?, "content": text})]),
        Value::Array(blocks) => blocks,
        _ => return Err(TranslateError::new("`content` must be a string or an array of content blocks")),
    };
    if role_of(role)? == "assistant" {
        return Ok(vec![assistant_to_openai(blocks)?]);
    }
    let mut out = Vec::new();
    let mut parts = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => parts.push(json!({"type": "text", "text": block.get("text").cloned().unwrap_or_default()})),
            Some("image") => parts.push(image_to_openai(block)?),
            Some("tool_result") => {
                let id = block.get("tool_use_id").cloned().unwrap_or_default();
                let mut text = text_of(block.get("content").unwrap_or(&Value::Null));
                if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                    text = format!("Error: {text}");
                }
                out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
            }
            // Documents, thinking and other blocks the OpenAI shape cannot carry are dropped.
            _ => {}
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(out)
}

/// The OpenAI role of a Messages role.
fn role_of(role: &str) -> Result<&'static str, TranslateError> {
    match role {
        "user" => Ok("user"),
        "assistant" => Ok("assistant"),
        other => Err(TranslateError::new(format!("`role` must be \"user\" or \"assistant\", not {other:?}"))),
    }
}

/// An assistant turn's blocks as one OpenAI assistant message: its text, and its `tool_use` blocks as calls.
fn assistant_to_openai(blocks: &[Value]) -> Result<Value, TranslateError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(json!({
                    "id": block.get("id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or_default(), "arguments": input.to_string()},
                }));
            }
            _ => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(message)
}

/// An image block as an OpenAI `image_url` part (base64 data as a data URL).
fn image_to_openai(block: &Value) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!(
            "data:{};base64,{}",
            source.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
            source.get("data").and_then(Value::as_str).unwrap_or_default()
        ),
        Some("url") => source.get("url").and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => return Err(TranslateError::new("an image block's `source` must be of type \"base64\" or \"url\"")),
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// A Messages tool as an OpenAI function tool.
fn tool_to_openai(tool: &Value) -> Value {
    let mut function = json!({
        "name": tool.get("name").cloned().unwrap_or_default(),
        "parameters": tool.get("input_schema").cloned().unwrap_or_else(|| json!({"type": "object"})),
    });
    if let Some(description) = tool.get("description") {
        function["description"] = description.clone();
    }
    json!({"type": "function", "function": function})
}

/// A Messages `tool_choice` as OpenAI's, and whether parallel calls stay allowed.
fn tool_choice_to_openai(choice: &Value) -> Result<(Value, bool), TranslateError> {
    let parallel = choice.get("disable_parallel_tool_use").and_then(Value::as_bool) != Some(true);
    let openai = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            json!({"type": "function", "function": {"name": choice.get("name").cloned().unwrap_or_default()}})
        }
        _ => return Err(TranslateError::new("`tool_choice.type` must be \"auto\", \"any\", \"tool\" or \"none\"")),
    };
    Ok((openai, parallel))
}

/// An OpenAI chat request as a Messages request for an Anthropic upstream serving `model`: system and
/// developer messages become `system`; content parts become blocks (a data URL image as base64, another URL
/// as a URL source); the assistant's `tool_calls` become `tool_use` blocks and `tool` messages `tool_result`
/// blocks in a user turn; `stop` becomes `stop_sequences`, `user` `metadata.user_id`. `max_tokens` (or
/// `max_completion_tokens`) defaults to [`DEFAULT_MAX_TOKENS`], which Anthropic requires; `temperature` is
/// capped at Anthropic's 1.
pub(crate) fn from_openai(body: &Value, model: &str) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_string()));
    let mut system = Vec::new();
    let mut turns: Vec<(String, Vec<Value>)> = Vec::new();
    for message in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("user");
        let content = message.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.push(openai_text(content));
                continue;
            }
            "assistant" => ("assistant", assistant_blocks(message)),
            "tool" => ("user", vec![tool_result_block(message)]),
            _ => ("user", user_blocks(content)),
        };
        // Anthropic refuses empty turns; consecutive turns of one role are one Messages turn (tool results,
        // then the user's words).
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, existing)) if last == role => existing.extend(blocks),
            _ => turns.push((role.to_string(), blocks)),
        }
    }
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    let messages = turns.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect();
    out.insert("messages".into(), Value::Array(messages));
    let max_tokens = body.get("max_completion_tokens").or_else(|| body.get("max_tokens")).and_then(Value::as_u64);
    out.insert("max_tokens".into(), json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    if let Some(t) = body.get("temperature").and_then(Value::as_f64) {
        out.insert("temperature".into(), json!(t.min(1.0)));
    }
    // Recent Anthropic models refuse both at once; temperature is the one clients usually mean.
    if let Some(p) = body.get("top_p").filter(|v| v.is_number() && !out.contains_key("temperature")) {
        out.insert("top_p".into(), p.clone());
    }
    match body.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(Value::Array(list)) if !list.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(list.clone()));
        }
        _ => {}
    }
    if let Some(stream) = body.get("stream").and_then(Value::as_bool) {
        out.insert("stream".into(), Value::Bool(stream));
    }
    if let Some(user) = body.get("user").filter(|u| u.is_string()) {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        out.insert("tools".into(), Value::Array(tools.iter().map(tool_from_openai).collect()));
        let parallel = body.get("parallel_tool_calls").and_then(Value::as_bool) != Some(false);
        if let Some(choice) = tool_choice_from_openai(body.get("tool_choice"), parallel) {
            out.insert("tool_choice".into(), choice);
        }
    }
    Value::Object(out)
}

/// The text of an OpenAI content value: a string, or its text parts.
fn openai_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// An OpenAI user message's content as Messages blocks.
fn user_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => vec![json!({"type": "text", "text": s})],
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => {
                    let text = part.get("text").and_then(Value::as_str).filter(|t| !t.is_empty())?;
                    Some(json!({"type": "text", "text": text}))
                }
                Some("image_url") => {
                    let url = part.pointer("/image_url/url").and_then(Value::as_str).unwrap_or_default();
                    Some(image_block(url))
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A Messages image block for an OpenAI image URL (a data URL as base64 data).
fn image_block(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((media_type, data)) = rest.split_once(";base64,") {
            return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
        }
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

/// An OpenAI assistant message as Messages blocks: its text, then a `tool_use` block per call.
fn assistant_blocks(message: &Value) -> Vec<Value> {
    let mut blocks = Vec::new();
    let text = openai_text(message.get("content").unwrap_or(&Value::Null));
    if !text.is_empty() {
        blocks.push(json!({"type": "text", "text": text}));
    }
    blocks.extend(super::tool_use_blocks(message));
    blocks
}

/// An OpenAI `tool` message as a `tool_result` block.
fn tool_result_block(message: &Value) -> Value {
    json!({
        "type": "tool_result",
        "tool_use_id": super::tool_id(message.get("tool_call_id").and_then(Value::as_str), 0),
        "content": openai_text(message.get("content").unwrap_or(&Value::Null)),
    })
}

/// An OpenAI function tool as a Messages tool.
fn tool_from_openai(tool: &Value) -> Value {
    let function = tool.get("function").unwrap_or(tool);
    let mut out = json!({
        "name": function.get("name").cloned().unwrap_or_default(),
        "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    });
    if let Some(description) = function.get("description") {
        out["description"] = description.clone();
    }
    out
}

/// An OpenAI `tool_choice` as a Messages one (none when neither it nor `parallel_tool_calls` says anything).
fn tool_choice_from_openai(choice: Option<&Value>, parallel: bool) -> Option<Value> {
    let mut out = match choice {
        Some(Value::String(s)) if s == "required" => json!({"type": "any"}),
        Some(Value::String(s)) if s == "none" => json!({"type": "none"}),
        Some(Value::Object(o)) => {
            json!({"type": "tool", "name": o.get("function").and_then(|f| f.get("name")).cloned().unwrap_or_default()})
        }
        _ if parallel => return None,
        _ => json!({"type": "auto"}),
    };
    if !parallel {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
