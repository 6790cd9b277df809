//! Client keys against a real gateway and a real OpenAI-protocol upstream on a loopback port: a budget survives
//! a restart (read back from the decision log), and `logs stats --by key` shows each key. (Limits, budgets,
//! spend from streamed usage and the models a key may use are in switchyard-server's `keys` tests.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_server::AppState;
use switchyard_testkit::upstream;

fn sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every model of the default router served by one upstream (5 prompt and 3 completion tokens a call, at $1
/// and $2 per million: $0.000011 a call), `[[keys]]` as given, and the decision log at `log`.
fn gateway(addr: SocketAddr, keys: &str, log: &Path) -> Arc<AppState> {
    let _router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let catalog = upstream::catalog(addr);
    let text = format!("[log]\npath = {log:?}\n[server]\nclient_keys = [\"plain-key\"]\n{keys}\n{catalog}");
    switchyard_testkit::app::state(&text)
}

async fn call(
    state: &Arc<AppState>,
    key: Option<&str>,
    uri: &str,
    body: Value,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer.as_deref().map(|b| ("authorization", b)).into_iter().collect();
    let (status, headers, bytes) = switchyard_testkit::app::post(state, uri, &headers, &body).await;
    (status, headers, String::from_utf8_lossy(&bytes).into_owned())
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Name three rivers in Europe."}]})
}

fn code(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_budget_survives_a_restart_and_logs_stats_shows_each_key() {
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sqlite");
    let keys = format!(
        "[[keys]]\nname = \"team-a\"\nkey_sha256 = \"{}\"\nbudget_usd = 0.0000329\nbudget_period = \"month\"\n",
        sha256("a-key")
    );
    {
        let state = gateway(addr, &keys, &log);
        for _ in 0..3 {
            let (status, _, _) = call(&state, Some("a-key"), "/v1/chat/completions", chat("switchyard", false)).await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, _, _) = call(&state, Some("a-key"), "/v1/chat/completions", chat("switchyard", false)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let (status, _, _) = call(&state, Some("plain-key"), "/v1/chat/completions", chat("switchyard", false)).await;
        assert_eq!(status, StatusCode::OK);
        state.log.as_ref().unwrap().flush();
    }
    // A new server reads this month's spend back from the decision log: the budget is still spent.
    let state = gateway(addr, &keys, &log);
    let (status, _, text) = call(&state, Some("a-key"), "/v1/chat/completions", chat("switchyard", false)).await;
    assert_eq!((status, code(&text).as_str()), (StatusCode::TOO_MANY_REQUESTS, "budget_exceeded"), "{text}");
    state.log.as_ref().unwrap().flush();

    let out =
        switchyard_testkit::cli(crate::BIN).args(["logs", "stats", "--by", "key", "--db"]).arg(&log).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{table}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // key, requests, errors, limited, input tokens, output tokens, spend
    assert_eq!(row("team-a"), ["team-a", "5", "2", "2", "15", "9", "0.0000"], "{table}");
    assert_eq!(row("client_keys#1")[..3], ["client_keys#1", "1", "0"], "{table}");
    let json = switchyard_testkit::cli(crate::BIN)
        .args(["logs", "stats", "--by", "key", "--json", "--db"])
        .arg(&log)
        .output()
        .unwrap();
    let keys: Value = serde_json::from_slice(&json.stdout).unwrap();
    let a = keys.as_array().unwrap().iter().find(|k| k["key"] == "team-a").unwrap();
    assert!((a["spend_usd"].as_f64().unwrap() - 3.3e-5).abs() < 1e-12, "{a}");
}
