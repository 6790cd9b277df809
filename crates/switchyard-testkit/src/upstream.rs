//! A stand-in upstream on a real loopback port (OpenAI's API here, Anthropic's in [`crate::anthropic`]), told
//! per model how to answer; and a loopback
//! address that refuses connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub use crate::fake::{Fake, Mode, HUGE_HEAD, JUNK_LINE, LARGE_ANSWER};

// Long: the stand-in upstream's behaviours, one match arm each, read best side by side.
async fn upstream(State(fake): State<Arc<Fake>>, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_string();
    *fake.calls.lock().unwrap().entry(model.clone()).or_default() += 1;
    fake.bodies.lock().unwrap().push(body.clone());
    let mode = fake.modes.lock().unwrap().get(&model).copied().unwrap_or(Mode::Ok);
    let stream = body["stream"].as_bool().unwrap_or(false);
    match mode {
        Mode::Fail500 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": {"message": "boom"}}))).into_response()
        }
        Mode::PaymentRequired => {
            return (StatusCode::PAYMENT_REQUIRED, Json(json!({"error": {"message": "add credit"}}))).into_response()
        }
        Mode::QuotaExhausted => {
            let body = json!({"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
        Mode::Fail429 => {
            return (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": {"message": "slow down"}}))).into_response()
        }
        Mode::BadRequest => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": {"message": "bad max_tokens", "code": "upstream_says_no"}})),
            )
                .into_response()
        }
        Mode::Unauthorized | Mode::Forbidden | Mode::NotFound => {
            let status = match mode {
                Mode::Unauthorized => StatusCode::UNAUTHORIZED,
                Mode::Forbidden => StatusCode::FORBIDDEN,
                _ => StatusCode::NOT_FOUND,
            };
            let body = json!({"error": {"message": "Incorrect API key provided: sk-***", "code": "invalid_api_key"}});
            return (status, Json(body)).into_response();
        }
        Mode::Silent => tokio::time::sleep(Duration::from_secs(600)).await,
        Mode::Slow => tokio::time::sleep(Duration::from_secs(3)).await,
        Mode::Delayed => tokio::time::sleep(Duration::from_millis(150)).await,
        Mode::SilentStream => {
            let comments = futures_util::StreamExt::then(futures_util::stream::iter(0..600), |_| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(axum::body::Bytes::from(": keep-alive\n\n"))
            });
            let body = Body::from_stream(comments);
            return Response::builder().header("content-type", "text/event-stream").body(body).unwrap();
        }
        Mode::LongStream(n, every_ms) => return long_stream(&model, n, Duration::from_millis(every_ms), false),
        Mode::StallAfter(n) => return long_stream(&model, n, Duration::from_millis(10), true),
        Mode::NotJson => {
            let page = "<html><body>502 Bad Gateway (nginx)</body></html>";
            return Response::builder().header("content-type", "text/html").body(Body::from(page)).unwrap();
        }
        Mode::Redirect => {
            let to = "/v1/moved/chat/completions";
            return Response::builder()
                .status(StatusCode::TEMPORARY_REDIRECT)
                .header("location", to)
                .body(Body::empty())
                .unwrap();
        }
        Mode::HugeHead | Mode::JunkStream if stream => return junk_stream(&model, mode),
        Mode::Ok
        | Mode::DropMidStream
        | Mode::Refuse
        | Mode::NoUsage
        | Mode::HugeHead
        | Mode::JunkStream
        | Mode::Large => {}
    }
    let answer = if mode == Mode::Refuse {
        "I'm sorry, but I can't help with that.".to_string()
    } else if mode == Mode::Large {
        "x".repeat(LARGE_ANSWER)
    } else {
        format!("hello from {model}")
    };
    if stream && mode == Mode::Refuse {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": "stop"}]});
        let body = format!("data: {c}\n\ndata: [DONE]\n\n");
        return Response::builder().header("content-type", "text/event-stream").body(Body::from(body)).unwrap();
    }
    let tool = body["tools"][0]["function"]["name"].as_str().filter(|_| mode == Mode::Ok);
    let last_role = body["messages"].as_array().and_then(|m| m.last()).map(|m| m["role"].clone());
    if let (true, Some(tool), false) = (stream, tool, last_role == Some(json!("tool"))) {
        return tool_stream(&model, tool, body["stream_options"]["include_usage"].as_bool() == Some(true));
    }
    if stream {
        let chunk = |text: &str| {
            let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
            Ok::<_, std::io::Error>(axum::body::Bytes::from(format!("data: {c}\n\n")))
        };
        let mut items = vec![chunk("hel"), chunk("lo")];
        if mode != Mode::DropMidStream {
            // As OpenAI ends a choice: an empty delta with its finish reason.
            let end = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
            items.push(Ok(axum::body::Bytes::from(format!("data: {end}\n\n"))));
        }
        if body["stream_options"]["include_usage"].as_bool() == Some(true) && mode != Mode::NoUsage {
            let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
            items.push(Ok(axum::body::Bytes::from(format!("data: {usage}\n\n"))));
        }
        if mode == Mode::DropMidStream {
            items.push(Err(std::io::Error::other("connection reset")));
        } else {
            items.push(Ok(axum::body::Bytes::from("data: [DONE]\n\n")));
        }
        // A pause before each chunk lets it reach the client before a later failure resets the connection.
        let paced = futures_util::StreamExt::then(futures_util::stream::iter(items), |item| async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            item
        });
        let body = Body::from_stream(paced);
        return Response::builder().header("content-type", "text/event-stream").body(body).unwrap();
    }
    // Tools: a call of the first tool with {"city": "Paris"}, then, after its result, what the tool said.
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
    let (message, finish) = match (&body["tools"][0]["function"]["name"], last["role"].as_str()) {
        (_, Some("tool")) => (
            json!({"role": "assistant", "content": format!("the tool said: {}", last["content"].as_str().unwrap_or_default())}),
            "stop",
        ),
        (Value::String(name), _) if mode == Mode::Ok => (
            json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{\"city\": \"Paris\"}"}}]}),
            "tool_calls",
        ),
        _ => (json!({"role": "assistant", "content": answer}), "stop"),
    };
    let mut reply = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
    if mode == Mode::NoUsage {
        reply.as_object_mut().unwrap().remove("usage");
    }
    Json(reply).into_response()
}

