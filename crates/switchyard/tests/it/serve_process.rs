//! `switchyard serve` as a process: SIGTERM while a request is in flight lets that request finish, refuses
//! new connections, then exits cleanly.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use switchyard_core::Router;
use switchyard_testkit::upstream::{self, Mode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    switchyard_testkit::model_files();
    let (upstream_addr, fake) = upstream::start().await;
    for m in Router::load(&switchyard_testkit::default_router()).unwrap().manifest.models {
        // Every upstream takes 3 s to answer.
        fake.modes.lock().unwrap().insert(m.model.clone(), Mode::Slow);
    }
    let mut server = switchyard_testkit::serve::spawn(crate::BIN, "first_byte_timeout_ms = 10000", upstream_addr).await;
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
    // SIGTERM once the request has reached the upstream (which answers 3 s later): it is in flight.
    fake.until_calls(1).await;
    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());

    // The request that was in flight completes normally.
    let response = in_flight.await.unwrap().expect("the in-flight request was dropped");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(response.text().await.unwrap().contains("hello from"));

    // Then the process exits by itself, successfully, and stops listening.
    let Some(code) = server.exited_within(Duration::from_secs(60)).await else {
        panic!("serve did not exit within 60 s of SIGTERM:\n{}", server.log())
    };
    assert!(code.success(), "exit status {code}");
    assert!(client.get(format!("{base}/healthz")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_stuck_stream_exits_within_the_grace_period() {
    switchyard_testkit::model_files();
    let (upstream_addr, fake) = upstream::start().await;
    for m in Router::load(&switchyard_testkit::default_router()).unwrap().manifest.models {
        // Two chunks, then silence that never ends (and an idle limit far beyond the test).
        fake.modes.lock().unwrap().insert(m.model.clone(), Mode::StallAfter(2));
    }
    let mut server = switchyard_testkit::serve::spawn(
        crate::BIN,
        "shutdown_grace_ms = 1500\nidle_timeout_ms = 600000",
        upstream_addr,
    )
    .await;
    let client = reqwest::Client::new();
    let body = json!({"model": "switchyard", "stream": true, "messages": [{"role": "user", "content": "Tell me a long story."}]});
    let response = client.post(format!("{}/v1/chat/completions", server.base)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let mut chunks = response.bytes_stream();
    let first = futures_util::StreamExt::next(&mut chunks).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("<0>"), "{first:?}");

    let sent = std::time::Instant::now();
    let status = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..200 {
        if let Some(code) = server.child.try_wait().unwrap() {
            exited = Some((code, sent.elapsed()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some((code, took)) = exited else { panic!("serve did not exit after SIGTERM:\n{}", server.log()) };
    assert!(code.success(), "exit status {code}:\n{}", server.log());
    // It waited for the stream through the grace period, then closed it and exited.
    assert!(took >= Duration::from_millis(1400), "exited after {took:?}, before the grace period ended");
    assert!(took < Duration::from_millis(1500 + 8000), "exited after {took:?}");
    assert!(server.log().contains("server.shutdown_grace_ms"), "{}", server.log());
    // The client's stream ends rather than hanging.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut chunks).await {}
    })
    .await;
    assert!(rest.is_ok(), "the stuck stream was not closed");
}

/// A router trained with another truncation (or other tokenizer/config files) than the server's encoder is
/// refused at start-up, with both named.
#[test]
fn a_router_for_another_encoder_setting_is_a_start_up_error() {
    switchyard_testkit::model_files();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    std::fs::write(&config, "[log]\nenabled = false\n[encoder]\nmax_tokens = 128\n").unwrap();
    let router = switchyard_testkit::default_router();
    let out = switchyard_testkit::cli(crate::BIN)
        .args(["serve", "--config", config.to_str().unwrap(), "--router", router.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("max_tokens 256") && err.contains("max_tokens 128"), "{err}");
    assert!(err.contains("tokenizer/config sha256"), "{err}");

    // An int8 encoder against the bundled router, trained on f32 embeddings: refused, both precisions named,
    // and the flag to fix it.
    let out = switchyard_testkit::cli(crate::BIN)
        .args(["serve", "--precision", "int8", "--set", "log.enabled=false", "--router", router.to_str().unwrap()])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("precision f32") && err.contains("precision int8") && err.contains("--precision"), "{err}");
}
