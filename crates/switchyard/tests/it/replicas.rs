//! Two replicas sharing one PostgreSQL (the decision log) and one Redis (limits, budgets, health, session
//! pins), both real servers started for the test, each on a unix socket. Each replica is a full server state
//! of its own (its own counters, health, pins and log writer), as two processes would have; the requests
//! alternate between them, or go to both at once. Without the shared state each replica would count on its own
//! and every assertion below would fail. The log they share feeds `logs export` and `train`. (Outages of Redis
//! and PostgreSQL under two replicas are in switchyard-server's `replicas` tests.)

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_testkit::replicas::{burst, call, chat, header, pair, Pair};
use switchyard_testkit::upstream::Mode;

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
// Long: one scenario on two real replicas sharing Redis and PostgreSQL; each step builds on the last.
async fn two_replicas_share_limits_budgets_cooldowns_pins_and_one_log() {
    let Pair { pg, redis, fake, a, b, dir: _dir } = pair().await;
    fake.modes.lock().unwrap().insert("broken".into(), Mode::Fail500);
    let replicas = [&a, &b];
    let mut sent = 0;

    // rpm = 20 across both replicas: of 26 requests sent at once, half through each, exactly 20 are answered;
    // the others get 429 with retry-after.
    let mut answered = 0;
    for (i, (status, h, v)) in burst(&replicas, "metered-key", 26, "Question").await.into_iter().enumerate() {
        sent += 1;
        match status {
            StatusCode::OK => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
                assert!(header(&h, "retry-after").parse::<u64>().unwrap() >= 1);
            }
            other => panic!("request {i}: {other} {v}"),
        }
    }
    assert_eq!(answered, 20, "rpm = 20 lets exactly 20 of a burst of 26 through across both replicas");

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
    let cli = |args: &[&str]| switchyard_testkit::cli(crate::BIN).args(args).current_dir(work.path()).output().unwrap();
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
