//! `switchyard serve` as a process: SIGTERM while a request is in flight lets that request finish, refuses
//! new connections, then exits cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::upstream::{self, Mode};
use serde_json::json;
use switchyard_core::Router;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    common::model_files();
    let (upstream_addr, fake) = upstream::start().await;
    for m in Router::load(&common::workspace_root().join("models/default")).unwrap().manifest.models {
        // Every upstream takes 3 s to answer.
        fake.modes.lock().unwrap().insert(m.model.clone(), Mode::Slow);
    }
    let mut server = common::serve::spawn("first_byte_timeout_ms = 10000", upstream_addr).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let in_flight = tokio::spawn({
        let client = client.clone();
        let url = format!("{base}/v1/chat/completions");
        async move {
            let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "Take your time."}]});
            client.post(url).json(&body).send().await
        }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());

    // The request that was in flight completes normally.
    let response = in_flight.await.unwrap().expect("the in-flight request was dropped");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(response.text().await.unwrap().contains("hello from"));

    // Then the process exits by itself, successfully, and stops listening.
    let mut exited = None;
    for _ in 0..100 {
        if let Some(code) = server.child.try_wait().unwrap() {
            exited = Some(code);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(code) = exited else { panic!("serve did not exit after SIGTERM") };
    assert!(code.success(), "exit status {code}");
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}
