//! The decision log in a real PostgreSQL (a cluster made by initdb for this test): the gateway writes every
//! request there, feedback attaches to it, budgets are read back from it at start-up, `logs stats` and
//! `logs export` read it with `--db postgres://...`, and a schema newer than the binary is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::pg::Postgres;
use common::upstream;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

fn gateway(addr: SocketAddr, url: &str, spool: &Path, keys: &str) -> Arc<AppState> {
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let text = format!(
        "[log]\nurl = \"{url}\"\nspool = {:?}\n{keys}\n{}",
        spool.display().to_string(),
        upstream::catalog(addr)
    );
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap_or_else(|e| panic!("{e}")))
}

async fn post(state: &Arc<AppState>, uri: &str, key: &str, body: Value) -> (StatusCode, axum::http::HeaderMap, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn switchyard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_switchyard")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    // Feedback cannot reach the database now: the client hears so and may send it again.
    let (status, _, v) = post(&state, "/v1/feedback", "team-key", json!({"request_id": during[0], "score": 1})).await;
    assert!(status.is_server_error(), "{status} {v}");
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
fn a_schema_newer_than_the_binary_and_a_bad_url_are_clear_errors() {
    let pg = Postgres::start();
    let location = switchyard_store::Location::Postgres(pg.url.clone());
    drop(switchyard_store::Database::open(&location).unwrap());
    pg.sql("UPDATE switchyard_meta SET value = 99 WHERE key = 'schema_version'");
    let err = switchyard_store::Database::open(&location).err().unwrap().to_string();
    assert!(err.contains("schema version 99") && err.contains("upgrade switchyard"), "{err}");

    // A wrong password: the server says so, and the message names the setting without the password.
    let wrong = pg.url.replace(pg.password, "not-the-password");
    let err = switchyard_store::Database::open(&switchyard_store::Location::Postgres(wrong)).err().unwrap().to_string();
    assert!(err.contains("password authentication failed") && err.contains("check log.url"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    // Nobody listens on this port: the error names the URL (without the password) and what to check.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{closed}/log");
    let err = switchyard_store::Database::open(&switchyard_store::Location::Postgres(url)).err().unwrap().to_string();
    assert!(err.contains("app:***@127.0.0.1") && !err.contains("hunter2") && err.contains("check log.url"), "{err}");
    let out = switchyard(&["logs", "stats", "--db", "postgres://app@db:notaport/log"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a valid PostgreSQL URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_row_postgres_refuses_is_counted_and_does_not_hold_the_others() {
    use switchyard_store::{DecisionRecord, LogWriter, PromptLogging, WriterOptions};
    let pg = Postgres::start();
    drop(switchyard_store::Database::open(&switchyard_store::Location::Postgres(pg.url.clone())).unwrap());
    // A rule the rows know nothing of (as a DBA might add): one row breaks it.
    pg.sql("ALTER TABLE decisions ADD CONSTRAINT test_refuses CHECK (user_id IS DISTINCT FROM 'refuse-me')");
    let dir = tempfile::tempdir().unwrap();
    let writer = LogWriter::start(&WriterOptions {
        path: dir.path().join("unused.sqlite"),
        url: Some(pg.url.clone()),
        spool: dir.path().join("spool.sqlite"),
        required: true,
        queue_capacity: 100,
        retention_days: None,
    })
    .unwrap();
    for i in 0..10 {
        let mut r = DecisionRecord {
            request_id: format!("r{i}"),
            ts_ms: switchyard_store::now_ms(),
            endpoint: "route".into(),
            status: 200,
            user: (i == 4).then(|| "refuse-me".to_string()),
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", PromptLogging::Hash);
        assert!(writer.log(r));
    }
    writer.flush();
    let stats = writer.stats();
    let read = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    assert_eq!((read(&stats.written), read(&stats.failed), read(&stats.spooled)), (9, 1, 0));
    assert_eq!(pg.sql("SELECT COUNT(*) FROM decisions"), "9");
    assert_eq!(pg.sql("SELECT COUNT(*) FROM decisions WHERE request_id = 'r4'"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_postgres_is_down_serves_and_writes_once_it_answers() {
    let pg = tokio::task::spawn_blocking(|| {
        let pg = Postgres::start();
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool.sqlite");

    // With log.required, an unreachable database is a start-up error naming the setting.
    let text = format!(
        "[log]\nurl = \"{}\"\nspool = {:?}\nrequired = true\n{}",
        pg.url,
        spool.display().to_string(),
        upstream::catalog(addr)
    );
    let config = Config::parse(&text, Path::new("test.toml")).unwrap();
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let err = AppState::new(router, Arc::new(encoder), config).err().unwrap().to_string();
    assert!(err.contains("check log.url") && !err.contains(pg.password), "{err}");

    // Without it, the server starts on its spool and answers.
    let state = gateway(addr, &pg.url, &spool, "");
    for i in 0..5 {
        let body = json!({"prompt": format!("Question {i} while the database is down?")});
        let (status, _, v) = post(&state, "/v1/route", "", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let log = state.log.as_ref().unwrap();
    log.flush();
    assert_eq!(log.stats().spooled.load(Relaxed), 5);
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while log.stats().spooled.load(Relaxed) > 0 {
        assert!(std::time::Instant::now() < deadline, "the spool was not replayed within a minute");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log.flush();
    }
    // The tables were created when the database first answered.
    let rows = tokio::task::spawn_blocking(move || pg.sql("SELECT COUNT(*) FROM decisions")).await.unwrap();
    assert_eq!(rows, "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_spooled_in_an_outage_survive_a_database_that_comes_back_refusing_the_login() {
    // The password changes, then the database goes down; the server starts on its spool with the old one.
    let pg = tokio::task::spawn_blocking(|| {
        let pg = Postgres::start();
        pg.sql("ALTER USER switchyard PASSWORD 'rotated-pass'");
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, &pg.url, &dir.path().join("spool.sqlite"), "");
    for i in 0..3 {
        let (status, _, v) = post(&state, "/v1/route", "", json!({"prompt": format!("Question {i}?")})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let log = state.log.as_ref().unwrap();
    log.flush();
    let stats = log.stats();
    assert_eq!(stats.spooled.load(Relaxed), 3);

    // The database is back but refuses the old password: the rows wait, none is dropped.
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    let tried = stats.unreachable.load(Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while stats.unreachable.load(Relaxed) < tried + 2 {
        assert!(std::time::Instant::now() < deadline, "the writer did not try the database again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log.flush();
    }
    assert_eq!((stats.spooled.load(Relaxed), stats.failed.load(Relaxed)), (3, 0), "no row is lost to a login error");

    // The password is put back: the spool is replayed.
    let rotated = pg.url.replace(pg.password, "rotated-pass");
    let restore = format!("ALTER USER switchyard PASSWORD '{}'", pg.password);
    let pg = tokio::task::spawn_blocking(move || {
        pg.sql_with(&rotated, &restore);
        pg
    })
    .await
    .unwrap();
    while stats.spooled.load(Relaxed) > 0 {
        assert!(std::time::Instant::now() < deadline, "the spool was not replayed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        log.flush();
    }
    let rows = tokio::task::spawn_blocking(move || pg.sql("SELECT COUNT(*) FROM decisions")).await.unwrap();
    assert_eq!(rows, "3");
}

#[test]
fn a_version_2_table_gains_the_propensity_columns_and_keeps_its_rows() {
    use switchyard_store::{Database, DecisionRecord, Location, PromptLogging};
    let pg = Postgres::start();
    let location = Location::Postgres(pg.url.clone());
    let record = |id: &str| {
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms: switchyard_store::now_ms(),
            endpoint: "route".into(),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", PromptLogging::Hash);
        r
    };
    let mut db = Database::open(&location).unwrap();
    db.insert(&[record("old")]).unwrap();
    drop(db);
    // The table as a version 2 build left it.
    pg.sql(
        "ALTER TABLE decisions DROP COLUMN propensity, DROP COLUMN explored, DROP COLUMN usage_estimated; \
         UPDATE switchyard_meta SET value = 2 WHERE key = 'schema_version'",
    );
    let mut db = Database::open(&location).unwrap();
    let mut explored = record("new");
    (explored.propensity, explored.explored, explored.usage_estimated) = (Some(0.04), true, true);
    db.insert(&[explored]).unwrap();
    let rows = pg.sql(
        "SELECT request_id || '|' || COALESCE(propensity::text, '-') || '|' || COALESCE(explored::text, '-') \
         || '|' || COALESCE(usage_estimated::text, '-') FROM decisions ORDER BY request_id",
    );
    assert_eq!(rows.trim(), "new|0.04|true|true\nold|-|-|-");
    assert_eq!(pg.sql("SELECT value FROM switchyard_meta WHERE key = 'schema_version'").trim(), "4");
    let mut read = Vec::new();
    switchyard_store::LogRows::each_logged(&mut db, i64::MIN, &mut |r| read.push(r.record)).unwrap();
    let mut flags: Vec<(&str, bool)> = read.iter().map(|r| (r.request_id.as_str(), r.usage_estimated)).collect();
    flags.sort();
    assert_eq!(flags, [("new", true), ("old", false)]);
}

/// Feedback in PostgreSQL finds a request only with the key it was made with (`IS NOT DISTINCT FROM`: no key
/// finds only requests made without one); another key's id is answered as an unknown one.
#[test]
fn feedback_finds_only_requests_made_with_the_same_key() {
    use switchyard_store::{Database, DecisionRecord, Feedback, FeedbackOutcome, Location, StoreError};
    let pg = Postgres::start();
    let mut db = Database::open(&Location::Postgres(pg.url.clone())).unwrap();
    let record = |id: &str, key: Option<&str>, endpoint: &str| {
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms: 1_000,
            endpoint: endpoint.into(),
            api_key: key.map(str::to_string),
            chosen_model: Some("m".into()),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", switchyard_store::PromptLogging::Full);
        r
    };
    db.insert(&[record("keyed", Some("team-a"), "chat"), record("open", None, "route")]).unwrap();
    let fb = |id: &str, key: Option<&str>| Feedback {
        request_id: id.into(),
        api_key: key.map(str::to_string),
        score: 0.0,
        comment: None,
        ts_ms: 2_000,
    };
    for (id, key) in [("keyed", Some("team-b")), ("keyed", None), ("open", Some("team-a")), ("never", None)] {
        let err = db.feedback(&fb(id, key)).unwrap_err();
        assert!(matches!(&err, StoreError::UnknownRequest(i) if i == id), "{id} {key:?}: {err}");
    }
    let stolen = db.feedback(&fb("keyed", Some("team-b"))).unwrap_err().to_string();
    let never = db.feedback(&fb("never", Some("team-b"))).unwrap_err().to_string();
    assert_eq!(stolen.replace("keyed", "ID"), never.replace("never", "ID"));
    assert_eq!(pg.sql("SELECT COUNT(*) FROM feedback").trim(), "0", "refused feedback stored nothing");
    let own = db.feedback(&fb("keyed", Some("team-a"))).unwrap();
    assert_eq!((own.outcome, own.answered_upstream()), (FeedbackOutcome::Recorded, true));
    let open = db.feedback(&fb("open", None)).unwrap();
    assert_eq!((open.outcome, open.answered_upstream()), (FeedbackOutcome::Recorded, false), "a /v1/route decision");
    assert_eq!(db.feedback(&fb("open", None)).unwrap().outcome, FeedbackOutcome::Replaced(2));
}
