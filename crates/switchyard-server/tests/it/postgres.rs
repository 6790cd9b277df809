//! The server's decision log in a real PostgreSQL (a cluster made by initdb for each test, on a unix socket)
//! through outages: a server started while the database is down serves and writes once it answers, and rows
//! spooled in an outage survive a database that comes back refusing the login. (The gateway writing every
//! request there with `logs stats`/`logs export` reading it is in the `switchyard` crate's tests; the store
//! alone in switchyard-store's.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{AppState, Config};
use switchyard_testkit::pg::Postgres;
use switchyard_testkit::upstream;

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
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
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