/// A streamed call of `tool` with `{"city": "Paris"}`, its arguments in two pieces, as OpenAI streams one.
fn tool_stream(model: &str, tool: &str, usage: bool) -> Response {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut parts = vec![chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": tool, "arguments": ""}}]}),
        Value::Null,
    )];
    for piece in ["{\"city\": ", "\"Paris\"}"] {
        parts.push(chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), Value::Null));
    }
    parts.push(chunk(json!({}), json!("tool_calls")));
    if usage {
        let u = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
        parts.push(format!("data: {u}\n\n"));
    }
    parts.push("data: [DONE]\n\n".into());
    let chunks =
        futures_util::stream::iter(parts.into_iter().map(|p| Ok::<_, std::io::Error>(axum::body::Bytes::from(p))));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(chunks)).unwrap()
}

/// The target of [`Mode::Redirect`]: a whole answer, counted in `Fake::moved`.
async fn moved(State(fake): State<Arc<Fake>>) -> Response {
    fake.moved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Json(json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "moved",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello from the redirect target"},
        "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}))
    .into_response()
}

/// The streams of [`Mode::HugeHead`] (comment lines of 256 KiB up to [`HUGE_HEAD`] bytes, then "hel", "lo",
/// usage and `[DONE]`) and [`Mode::JunkStream`] ("hel", one [`JUNK_LINE`]-byte comment line, "lo", `[DONE]`).
fn junk_stream(model: &str, mode: Mode) -> Response {
    let event = |text: &str| {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
        format!("data: {c}\n\n")
    };
    let line = |len: usize| format!(": {}\n", "x".repeat(len - 3));
    let mut parts: Vec<String> = Vec::new();
    if mode == Mode::HugeHead {
        parts.extend((0..HUGE_HEAD / (256 * 1024)).map(|_| line(256 * 1024)));
        parts.extend([event("hel"), event("lo")]);
        let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model, "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}});
        parts.push(format!("data: {usage}\n\n"));
    } else {
        parts.extend([event("hel"), line(JUNK_LINE), event("lo")]);
    }
    parts.push("data: [DONE]\n\n".into());
    let chunks =
        futures_util::stream::iter(parts.into_iter().map(|p| Ok::<_, std::io::Error>(axum::body::Bytes::from(p))));
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(chunks)).unwrap()
}

/// A stream of `n` numbered chunks, `every` apart, then `[DONE]`, or (when `stall`) silence that never ends.
fn long_stream(model: &str, n: usize, every: Duration, stall: bool) -> Response {
    let model = model.to_string();
    let chunks = futures_util::StreamExt::then(futures_util::stream::iter(0..=n), move |i| {
        let model = model.clone();
        async move {
            if i == n {
                if stall {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                }
                return Ok::<_, std::io::Error>(axum::body::Bytes::from("data: [DONE]\n\n"));
            }
            if i > 0 {
                tokio::time::sleep(every).await;
            }
            let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                "choices": [{"index": 0, "delta": {"content": format!("<{i}>")}, "finish_reason": null}]});
            Ok(axum::body::Bytes::from(format!("data: {c}\n\n")))
        }
    });
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(chunks)).unwrap()
}

/// Starts the fake upstream on a free loopback port; its base URL is `http://ADDR/v1` (OpenAI's API), and
/// `http://ADDR` for Anthropic's ([`crate::anthropic`]).
pub async fn start() -> (SocketAddr, Arc<Fake>) {
    let fake: Arc<Fake> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(upstream))
        .route("/v1/messages", axum::routing::post(crate::anthropic::messages))
        .route("/v1/moved/chat/completions", axum::routing::any(moved))
        .with_state(fake.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

/// `[[models]]` tables for every model of the default router, each served at `addr` and priced at $1 (input)
/// and $2 (output) per million tokens: the fake upstream's 5 + 3 tokens cost $0.000011 a call.
pub fn catalog(addr: SocketAddr) -> String {
    let router = switchyard_core::Router::load(&crate::default_router()).unwrap();
    router
        .manifest
        .models
        .iter()
        .map(|m| {
            format!(
                "[[models]]\nname = \"{}\"\nbase_url = \"http://{addr}/v1\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n",
                m.model
            )
        })
        .collect()
}

/// A loopback address nobody listens on, held for as long as this lives: its port is bound (so no other
/// server can take it) but not listening, so a connection to it is refused at once.
pub struct Closed {
    _socket: tokio::net::TcpSocket,
    /// The address.
    pub addr: SocketAddr,
}

/// Reserves a [`Closed`] address.
pub fn closed() -> Closed {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    Closed { _socket: socket, addr }
}
