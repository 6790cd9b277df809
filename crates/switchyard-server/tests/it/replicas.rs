//! Two replicas sharing one PostgreSQL (the decision log) and one Redis (limits, budgets, health, session
//! pins), both real servers started for the test, each on a unix socket. Each replica is a full server state
//! of its own (its own counters, health, pins and log writer), as two processes would have; the requests
//! alternate between them, or go to both at once. Without the shared state each replica would count on its own
//! and every assertion below would fail. (Limits, budgets, cooldowns, pins and one log across both, with `logs
//! export` and `train` on the result, are in the `switchyard` crate's `replicas` tests.)

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{AppState, Config};
use switchyard_testkit::pg::Postgres;
use switchyard_testkit::redis::Redis;
use switchyard_testkit::replicas::{burst, call, chat, flaky_model, header, keys, metric, pair, until_metric, Pair};
use switchyard_testkit::upstream::{self, Mode};

const EASY: &str = "Thanks, that's all I needed!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_keep_answering_while_redis_is_down_and_share_again_after() {
    let Pair { pg: _pg, redis, a, b, dir: _dir, .. } = pair().await;
    for (i, r) in [&a, &b].into_iter().enumerate() {
        let (status, _, v) = chat(r, "open-key", "switchyard", &format!("Before {i}?")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(metric(r, "switchyard_state_degraded").await, Some(0.0));
    }

    // Redis dies: both replicas keep answering, on their own state, and say so.
    let redis = tokio::task::spawn_blocking(move || {
        redis.kill();
        redis
    })
    .await
    .unwrap();
    for i in 0..6 {
        let r = [&a, &b][i % 2];
        let started = Instant::now();
        let (status, _, v) = chat(r, "metered-key", "switchyard", &format!("During {i}?")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert!(started.elapsed() < Duration::from_secs(2), "a dead Redis must not stall requests");
    }
    for r in [&a, &b] {
        assert_eq!(metric(r, "switchyard_state_degraded").await, Some(1.0));
        assert!(metric(r, "switchyard_state_errors_total").await.unwrap() >= 1.0);
    }

    // Redis is back (empty): the replicas reconnect, the gauge returns to 0, and limits are shared again.
    let redis = tokio::task::spawn_blocking(move || {
        redis.start_again();
        redis
    })
    .await
    .unwrap();
    for r in [&a, &b] {
        until_metric(r, "switchyard_state_degraded", 0.0).await;
        assert!(metric(r, "switchyard_state_reconnects_total").await.unwrap() >= 1.0);
    }
    // 24 requests at once, half through each replica: exactly 20 are admitted.
    let results = burst(&[&a, &b], "metered-key", 24, "After").await;
    let answered = results.iter().filter(|(status, _, _)| *status == StatusCode::OK).count();
    for (status, _, v) in results.iter().filter(|(status, _, _)| *status != StatusCode::OK) {
        assert_eq!(
            (*status, v["error"]["code"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_exceeded"))
        );
    }
    assert_eq!(answered, 20, "after the outage the count is shared again (Redis restarted empty)");
    let rpm_key = redis.query(&["EXISTS", "switchyard:key:{metered}:rpm"]);
    assert_eq!(rpm_key, "int(1)");
}

#[test]
fn an_unreachable_redis_is_an_error_when_required_and_a_degraded_start_otherwise() {
    let pg = Postgres::start();
    // A Redis not started yet: nobody answers at its socket until it starts below.
    let redis = Redis::stopped(Some("hunter2"));
    let url = redis.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, _) = runtime.block_on(upstream::start());
    let build = |extra: &str| {
        let router = Router::load(&switchyard_testkit::default_router()).unwrap();
        let text = format!(
            "[log]\nurl = \"{}\"\nspool = {:?}\n[state]\nurl = \"{url}\"\n{extra}\n{}\n{}",
            pg.url,
            dir.path().join("spool.sqlite").display().to_string(),
            keys(),
            upstream::catalog(addr)
        );
        let config = Config::parse(&text, Path::new("replica.toml")).unwrap_or_else(|e| panic!("{e}"));
        let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
        AppState::new(router, Arc::new(encoder), config)
    };
    let err = build("required = true").err().unwrap().to_string();
    assert!(err.contains("state.url") && err.contains("Redis does not answer"), "{err}");
    assert!(err.contains("state.required = false") && !err.contains("hunter2"), "{err}");
    let state = Arc::new(build("").unwrap_or_else(|e| panic!("{e}")));
    let degraded = runtime.block_on(async {
        let (status, _, v) = chat(&state, "open-key", "switchyard", "Hello?").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        // Two paid calls while Redis is out of reach: this replica counts them...
        for i in 0..2 {
            assert_eq!(chat(&state, "budgeted-key", "switchyard", &format!("Paid {i}?")).await.0, StatusCode::OK);
        }
        metric(&state, "switchyard_state_degraded").await
    });
    assert_eq!(degraded, Some(1.0));

    // ... and when Redis comes up (here holding $0.00003 spent by other replicas), it adds them: whichever
    // happens first, the replica's reconnection or the others' spend, the counter ends at $0.000052.
    redis.start_again();
    let (start, _) = switchyard_server::BudgetPeriod::default().bounds(switchyard_store::now_ms());
    let spend_key = format!("switchyard:key:{{budgeted}}:spend:{start}");
    redis.query(&["INCRBYFLOAT", &spend_key, "0.00003"]);
    runtime.block_on(until_metric(&state, "switchyard_state_degraded", 0.0));
    let spent: f64 = redis.get(&spend_key).and_then(|v| v.parse().ok()).unwrap_or(-1.0);
    assert!((spent - 0.000052).abs() < 1e-9, "{spent}");

    // A Redis that wants a password, given the wrong one: the error says so, without the password.
    let locked = Redis::start_with(Some("s3cret-pass"));
    let wrong = locked.url.replace("s3cret-pass", "not-it");
    let text = format!(
        "[log]\nurl = \"{}\"\nspool = {:?}\n[state]\nurl = \"{wrong}\"\nrequired = true\n",
        pg.url,
        dir.path().join("spool-2.sqlite").display().to_string()
    );
    let config = Config::parse(&text, Path::new("replica.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let err = AppState::new(router, Arc::new(encoder), config).err().unwrap().to_string();
    assert!(err.contains("state.url") && err.contains("refused the password") && !err.contains("not-it"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_without_budgets_or_keys_shares_health_and_pins_too() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
    let (addr, fake) = upstream::start().await;
    fake.modes.lock().unwrap().insert("broken".into(), Mode::Fail500);
    let dir = tempfile::tempdir().unwrap();
    let router = || Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = |name: &str| {
        format!(
            "[server]\ncooldown_failures = 1\ncooldown_ms = 60000\nadmin_keys = [\"ops\"]\n[log]\nurl = \"{}\"\nspool = {:?}\n\
             [state]\nurl = \"{}\"\n{}\n{}",
            pg.url,
            dir.path().join(name).display().to_string(),
            redis.url,
            upstream::catalog(addr),
            flaky_model(addr)
        )
    };
    let start = |name: &str| {
        let config = Config::parse(&text(name), Path::new("replica.toml")).unwrap_or_else(|e| panic!("{e}"));
        let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
        Arc::new(AppState::new(router(), Arc::new(encoder), config).unwrap_or_else(|e| panic!("{e}")))
    };
    let (a, b) = (start("a.sqlite"), start("b.sqlite"));
    // No client keys at all: requests need no Authorization header.
    let (status, h, _) = chat(&a, "", "flaky", "Hello?").await;
    assert_eq!((status, header(&h, "x-switchyard-fallbacks")), (StatusCode::OK, "1".to_string()));
    let (status, h, _) = chat(&b, "", "flaky", "Hello again?").await;
    assert_eq!((status, header(&h, "x-switchyard-fallbacks")), (StatusCode::OK, "0".to_string()));
    // A conversation started on A is found on B.
    let mut actions = Vec::new();
    for (i, r) in [&a, &b].into_iter().enumerate() {
        let mut messages = vec![json!({"role": "user", "content": EASY})];
        if i > 0 {
            messages.push(json!({"role": "assistant", "content": "Glad to help."}));
            messages.push(json!({"role": "user", "content": EASY}));
        }
        let body = json!({"messages": messages});
        let (status, _, text) = call(r, "POST", "/v1/route", "", &[("x-session-id", "conv-9")], body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        actions.push(serde_json::from_str::<Value>(&text).unwrap()["session"]["action"].clone());
    }
    assert_eq!(actions, [json!("started"), json!("kept")]);
    for r in [&a, &b] {
        assert_eq!(metric(r, "switchyard_state_degraded").await, Some(0.0));
        assert_eq!(metric(r, "switchyard_state_errors_total").await, Some(0.0));
    }
    assert!(redis.query(&["HGET", "switchyard:health", "flaky-a"]).contains("cool_until"));
    // The dashboard reads the shared log: each replica shows both replicas' requests, the failed call against
    // its deployment, and the shared cooldown.
    for r in [&a, &b] {
        r.log.as_ref().unwrap().flush();
    }
    for r in [&a, &b] {
        let (status, _, text) = call(r, "GET", "/admin/stats?from=1h", "ops", &[], Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let stats: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (stats["totals"]["requests"].as_u64(), stats["log"]["backend"].as_str()),
            (Some(4), Some("postgres"))
        );
        let deployment =
            |name: &str| stats["deployments"].as_array().unwrap().iter().find(|d| d["deployment"] == name).cloned();
        let failed = deployment("flaky-a").unwrap();
        assert_eq!(
            (failed["calls"].as_u64(), failed["failures"].as_u64(), &failed["cooling"]),
            (Some(1), Some(1), &json!(true))
        );
        assert_eq!(deployment("flaky-b").unwrap()["calls"].as_u64(), Some(2));
        assert_eq!(stats["models"].as_array().unwrap().iter().find(|m| m["model"] == "flaky").unwrap()["fallbacks"], 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_two_replicas_loses_no_row_and_writes_none_twice() {
    let Pair { pg, redis: _redis, a, b, dir: _dir, .. } = pair().await;
    let mut sent = 0u64;
    for i in 0..6 {
        assert_eq!(chat([&a, &b][i % 2], "open-key", "switchyard", &format!("Before {i}?")).await.0, StatusCode::OK);
        sent += 1;
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // Several seconds without the database: every request is still answered.
    let outage = Instant::now();
    let mut i = 0;
    while outage.elapsed() < Duration::from_secs(3) {
        let (status, _, v) = chat([&a, &b][i % 2], "open-key", "switchyard", &format!("During {i}?")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        sent += 1;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in [&a, &b] {
        r.log.as_ref().unwrap().flush();
        assert!(metric(r, "switchyard_log_spool_rows").await.unwrap() > 0.0, "rows wait in each replica's spool");
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    for i in 0..4 {
        assert_eq!(chat([&a, &b][i % 2], "open-key", "switchyard", &format!("After {i}?")).await.0, StatusCode::OK);
        sent += 1;
    }
    for r in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            r.log.as_ref().unwrap().flush();
            if metric(r, "switchyard_log_spool_rows").await == Some(0.0) {
                break;
            }
            assert!(Instant::now() < deadline, "a spool was not replayed within a minute");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(metric(r, "switchyard_log_rows_failed_total").await, Some(0.0));
        assert_eq!(metric(r, "switchyard_log_rows_dropped_total").await, Some(0.0));
    }
    let counts =
        tokio::task::spawn_blocking(move || pg.sql("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM decisions"))
            .await
            .unwrap();
    assert_eq!(counts, format!("{sent}|{sent}"), "one row per request from both replicas, none twice");
}
