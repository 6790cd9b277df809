//! Two replicas sharing one PostgreSQL (the decision log) and one Redis (limits, budgets, health, session
//! pins), both real servers started for the test. Each replica is a full server state of its own (its own
//! counters, health, pins and log writer), as two processes would have; the requests alternate between them.
//! Without the shared state each replica would count on its own and every assertion below would fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::pg::Postgres;
use common::redis::Redis;
use common::replicas::{call, chat, flaky_model, header, keys, metric, pair, until_metric, Pair};
use common::upstream::{self, Mode};
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{AppState, Config};

/// Sums (the small model fails them) and chat (both manage).
const PROMPTS: [&str; 20] = [
    "What is 17 * 23?",
    "What is 2 to the power of 20?",
    "What is the sum of the first 100 positive integers?",
    "What is 144 divided by 12?",
    "What is 35 + 47?",
    "What is 9 squared minus 4?",
    "What is 1000 minus 387?",
    "What is 6 factorial?",
    "What is 15 percent of 80?",
    "What is 81 divided by 9?",
    "Write a haiku about rain.",
    "Suggest a name for a friendly cat.",
    "Say good morning in French.",
    "Give me a fun fact about octopuses.",
    "Write a short birthday message for a colleague.",
    "Recommend a board game for a family evening.",
    "Describe the colour blue to a child.",
    "Suggest three toppings for a pizza.",
    "Write one sentence welcoming new members to a book club.",
    "Name a good title for a gardening blog.",
];

