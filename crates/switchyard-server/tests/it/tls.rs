//! TLS to the shared stores: the decision log in a PostgreSQL that takes TLS connections only (`hostssl`), and
//! the shared state in a Redis that listens on TLS only, both with certificates from a private CA that the
//! server is told to trust (`sslrootcert` in `log.url`, `state.ca_file`). Without the CA, the connection fails
//! on the certificate and the error says so.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_store::{Database, Location};
use switchyard_testkit::pg::Postgres;
use switchyard_testkit::redis::Redis;
use switchyard_testkit::tls::Certs;
use switchyard_testkit::upstream;
use tower::ServiceExt;

#[test]
fn the_decision_log_reaches_postgres_over_verified_tls() {
    let certs = Certs::make();
    let pg = Postgres::start_tls(&certs.cert(), &certs.key());
    let ca = certs.ca().display().to_string();
    let with = |query: &str| Location::Postgres(format!("{}?{query}", pg.url));

    // Verified against the private CA: the tables are created (the server takes TLS connections only).
    let mut db = Database::open(&with(&format!("sslmode=verify-full&sslrootcert={ca}"))).unwrap();
    assert_eq!(db.count().unwrap(), 0);
    drop(db);
    // A plain connection is refused by the server; TLS without the CA fails on the certificate.
    let plain = Database::open(&Location::Postgres(pg.url.clone())).err().unwrap().to_string();
    assert!(plain.contains("no encryption") && plain.contains("check log.url"), "{plain}");
    let unknown = Database::open(&with("sslmode=require")).err().unwrap().to_string();
    assert!(unknown.to_lowercase().contains("certificate"), "{unknown}");
    // A server that starts with an untrusted certificate in log.url stops there: it is not an outage to wait
    // out on the spool.
    let spool = certs.dir().join("spool.sqlite");
    let text = format!("[log]\nurl = \"{}?sslmode=require\"\nspool = {:?}\n", pg.url, spool.display().to_string());
    let config = Config::parse(&text, Path::new("tls.toml")).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let err = AppState::new(router, Arc::new(encoder), config).err().unwrap().to_string();
    assert!(err.to_lowercase().contains("certificate") && err.contains("check log.url"), "{err}");
    // A root file that is not a certificate is named.
    let bogus = certs.dir().join("bogus.pem");
    std::fs::write(&bogus, "nothing here\n").unwrap();
    let bad = Database::open(&with(&format!("sslmode=require&sslrootcert={}", bogus.display()))).err().unwrap();
    assert!(bad.to_string().contains("sslrootcert") && bad.to_string().contains("log.url"), "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_state_reaches_redis_over_verified_tls() {
    let certs = Certs::make();
    let redis = tokio::task::spawn_blocking({
        let (cert, key, ca) = (certs.cert(), certs.key(), certs.ca());
        move || Redis::start_tls(&cert, &key, &ca)
    })
    .await
    .unwrap();
    let (addr, _) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let build = |state: String| {
        let text = format!(
            "[log]\nenabled = false\n[state]\nurl = \"{}\"\nrequired = true\n{state}\n{}",
            redis.url,
            upstream::catalog(addr)
        );
        let config = Config::parse(&text, Path::new("tls.toml")).unwrap_or_else(|e| panic!("{e}"));
        let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
        let router = Router::load(&switchyard_testkit::default_router()).unwrap();
        AppState::new(router, Arc::new(encoder), config)
    };
    // Without the CA the certificate is not trusted: with state.required, no start.
    let err = build(String::new()).err().unwrap().to_string();
    assert!(err.contains("state.url") && err.to_lowercase().contains("certificate"), "{err}");
    let state = Arc::new(build(format!("ca_file = {:?}", certs.ca().display().to_string())).unwrap());
    let body = json!({"messages": [{"role": "user", "content": "Hello over TLS?"}]});
    let request = Request::post("/v1/route")
        .header("content-type", "application/json")
        .header("x-session-id", "tls-1")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = app(state.clone()).oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
    let text = String::from_utf8(metrics.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("switchyard_state_degraded 0"), "{text}");
    // The conversation's pin went to Redis, over TLS.
    let pin = tokio::task::spawn_blocking(move || redis.get("switchyard:pin:tls-1")).await.unwrap();
    let pin: Value = serde_json::from_str(&pin.unwrap_or_default()).unwrap();
    assert!(pin["model"].is_string(), "{pin}");
    drop(dir);
}
