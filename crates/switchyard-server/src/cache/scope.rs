//! What a cached answer may be reused for: whether a request may use the cache at all (its sampling, its
//! `cache-control`), and its scope: everything a hit must share with the cached request except the last user
//! message's wording (the client key, the model the request resolved to, the system prompt and earlier turns,
//! images, tools, response format and every sampling parameter).

use axum::http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The request header by which a client lets an answer sampled above temperature 0 be reused.
pub const REUSE_HEADER: &str = "x-switchyard-cache";

/// What a request may do with the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Neither read nor write it, and why (for the log).
    Bypass(&'static str),
    /// Read it (unless `cache-control: no-cache`) and write the answer.
    Allowed {
        /// Look for a cached answer.
        lookup: bool,
    },
}

/// Whether `body` (in OpenAI's shape) may use the cache: `cache-control: no-store` bypasses it, and so does
/// asking for `logprobs`; `no-cache` skips the lookup but stores the fresh answer; an answer is reusable at
/// `temperature` 0, or when the client says so (`x-switchyard-cache: reuse`).
pub fn allowed(headers: &HeaderMap, body: &Value) -> Use {
    let directives: Vec<String> = headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    if directives.iter().any(|d| d == "no-store") {
        return Use::Bypass("no-store");
    }
    // Log probabilities are not kept with a cached answer.
    if body.get("logprobs").is_some_and(|v| v != &Value::Bool(false) && !v.is_null()) {
        return Use::Bypass("logprobs");
    }
    let reuse =
        headers.get(REUSE_HEADER).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("reuse"));
    let greedy = body.get("temperature").and_then(Value::as_f64) == Some(0.0);
    if !(reuse || greedy) {
        return Use::Bypass("sampled");
    }
    Use::Allowed { lookup: !directives.iter().any(|d| d == "no-cache") }
}

/// The request's scope: a digest of the client key's name, the model it resolved to and the body with the
/// last user message's text left out (and what does not change the answer: `model`, `stream`,
/// `stream_options`, `user`, `metadata`).
pub fn scope(key: Option<&str>, model: &str, body: &Value) -> [u8; 32] {
    let mut body = body.clone();
    if let Some(object) = body.as_object_mut() {
        for field in ["model", "stream", "stream_options", "user", "metadata"] {
            object.remove(field);
        }
    }
    if let Some(last) = body
        .get_mut("messages")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.iter_mut().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")))
    {
        blank_text(last);
    }
    let mut text = String::new();
    switchyard_encoder::write_canonical(&serde_json::json!({"key": key, "model": model, "body": body}), &mut text);
    Sha256::digest(text.as_bytes()).into()
}

/// The message's text left out, its other parts (images) kept.
fn blank_text(message: &mut Value) {
    match message.get_mut("content") {
        Some(Value::String(s)) => s.clear(),
        Some(Value::Array(parts)) => {
            for part in parts {
                if let Some(text) = part.get_mut("text") {
                    *text = Value::String(String::new());
                }
            }
        }
        _ => {}
    }
}

/// The prompt as exact matching compares it: trimmed at both ends (inside, whitespace is kept: it is code's
/// indentation, a table's layout).
pub fn exact_text(prompt: &str) -> &str {
    prompt.trim()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn body(last: &str) -> Value {
        json!({"model": "switchyard", "temperature": 0, "stream": true, "user": "u1",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "earlier"},
                {"role": "assistant", "content": "ok"}, {"role": "user", "content": last}]})
    }

    #[test]
    fn the_scope_leaves_out_the_last_user_text_only() {
        let base = scope(Some("team-a"), "gpt-4o", &body("What is the capital of France?"));
        assert_eq!(base, scope(Some("team-a"), "gpt-4o", &body("capital of France?")));
        let mut unstreamed = body("x");
        unstreamed["stream"] = json!(false);
        unstreamed["user"] = json!("u2");
        assert_eq!(base, scope(Some("team-a"), "gpt-4o", &unstreamed));
        assert_ne!(base, scope(Some("team-b"), "gpt-4o", &body("x")), "never across keys");
        assert_ne!(base, scope(None, "gpt-4o", &body("x")));
        assert_ne!(base, scope(Some("team-a"), "gpt-4o-mini", &body("x")), "another model");
        for (path, value) in [
            ("/messages/0/content", json!("Be verbose.")),
            ("/messages/1/content", json!("another earlier turn")),
            ("/temperature", json!(0.5)),
        ] {
            let mut changed = body("x");
            if let Some(v) = changed.pointer_mut(path) {
                *v = value;
            }
            assert_ne!(base, scope(Some("team-a"), "gpt-4o", &changed), "{path}");
        }
        for (field, value) in [
            ("tools", json!([{"type": "function", "function": {"name": "f"}}])),
            ("n", json!(2)),
            ("seed", json!(7)),
            ("response_format", json!({"type": "json_object"})),
            ("max_tokens", json!(5)),
        ] {
            let mut changed = body("x");
            changed[field] = value;
            assert_ne!(base, scope(Some("team-a"), "gpt-4o", &changed), "{field}");
        }
        // An image in the last turn is part of the scope; its text is not.
        let image = |url: &str, text: &str| {
            json!({"temperature": 0, "messages": [{"role": "user", "content": [
                {"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}]})
        };
        assert_eq!(scope(None, "m", &image("a.png", "what is this")), scope(None, "m", &image("a.png", "what's this")));
        assert_ne!(
            scope(None, "m", &image("a.png", "what is this")),
            scope(None, "m", &image("b.png", "what is this"))
        );
    }

    #[test]
    fn sampling_and_cache_control_decide_use() {
        let none = HeaderMap::new();
        assert_eq!(allowed(&none, &json!({"temperature": 0})), Use::Allowed { lookup: true });
        assert_eq!(allowed(&none, &json!({"temperature": 0.7})), Use::Bypass("sampled"));
        assert_eq!(allowed(&none, &json!({})), Use::Bypass("sampled"), "the APIs' default temperature is 1");
        let mut reuse = HeaderMap::new();
        reuse.insert(REUSE_HEADER, HeaderValue::from_static("Reuse"));
        assert_eq!(allowed(&reuse, &json!({"temperature": 1})), Use::Allowed { lookup: true });
        let mut no_cache = HeaderMap::new();
        no_cache.insert("cache-control", HeaderValue::from_static("max-age=0, No-Cache"));
        assert_eq!(allowed(&no_cache, &json!({"temperature": 0})), Use::Allowed { lookup: false });
        let mut no_store = HeaderMap::new();
        no_store.insert("cache-control", HeaderValue::from_static("no-store"));
        assert_eq!(allowed(&no_store, &json!({"temperature": 0})), Use::Bypass("no-store"));
        assert_eq!(exact_text("  if x:\n\treturn 1 "), "if x:\n\treturn 1");
        assert_eq!(allowed(&none, &json!({"temperature": 0, "logprobs": true})), Use::Bypass("logprobs"));
        assert_eq!(allowed(&none, &json!({"temperature": 0, "logprobs": false})), Use::Allowed { lookup: true });
    }
}