const EASY: &str = "Thanks, that's all I needed!";
const HARD: &str =
    "Design a lock-free concurrent hash map in C++ with safe memory reclamation, and prove it linearizable.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_limits_budgets_cooldowns_pins_and_one_log() {
    let Pair { pg, redis, fake, a, b, dir: _dir } = pair().await;
    fake.modes.lock().unwrap().insert("broken".into(), Mode::Fail500);
    let replicas = [&a, &b];
    let mut sent = 0;

    // rpm = 20 across both replicas: exactly 20 answers, then 429s with retry-after.
    let mut answered = 0;
    for i in 0..26 {
        let (status, h, v) = chat(replicas[i % 2], "metered-key", "switchyard", &format!("Question {i}?")).await;
        sent += 1;
        match status {
            StatusCode::OK => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
                assert!(header(&h, "retry-after").parse::<u64>().unwrap() >= 1);
                assert!(i >= 20, "request {i} was refused before the 20th");
            }
            other => panic!("request {i}: {other} {v}"),
        }
    }
    assert_eq!(answered, 20, "rpm = 20 lets exactly 20 through across both replicas");

    // budget_usd = 0.00005 at $0.000011 a call: five calls are admitted (the fifth crosses it), the sixth is not.
    let mut paid = 0;
    for i in 0..8 {
        let (status, _, v) = chat(replicas[i % 2], "budgeted-key", "switchyard", &format!("Budget {i}?")).await;
        sent += 1;
        if status == StatusCode::OK {
            paid += 1;
        } else {
            assert_eq!((status, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("budget_exceeded")));
        }
    }
    assert_eq!(paid, 5, "the budget is exact to one request across both replicas");

    // A deployment that failed through A is in cooldown for B: B goes straight to the other one.
    let (status, h, v) = chat(&a, "open-key", "flaky", "Hello?").await;
    sent += 1;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (header(&h, "x-switchyard-deployment"), header(&h, "x-switchyard-fallbacks")),
        ("flaky-b".into(), "1".into())
    );
    let broken_calls = fake.calls.lock().unwrap().get("broken").copied();
    let (status, h, v) = chat(&b, "open-key", "flaky", "Hello again?").await;
    sent += 1;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (header(&h, "x-switchyard-deployment"), header(&h, "x-switchyard-fallbacks")),
        ("flaky-b".into(), "0".into())
    );
    assert_eq!(fake.calls.lock().unwrap().get("broken").copied(), broken_calls, "B skipped the cooling deployment");

    // A conversation moves between replicas turn by turn and keeps its pin: it starts cheap on A, escalates on
    // B, and the easy third turn on A is held on the strong model.
    let mut history: Vec<Value> = Vec::new();
    let mut said = Vec::new();
    for (i, turn) in [EASY, HARD, EASY].iter().enumerate() {
        if i > 0 {
            history.push(json!({"role": "assistant", "content": "Here you go."}));
        }
        history.push(json!({"role": "user", "content": turn}));
        let body = json!({"messages": history});
        let (status, _, text) =
            call(replicas[i % 2], "POST", "/v1/route", "open-key", &[("x-session-id", "conv-1")], body).await;
        sent += 1;
        assert_eq!(status, StatusCode::OK, "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        said.push((v["model"].as_str().unwrap().to_string(), v["session"]["action"].clone()));
    }
    let (cheap, strong) = (said[0].0.clone(), said[1].0.clone());
    assert_ne!(cheap, strong, "the default router must tell an easy turn from a hard one");
    assert_eq!(said[0].1, json!("started"));
    assert_eq!(said[1].1, json!({"escalated": {"from": cheap}}), "B saw the pin A made");
    assert_eq!(said[2], (strong.clone(), json!({"held": {"cheaper_turns": 1}})), "A saw B's escalation");

    // Scored traffic, answered by one replica and scored through the other: the small model fails at
    // sums, the big one never does.
    let mut scored = 0;
    for model in ["gpt-4o", "llama-3.1-8b-instruct"] {
        for (i, prompt) in PROMPTS.iter().enumerate() {
            let (status, h, _) = chat(replicas[i % 2], "open-key", model, prompt).await;
            sent += 1;
            assert_eq!(status, StatusCode::OK);
            let sums = prompt.starts_with("What is");
            let score = if model == "gpt-4o" || !sums { 1.0 } else { 0.0 };
            let body = json!({"request_id": header(&h, "x-switchyard-request-id"), "score": score});
            let (status, _, text) = call(replicas[(i + 1) % 2], "POST", "/v1/feedback", "open-key", &[], body).await;
            assert_eq!(status, StatusCode::OK, "feedback through the other replica finds the request: {text}");
            scored += 1;
        }
    }

    // Every request from both replicas is one row in PostgreSQL.
    for r in replicas {
        r.log.as_ref().unwrap().flush();
    }
    let (rows, distinct, keys) = tokio::task::spawn_blocking({
        let pg_url = pg.url.clone();
        move || {
            let mut db = switchyard_store::Database::open(&switchyard_store::Location::Postgres(pg_url)).unwrap();
            let mut ids = std::collections::BTreeSet::new();
            let mut keys = std::collections::BTreeMap::<String, usize>::new();
            switchyard_store::LogRows::each_logged(&mut db, i64::MIN, &mut |r| {
                ids.insert(r.record.request_id.clone());
                *keys.entry(r.record.api_key.clone().unwrap_or_default()).or_default() += 1;
            })
            .unwrap();
            (db.count().unwrap(), ids.len(), keys)
        }
    })
    .await
    .unwrap();
    assert_eq!((rows, distinct), (sent, sent as usize), "one row per request, none twice");
    assert_eq!((keys["metered"], keys["budgeted"]), (26, 8), "refused requests are rows too");

    // `logs export` from PostgreSQL feeds `train`.
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export.jsonl");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .current_dir(work.path())
            .env("HF_HUB_OFFLINE", "1")
            .env("SWITCHYARD_MODEL_DIR", common::workspace_root().join("models/all-MiniLM-L6-v2"))
            .output()
            .unwrap()
    };
    let out = cli(&["logs", "export", "--db", &pg.url, "--out", export.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&export).unwrap().lines().count(), scored);
    let trained = work.path().join("router");
    let cache = work.path().join("cache");
    let out = cli(&[
        "train",
        "--logs",
        export.to_str().unwrap(),
        "--out",
        trained.to_str().unwrap(),
        "--predictor",
        "logistic",
        "--quiet",
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "train on the export failed: {}", String::from_utf8_lossy(&out.stderr));
    let router = Router::load(&trained).unwrap();
    let mut models: Vec<String> = router.manifest.models.iter().map(|m| m.model.clone()).collect();
    models.sort();
    assert_eq!(models, ["gpt-4o", "llama-3.1-8b-instruct"]);
    drop(redis);
}

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
    let mut answered = 0;
    for i in 0..24 {
        let (status, _, _) = chat([&a, &b][i % 2], "metered-key", "switchyard", &format!("After {i}?")).await;
        answered += usize::from(status == StatusCode::OK);
    }
    assert_eq!(answered, 20, "after the outage the count is shared again (Redis restarted empty)");
    let rpm_key = redis.query(&["EXISTS", "switchyard:key:{metered}:rpm"]);
    assert_eq!(rpm_key, "int(1)");
}

#[test]
fn an_unreachable_redis_is_an_error_when_required_and_a_degraded_start_otherwise() {
    let pg = Postgres::start();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hunter2@127.0.0.1:{closed}");
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (addr, _) = runtime.block_on(upstream::start());
    let build = |extra: &str| {
        let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
        let text = format!(
            "[log]\nurl = \"{}\"\nspool = {:?}\n[state]\nurl = \"{url}\"\n{extra}\n{}\n{}",
            pg.url,
            dir.path().join("spool.sqlite").display().to_string(),
            keys(),
            upstream::catalog(addr)
        );
        let config = Config::parse(&text, Path::new("replica.toml")).unwrap_or_else(|e| panic!("{e}"));
        let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
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
    let redis = Redis::start_on(closed, Some("hunter2"));
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
    let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
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
    let router = || Router::load(&common::workspace_root().join("models/default")).unwrap();
    let text = |name: &str| {
        format!(
            "[server]\ncooldown_failures = 1\ncooldown_ms = 60000\n[log]\nurl = \"{}\"\nspool = {:?}\n\
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
        let encoder = MiniLm::load(common::model_files(), EncoderOptions::default()).unwrap();
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
