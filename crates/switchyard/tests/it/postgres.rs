//! The decision log in a real PostgreSQL (a cluster made by initdb for this test, on a unix socket): the gateway
//! writes every request there, feedback attaches to it (503 `log_unavailable` while the database is down),
//! budgets are read back from it at start-up, and `logs stats` and `logs export` read it with
//! `--db postgres://...`, or name a URL they cannot read. (The store alone is tested in switchyard-store, the
//! server through outages in switchyard-server.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_server::{app, AppState};
use switchyard_testkit::pg::Postgres;
use switchyard_testkit::upstream;
use tower::ServiceExt;

fn gateway(addr: SocketAddr, url: &str, spool: &Path, keys: &str) -> Arc<AppState> {
    let _router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = format!(
        "[log]\nurl = \"{url}\"\nspool = {:?}\n{keys}\n{}",
        spool.display().to_string(),
        upstream::catalog(addr)
    );
    switchyard_testkit::app::state(&text)
}

async fn post(state: &Arc<AppState>, uri: &str, key: &str, body: Value) -> (StatusCode, axum::http::HeaderMap, Value) {
    let bearer = format!("Bearer {key}");
    let (status, headers, bytes) =
        switchyard_testkit::app::post(state, uri, &[("authorization", &bearer)], &body).await;
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn switchyard(args: &[&str]) -> std::process::Output {
    switchyard_testkit::cli(crate::BIN).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Long: one end-to-end scenario on a real PostgreSQL; each step needs the rows the one before wrote.
async fn the_decision_log_lives_in_postgres() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let (addr, _) = upstream::start().await;
    let digest: String = Sha256::digest(b"team-key").iter().map(|b| format!("{b:02x}")).collect();
    let keys = format!("[[keys]]\nname = \"team\"\nkey_sha256 = \"{digest}\"\nbudget_usd = 0.0000329\n");
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");
    let state = gateway(addr, &pg.url, &spool, &keys);
    let prompts = ["What is the capital of Italy?", "Write a haiku about rain.", "Explain TCP slow start."];
    let mut ids = Vec::new();
    for p in prompts {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": p}]});
        let (status, h, v) = post(&state, "/v1/chat/completions", "team-key", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        ids.push(h["x-switchyard-request-id"].to_str().unwrap().to_string());
    }
    // Three calls spent the budget: the fourth is refused, and logged too.
    let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "One more?"}]});
    assert_eq!(post(&state, "/v1/chat/completions", "team-key", body).await.0, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, v) = post(&state, "/v1/feedback", "team-key", json!({"request_id": ids[0], "score": 0.75})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    state.log.as_ref().unwrap().flush();

    let url = pg.url.clone();
    let (count, rows) = tokio::task::spawn_blocking(move || {
        let mut db = switchyard_store::Database::open(&switchyard_store::Location::Postgres(url)).unwrap();
        let mut rows = Vec::new();
        switchyard_store::LogRows::each_logged(&mut db, i64::MIN, &mut |r| rows.push(r)).unwrap();
        (db.count().unwrap(), rows)
    })
    .await
    .unwrap();
    assert_eq!(count, 4);
    let first = rows.iter().find(|r| r.record.request_id == ids[0]).unwrap();
    assert_eq!(first.feedback, Some(0.75));
    assert_eq!(first.record.api_key.as_deref(), Some("team"));
    assert_eq!((first.record.input_tokens, first.record.output_tokens), (Some(5), Some(3)));
    assert!(!first.record.attempts.is_empty() && first.record.attempts[0].deployment.is_some());
    assert_eq!(rows.iter().filter(|r| r.record.status == 429).count(), 1);

    // A new server reads the month's spend back from Postgres: the budget stays spent.
    drop(state);
    let state = gateway(addr, &pg.url, &spool, &keys);
    let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "And now?"}]});
    let (status, _, v) = post(&state, "/v1/chat/completions", "team-key", body).await;
    assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("budget_exceeded")));
    state.log.as_ref().unwrap().flush();

    // The CLI reads the same database.
    let url = pg.url.clone();
    let (stats, export) = tokio::task::spawn_blocking(move || {
        let stats = switchyard(&["logs", "stats", "--by", "key", "--db", &url]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("feedback.jsonl");
        let export = switchyard(&["logs", "export", "--db", &url, "--out", out.to_str().unwrap()]);
        assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
        (stats, std::fs::read_to_string(out).unwrap())
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{}", String::from_utf8_lossy(&stats.stderr));
    let team: Vec<&str> =
        table.lines().find(|l| l.starts_with("team")).unwrap_or_default().split_whitespace().collect();
    assert_eq!(team[..6], ["team", "5", "2", "2", "15", "9"], "{table}");
    let exported: Vec<Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 1, "{export}");
    assert_eq!((exported[0]["prompt"].as_str(), exported[0]["score"].as_f64()), (Some(prompts[0]), Some(0.75)));

    // PostgreSQL stops for a while under the running server: no request fails, rows wait in the spool, and
    // they are replayed in order once it is back, one row per request.
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let log = state.log.as_ref().unwrap();
    let mut during = Vec::new();
    for i in 0..30 {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": format!("Outage {i}?")}]});
        let (status, h, v) = post(&state, "/v1/route", "team-key", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        during.push(h["x-switchyard-request-id"].to_str().unwrap().to_string());
    }
    log.flush();
    let stats = log.stats();
    assert_eq!(stats.spooled.load(Relaxed), 30, "the rows wait in the spool while PostgreSQL is down");
    let metrics = String::from_utf8(
        app(state.clone())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap()
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(metrics.contains("switchyard_log_spool_rows 30"), "{metrics}");
    // Feedback cannot reach the database now: the client hears so at once (503 `log_unavailable`) and may send
    // it again.
    let (status, _, v) = post(&state, "/v1/feedback", "team-key", json!({"request_id": during[0], "score": 1})).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("log_unavailable")),
        "{v}"
    );
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    // Requests after the restart queue behind the spooled ones.
    for _ in 0..2 {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "After the restart?"}]});
        assert_eq!(post(&state, "/v1/route", "team-key", body).await.0, StatusCode::OK);
    }
    // The writer tries the database again with a backoff of at most five seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stats.spooled.load(Relaxed) > 0 || stats.queued.load(Relaxed) > 0 {
        assert!(std::time::Instant::now() < deadline, "the spool was not replayed within a minute");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log.flush();
    }
    // The 30 rows of the outage were replayed (the two after it too, unless the writer found the database back
    // before they came).
    assert!(stats.replayed.load(Relaxed) >= 30, "{}", stats.replayed.load(Relaxed));
    // The feedback sent again now finds its request.
    let (status, _, v) = post(&state, "/v1/feedback", "team-key", json!({"request_id": during[0], "score": 1})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let counts = tokio::task::spawn_blocking(move || {
        let rows = pg.sql("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM decisions");
        let scored = pg.sql(&format!("SELECT score FROM feedback WHERE request_id = '{}'", during[0]));
        (rows, scored)
    })
    .await
    .unwrap();
    assert_eq!(
        counts,
        ("37|37".to_string(), "1".to_string()),
        "every request before, during and after the outage is one row"
    );
    assert_eq!(stats.failed.load(Relaxed), 0);
    assert_eq!(stats.dropped.load(Relaxed), 0);
}

#[test]
fn logs_stats_names_a_postgres_url_it_cannot_read() {
    let out = switchyard(&["logs", "stats", "--db", "postgres://app@db:notaport/log"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a valid PostgreSQL URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
