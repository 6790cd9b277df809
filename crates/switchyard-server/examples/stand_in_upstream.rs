//! A stand-in OpenAI-compatible upstream for load tests: answers every `POST /v1/chat/completions` at once
//! with a short completion (and `usage`), streamed when asked. It measures the gateway, not a model.
//!
//! `cargo run --release -p switchyard-server --example stand_in_upstream -- 127.0.0.1:9100`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

async fn complete(Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("stand-in").to_string();
    if body["stream"].as_bool() == Some(true) {
        let chunk = json!({"id": "chatcmpl-load", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]});
        let text = format!("data: {chunk}\n\ndata: [DONE]\n\n");
        return Response::builder().header("content-type", "text/event-stream").body(Body::from(text)).unwrap();
    }
    Json(json!({"id": "chatcmpl-load", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 15, "completion_tokens": 1, "total_tokens": 16}}))
    .into_response()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9100".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(complete));
    eprintln!("stand-in upstream on http://{addr}/v1");
    axum::serve(listener, app).await.unwrap();
}
