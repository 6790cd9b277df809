//! A request as the routing pipeline sees it: plain values, no HTTP types, so that the server and the CLI
//! (`switchyard route --config`) run the same pipeline. The server builds one from a request's headers and
//! JSON body ([`Query::from_request`]); the CLI from its flags.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::routing::knobs::RequestKnobs;
use crate::routing::RouteError;

/// What the pipeline decides from.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The prompt the router reads (the last user turn).
    pub prompt: String,
    /// Request headers by lower-case name (rules and sticky ids read them).
    pub headers: BTreeMap<String, String>,
    /// The request's `metadata`, values as text.
    pub metadata: BTreeMap<String, String>,
    /// The body's `user`.
    pub user: Option<String>,
    /// Knobs the request sets.
    pub knobs: RequestKnobs,
    /// Tokens the upstream bills as input (every message, not only the prompt).
    pub input_tokens: f64,
    /// Capabilities the request needs of a model.
    pub needs: Needs,
    /// The conversation the request belongs to, when it is a chat.
    pub conversation: Option<Conversation>,
    /// The only models the caller's key may use, if it is limited.
    pub key_models: Option<Vec<String>>,
    /// The request id (the sticky key of requests that carry no user or session id).
    pub request_id: String,
}

/// Capabilities a request needs of the model that serves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// It sends `tools`, `tool_choice` or `functions`.
    pub tools: bool,
    /// A message has an image content part.
    pub vision: bool,
    /// It asks for `response_format` of type `json_schema`.
    pub json_schema: bool,
}

impl Needs {
    /// What an OpenAI chat request body needs.
    pub fn of(body: &Value) -> Self {
        let present = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
        let tools = (present("tools") && body["tools"].as_array().is_none_or(|t| !t.is_empty()))
            || present("tool_choice")
            || present("functions");
        let vision = body.get("messages").and_then(Value::as_array).is_some_and(|messages| {
            messages.iter().filter_map(|m| m.get("content").and_then(Value::as_array)).flatten().any(|part| {
                matches!(part.get("type").and_then(Value::as_str), Some("image_url" | "image" | "input_image"))
            })
        });
        let json_schema = body["response_format"]["type"].as_str() == Some("json_schema");
        Self { tools, vision, json_schema }
    }

    /// Whether it needs anything at all.
    pub fn any(self) -> bool {
        self.tools || self.vision || self.json_schema
    }

    /// The catalog flags these needs call for (`supports_tools`, ...).
    pub fn flags(self) -> Vec<&'static str> {
        [(self.tools, "supports_tools"), (self.vision, "supports_vision"), (self.json_schema, "supports_json_schema")]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect()
    }

    /// The flags a catalog entry lacks for these needs.
    pub fn missing(self, card: &switchyard_core::ModelCard) -> Vec<&'static str> {
        let has = |flag: &str| match flag {
            "supports_tools" => card.supports_tools,
            "supports_vision" => card.supports_vision,
            _ => card.supports_json_schema,
        };
        self.flags().into_iter().filter(|f| !has(f)).collect()
    }

    /// In words, for reasons and errors: `tools, images`.
    pub fn describe(self) -> String {
        let words: Vec<&str> = [(self.tools, "tools"), (self.vision, "images"), (self.json_schema, "a JSON schema")]
            .into_iter()
            .filter_map(|(on, w)| on.then_some(w))
            .collect();
        words.join(", ")
    }
}

/// A conversation: its id and how many user turns it has had, this one included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `x-session-id` (or `x-switchyard-session`), else `metadata.session_id` (either prefixed with the
    /// caller's key name, `key/id`), else a hash of the key, the user and the first user turn.
    pub id: String,
    /// User turns so far, this one included (1: the conversation starts here).
    pub turn: usize,
}

impl Query {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// A metadata value.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// Checks every client-chosen identifier the server keeps (session ids, `user`, `metadata` keys and
    /// values): at most `max_bytes` each (`server.max_id_bytes`), and no control characters (which would
    /// forge lines in logs). The error names the field and the limit.
    pub fn check_ids(&self, max_bytes: usize) -> Result<(), RouteError> {
        let headers = ["x-session-id", "x-switchyard-session", "x-switchyard-user"];
        let fields = headers
            .iter()
            .filter_map(|h| Some((format!("header {h}"), self.header(h)?)))
            .chain(self.user.as_deref().map(|u| ("`user`".to_string(), u)))
            .chain(self.metadata.iter().flat_map(|(k, v)| {
                [(format!("a `metadata` key ({} bytes)", k.len()), k.as_str()), (format!("`metadata.{k}`"), v.as_str())]
            }));
        for (field, value) in fields {
            check_id(&field, value, max_bytes)?;
        }
        Ok(())
    }

