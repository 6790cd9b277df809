//! The server's app driven in-process: an [`AppState`] from config text with the bundled default router and
//! the test model, and JSON requests sent through `app()` without a socket.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

/// The server for `config` (switchyard.toml text), with the bundled default router and the test model.
pub fn state(config: &str) -> Arc<AppState> {
    let router = Router::load(&crate::default_router()).unwrap();
    let config = Config::parse(config, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(crate::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap_or_else(|e| panic!("{e}")))
}

/// POSTs `body` as JSON to `uri` with `headers` through the app: the status, the headers and the body's bytes.
pub async fn post(
    state: &Arc<AppState>,
    uri: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = app(state.clone()).oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes.to_vec())
}

/// [`post`], with the body read as JSON (`Value::Null` when it is not JSON).
pub async fn post_json(
    state: &Arc<AppState>,
    uri: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = post(state, uri, headers, &body).await;
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}
