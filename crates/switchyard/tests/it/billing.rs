//! Streams that used to go uncharged or overcharged, against a fake OpenAI-protocol upstream and a real
//! `switchyard serve` process: a stream's head is bounded, and only `data:` lines are charged as output. (Whole
//! answers without usage, answers that are not JSON, redirects and `stream` that is not a boolean are in
//! switchyard-server's `billing` tests.)

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};
use switchyard_store::{DecisionRecord, Store};
use switchyard_testkit::upstream::{self, Fake, Mode};

const KEY: &str = "team-key";

/// "Name three rivers in Europe.": 28 characters, 7 input tokens at four characters a token.
const PROMPT: &str = "Name three rivers in Europe.";

/// `[[keys]]` with one key, "team", and three models at the fake upstream, priced $1 and $2 per million
/// tokens: `primary` (falls back to `backup`), `backup` and `lonely` (no fallback).
fn tables(addr: SocketAddr) -> String {
    let digest: String = Sha256::digest(KEY.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let model = |name: &str, extra: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nbase_url = \"http://{addr}/v1\"\ninput_usd_per_mtok = 1.0\n\
             output_usd_per_mtok = 2.0\n{extra}\n"
        )
    };
    format!(
        "[[keys]]\nname = \"team\"\nkey_sha256 = \"{digest}\"\n{}{}{}",
        model("primary", "fallbacks = [\"backup\"]"),
        model("backup", ""),
        model("lonely", "")
    )
}

/// Every request in the decision log at `path`, oldest first.
fn logged(path: &Path) -> Vec<DecisionRecord> {
    let mut out = Vec::new();
    Store::open(path).unwrap().for_each(0, |r| out.push(r.record)).unwrap();
    out
}

fn set(fake: &Fake, model: &str, mode: Mode) {
    fake.modes.lock().unwrap().insert(model.to_string(), mode);
}

/// Reads `/metrics` of a real server until `needle` shows (up to 60 s), and returns the line.
async fn metric_line(base: &str, needle: &str) -> String {
    let client = reqwest::Client::new();
    for _ in 0..1200 {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if let Some(line) = text.lines().find(|l| l.starts_with(needle)) {
            return line.to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{needle} never showed in /metrics");
}

/// Reads a real server's decision log until it holds `n` requests (up to 60 s).
async fn wait_logged(path: &Path, n: usize) -> Vec<DecisionRecord> {
    for _ in 0..1200 {
        if path.exists() {
            let records = logged(path);
            if records.len() >= n {
                return records;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the decision log never held {n} requests");
}

async fn stream_call(base: &str, model: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": PROMPT}]});
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_without_events_is_cut_at_its_head_bound_and_not_charged() {
    let (addr, fake) = upstream::start().await;
    set(&fake, "primary", Mode::HugeHead);
    // A first-byte limit far beyond the test: the head's bound, not the clock, ends the attempt.
    let server =
        switchyard_testkit::serve::spawn_with(crate::BIN, "first_byte_timeout_ms = 120000", &tables(addr), addr).await;
    let started = Instant::now();
    let (status, h, text) = stream_call(&server.base, "primary").await;
    let took = started.elapsed();
    assert_eq!(status, reqwest::StatusCode::OK, "{text}");
    assert_eq!(h.get("x-switchyard-model").and_then(|v| v.to_str().ok()), Some("backup"), "{text:.300}");
    assert!(!text.contains(": xxx") && text.contains("\"hel\""), "{text:.300}");
    assert!(took < Duration::from_secs(30), "the attempt took {took:?}");
    // Only the backup's reported 5 + 3 tokens are charged, none for the junk.
    let output = metric_line(&server.base, "switchyard_key_tokens_total{key=\"team\",kind=\"output\"}").await;
    assert!(output.ends_with(" 3"), "{output}");
    let records = wait_logged(&server.dir.path().join("decisions.sqlite"), 1).await;
    let error = records[0].attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("without a stream event"), "{error}");
    assert!(!records[0].usage_estimated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_data_lines_are_charged_as_output() {
    let (addr, fake) = upstream::start().await;
    set(&fake, "lonely", Mode::JunkStream);
    let server = switchyard_testkit::serve::spawn_with(crate::BIN, "", &tables(addr), addr).await;
    let (status, _, text) = stream_call(&server.base, "lonely").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{text:.300}");
    assert!(text.contains("\"hel\"") && text.contains("\"lo\"") && text.ends_with("data: [DONE]\n\n"));
    // No usage event: an estimate of the 5 generated characters (2 tokens), not the 1 MiB comment line.
    let output = metric_line(&server.base, "switchyard_key_tokens_total{key=\"team\",kind=\"output\"}").await;
    assert!(output.ends_with(" 2"), "{output}");
    let input = metric_line(&server.base, "switchyard_key_tokens_total{key=\"team\",kind=\"input\"}").await;
    assert!(input.ends_with(" 7"), "{input}");
    let records = wait_logged(&server.dir.path().join("decisions.sqlite"), 1).await;
    assert!(records[0].usage_estimated, "{:?}", records[0]);
    assert_eq!(records[0].output_tokens, Some(2));
}