    /// The query of a request: its headers (by lower-case name), its JSON body (`metadata`, `user`,
    /// `messages`, tools and content parts), the prompt already read from it, and its knobs. `key` is the
    /// caller's key name.
    pub fn from_request(
        headers: BTreeMap<String, String>,
        body: &Value,
        prompt: String,
        knobs: RequestKnobs,
        request_id: &str,
        key: Option<&str>,
    ) -> Self {
        let metadata: BTreeMap<String, String> = body
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(_) | Value::Bool(_) => v.to_string(),
                            _ => return None,
                        };
                        Some((k.clone(), text))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let user = body.get("user").and_then(Value::as_str).map(str::to_string).filter(|u| !u.is_empty());
        let input_tokens = crate::gateway::usage::message_tokens(body)
            .unwrap_or_else(|| switchyard_core::estimate_input_tokens(&prompt));
        let mut query = Self {
            prompt,
            headers,
            metadata,
            user,
            knobs,
            input_tokens,
            needs: Needs::of(body),
            conversation: None,
            key_models: None,
            request_id: request_id.to_string(),
        };
        query.conversation = conversation(&query, body, key);
        query
    }
}

/// Refuses an identifier longer than `max_bytes` or holding a control character, naming `field`.
pub(crate) fn check_id(field: &str, value: &str, max_bytes: usize) -> Result<(), RouteError> {
    if value.len() > max_bytes {
        let field = if field.starts_with("`metadata.") && field.len() > 64 { "a `metadata` value" } else { field };
        return Err(RouteError::IdentifierTooLong(format!(
            "{field} is {} bytes; identifiers are limited to {max_bytes} bytes (server.max_id_bytes): send an id or \
             a hash of it, not content",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(RouteError::InvalidIdentifier(format!(
            "{field} holds a control character (a newline, a tab...); identifiers must be printable text"
        )));
    }
    Ok(())
}

/// The conversation of a chat request (`None` without `messages`).
fn conversation(query: &Query, body: &Value, key: Option<&str>) -> Option<Conversation> {
    let messages = body.get("messages").and_then(Value::as_array)?;
    let users: Vec<&Value> =
        messages.iter().filter(|m| m.get("role").and_then(Value::as_str) == Some("user")).collect();
    let explicit = query
        .header("x-session-id")
        .or_else(|| query.header("x-switchyard-session"))
        .or_else(|| query.meta("session_id"))
        .filter(|id| !id.is_empty())
        // Scoped by the key, so two clients cannot share (or steer) each other's conversation.
        .map(|id| key.map_or_else(|| id.to_string(), |k| format!("{k}/{id}")));
    let id = explicit.unwrap_or_else(|| {
        let first = users.first().and_then(|m| m.get("content")).map(switchyard_core::message_text).unwrap_or_default();
        let who = query.header("x-switchyard-user").or(query.user.as_deref()).unwrap_or("");
        let digest = Sha256::digest(format!("{}\u{0}{who}\u{0}{first}", key.unwrap_or("")).as_bytes());
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        format!("h-{hex}")
    });
    Some(Conversation { id, turn: users.len().max(1) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn query(headers: &[(&str, &str)], body: Value) -> Query {
        let map = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Query::from_request(map, &body, "p".into(), RequestKnobs::default(), "sy-1", Some("team"))
    }

    #[test]
    fn needs_come_from_tools_image_parts_and_schemas() {
        let text = json!({"messages": [{"role": "user", "content": "hi"}]});
        assert!(!Needs::of(&text).any());
        let tools = json!({"messages": [], "tools": [{"type": "function", "function": {"name": "f"}}]});
        assert_eq!(Needs::of(&tools), Needs { tools: true, ..Needs::default() });
        assert!(!Needs::of(&json!({"tools": []})).tools);
        let image = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]});
        assert_eq!(Needs::of(&image).describe(), "images");
        let schema = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}});
        assert!(
            Needs::of(&schema).json_schema && !Needs::of(&json!({"response_format": {"type": "json_object"}})).any()
        );
    }

    #[test]
    fn conversations_are_named_by_header_metadata_or_their_first_turn() {
        let turn = |n: usize, first: &str| {
            let mut messages = vec![json!({"role": "system", "content": "be brief"})];
            for i in 0..n {
                let text = if i == 0 { first.to_string() } else { format!("follow-up {i}") };
                messages.push(json!({"role": "user", "content": text}));
                messages.push(json!({"role": "assistant", "content": "ok"}));
            }
            json!({"messages": messages})
        };
        let a1 = query(&[], turn(1, "plan a trip")).conversation.unwrap();
        let a3 = query(&[], turn(3, "plan a trip")).conversation.unwrap();
        let b1 = query(&[], turn(1, "write a poem")).conversation.unwrap();
        assert_eq!((a1.turn, a3.turn), (1, 3));
        assert_eq!(a1.id, a3.id);
        assert_ne!(a1.id, b1.id);
        let by_header = query(&[("x-session-id", "s-42")], turn(2, "x")).conversation.unwrap();
        assert_eq!(by_header.id, "team/s-42", "named ids are scoped by the caller's key");
        let mut body = turn(1, "x");
        body["metadata"] = json!({"session_id": "m-7", "tier": 3});
        let q = query(&[], body);
        assert_eq!((q.conversation.as_ref().unwrap().id.as_str(), q.meta("tier")), ("team/m-7", Some("3")));
        assert!(query(&[], json!({"prompt": "x"})).conversation.is_none());
    }
}
