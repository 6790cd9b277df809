//! The full loop, with real processes: serve → requests → feedback → `logs export` → `train` → a hot reload
//! (SIGHUP) that swaps in the new router while a request is in flight; and decision-log rows surviving a
//! server killed with SIGKILL.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_store::Store;
use switchyard_testkit::upstream::{self, Mode};

const MODELS: [&str; 3] = ["gpt-4o", "gpt-4o-mini", "llama-3.1-8b-instruct"];

const MATH: [&str; 10] = [
    "What is 17 * 23?",
    "Solve for x: 3x + 7 = 22.",
    "What is the derivative of x^3 * sin(x)?",
    "Integrate 2x * e^(x^2) dx.",
    "How many primes are there below 50?",
    "What is the sum of the first 100 positive integers?",
    "Factor x^2 - 5x + 6.",
    "What is 2 to the power of 20?",
    "Find the roots of x^2 + 4x + 5 = 0.",
    "What is the least common multiple of 12 and 18?",
];

const CHAT: [&str; 10] = [
    "Write a haiku about rain.",
    "Suggest a name for a friendly cat.",
    "Say good morning in French.",
    "Give me a fun fact about octopuses.",
    "Write a short birthday message for a colleague.",
    "What is a good title for a blog post about gardening?",
    "Recommend a board game for a family evening.",
    "Describe the colour blue to a child.",
    "Write one sentence welcoming new members to a book club.",
    "Suggest three toppings for a pizza.",
];

fn switchyard(args: &[&str], cwd: &Path) -> (bool, String, String) {
    let out = switchyard_testkit::cli(crate::BIN).args(args).current_dir(cwd).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ready(client: &reqwest::Client, base: &str) -> Value {
    client.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// Long: one end-to-end scenario on a real process; each step needs the state the one before left.
async fn serve_feedback_export_train_and_hot_reload() {
    switchyard_testkit::model_files();
    let (upstream_addr, fake) = upstream::start().await;
    let work = tempfile::tempdir().unwrap();
    let router_dir = work.path().join("router");
    std::fs::create_dir(&router_dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(switchyard_testkit::default_router().join(f), router_dir.join(f)).unwrap();
    }
    let tables = format!("[router]\npath = {router_dir:?}\n");
    let server =
        switchyard_testkit::serve::spawn_with(crate::BIN, "first_byte_timeout_ms = 10000", &tables, upstream_addr)
            .await;
    let db = server.dir.path().join("decisions.sqlite");
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // Traffic: every prompt to each of three models, plus routed requests; feedback on the model calls.
    // The small model fails at maths, the big one never does.
    let mut scored = 0;
    let mut last_id = String::new();
    for model in MODELS {
        for (i, prompt) in MATH.iter().chain(CHAT.iter()).enumerate() {
            let body =
                json!({"model": model, "messages": [{"role": "user", "content": prompt}], "user": format!("u{i}")});
            let response = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
            assert_eq!(response.status(), reqwest::StatusCode::OK);
            let id = response.headers()["x-switchyard-request-id"].to_str().unwrap().to_string();
            let math = i < MATH.len();
            let score = match model {
                "gpt-4o" => 1.0,
                "gpt-4o-mini" if math => [1.0, 0.0][i % 2],
                _ if math => 0.0,
                _ => 1.0,
            };
            let feedback = json!({"request_id": id, "score": score});
            let answer: Value =
                client.post(format!("{base}/v1/feedback")).json(&feedback).send().await.unwrap().json().await.unwrap();
            assert_eq!(answer["status"], "recorded", "{answer}");
            scored += 1;
            last_id = id;
        }
    }
    for prompt in ["Tell me a joke.", "What is 9 * 9?"] {
        let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": prompt}]});
        let response = client.post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }

    // `logs stats` and `logs export` read the live database.
    let cwd = work.path();
    let db_arg = db.to_str().unwrap();
    let (ok, stdout, stderr) = switchyard(&["logs", "stats", "--db", db_arg], cwd);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with(&format!("{} requests, {scored} with feedback", scored + 2)), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("gpt-4o ") && l.contains(" 20 ")), "{stdout}");
    let export = work.path().join("export.jsonl");
    let (ok, _, stderr) = switchyard(&["logs", "export", "--db", db_arg, "--out", export.to_str().unwrap()], cwd);
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("{scored} rows written")) && stderr.contains("2 without feedback"), "{stderr}");
    let rows = std::fs::read_to_string(&export).unwrap();
    assert_eq!(rows.lines().count(), scored);
    // The answers are exported for an offline judge (and `logs show` prints one request whole).
    assert!(rows.lines().all(|l| l.contains("\"response\":\"hello from ") && l.contains("\"finish_reason\":\"stop\"")));
    let (ok, shown, stderr) = switchyard(&["logs", "show", &last_id, "--db", db_arg], cwd);
    assert!(ok, "{stderr}");
    for part in
        [format!("request   {last_id}"), "answer\n    hello from ".into(), "feedback  1".into(), "attempt 1 ".into()]
    {
        assert!(shown.contains(&part), "{part:?} in\n{shown}");
    }
    // `logs failures`: the small model's maths answers all scored 0 while the router expected better, so that
    // (model, domain) comes first, with its failing requests as examples.
    let router_arg = router_dir.to_str().unwrap();
    let failures = ["logs", "failures", "--db", db_arg, "--router", router_arg, "--min-requests", "5", "--cache-dir"];
    let cache_arg = work.path().join("cache");
    let mut args = failures.to_vec();
    args.extend([cache_arg.to_str().unwrap(), "--json", "--clusters", "2"]);
    let (ok, stdout, stderr) = switchyard(&args, cwd);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["scored"], scored, "{report:#}");
    let first = &report["by_domain"][0];
    assert_eq!(
        (first["model"].as_str(), first["domain"].as_str()),
        (Some("llama-3.1-8b-instruct"), Some("math")),
        "{report:#}"
    );
    assert_eq!(first["observed"], 0.0);
    assert!(first["gap_ci"]["hi"].as_f64().unwrap() < 0.0, "{first}");
    let examples: Vec<&str> = first["examples"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(examples.len(), 3);
    // Each example is a maths request the small model answered.
    for id in &examples {
        let (ok, shown, stderr) = switchyard(&["logs", "show", id, "--db", db_arg, "--json"], cwd);
        assert!(ok, "{stderr}");
        let shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(shown["chosen_model"], "llama-3.1-8b-instruct");
        assert!(MATH.contains(&shown["prompt"].as_str().unwrap()), "{shown}");
        assert_eq!(shown["feedback"], 0.0);
    }
    // Of two clusters of the prompts (which split short prompts by more than their topic), the worst is the
    // small model's, below its prediction.
    let cluster = &report["by_cluster"][0];
    assert_eq!(cluster["model"], "llama-3.1-8b-instruct", "{report:#}");
    assert!(cluster["gap"].as_f64().unwrap() < 0.0, "{cluster}");
    // The table says the same, and --model keeps one model's groups.
    let mut args = failures.to_vec();
    args.extend([cache_arg.to_str().unwrap(), "--model", "gpt-4o"]);
    let (ok, stdout, stderr) = switchyard(&args, cwd);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("by domain and complexity band") && stdout.contains("by cluster"), "{stdout}");
    assert!(stdout.contains("  gpt-4o ") && !stdout.contains("llama-3.1-8b-instruct "), "{stdout}");
    let (ok, _, stderr) = switchyard(&["logs", "show", "sy-nope", "--db", db_arg], cwd);
    assert!(!ok && stderr.contains("no request \"sy-nope\""), "{stderr}");
    let (ok, _, stderr) =
        switchyard(&["logs", "export", "--db", db_arg, "--since", "2000-01-01T00:00:00Z", "--out", "-"], cwd);
    assert!(ok && stderr.contains(&format!("{scored} rows written")), "{stderr}");

    // Bad input to `logs`: a missing database and an unreadable --since say what is wrong.
    let (ok, _, stderr) = switchyard(&["logs", "stats", "--db", "/nonexistent/decisions.sqlite"], cwd);
    assert!(!ok && stderr.contains("no decision log at /nonexistent/decisions.sqlite"), "{stderr}");
    let (ok, _, stderr) = switchyard(&["logs", "export", "--db", db_arg, "--since", "yesterday", "--out", "-"], cwd);
    assert!(!ok && stderr.contains("cannot read \"yesterday\" as a time"), "{stderr}");

    // Train a router on the exported logs.
    let new_router = work.path().join("new-router");
    let cache = work.path().join("cache");
    let (ok, _, stderr) = switchyard(
        &[
            "train",
            "--logs",
            export.to_str().unwrap(),
            "--out",
            new_router.to_str().unwrap(),
            "--predictor",
            "logistic",
            "--quiet",
            "--cache-dir",
            cache.to_str().unwrap(),
        ],
        cwd,
    );
    assert!(ok, "train failed: {stderr}");

    // A request is in flight (its upstream takes 3 s) while the new router is swapped in with SIGHUP.
    let before = ready(&client, &base).await;
    assert_eq!(before["router_generation"], 1);
    // Every upstream now takes 3 s; the in-flight request is routed by the old router.
    for m in switchyard_core::Router::load(&router_dir).unwrap().manifest.models {
        fake.modes.lock().unwrap().insert(m.model, Mode::Slow);
    }
    let calls = fake.total_calls();
    let in_flight = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/v1/chat/completions"));
        async move {
            let body = json!({"model": "switchyard", "messages": [{"role": "user", "content": "Take your time."}]});
            client.post(url).json(&body).send().await
        }
    });
    // It was routed (by the old router) once it reaches the upstream.
    fake.until_calls(calls + 1).await;
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(new_router.join(f), router_dir.join(f)).unwrap();
    }
    assert!(Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap().success());
    let mut after = before.clone();
    for _ in 0..1200 {
        after = ready(&client, &base).await;
        if after["router_generation"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after["router_generation"], 2, "no reload: {}", server.log());
    assert_ne!(after["router_fingerprint"], before["router_fingerprint"]);
    assert_eq!(after["models"], 3);
    let response = in_flight.await.unwrap().expect("the in-flight request was dropped by the reload");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(response.text().await.unwrap().contains("hello from"));

    // The new router decides among the three models it learned, from what the feedback taught it.
    let decision: Value = client
        .post(format!("{base}/v1/route"))
        .json(&json!({"prompt": "Solve for y: 5y - 3 = 12.", "min_quality": 0.8}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let estimates = decision["models"].as_array().unwrap();
    assert_eq!(estimates.len(), 3, "{decision}");
    let p = |m: &str| estimates.iter().find(|e| e["model"] == m).unwrap()["p_success"].as_f64().unwrap();
    assert!(p("gpt-4o") > p("llama-3.1-8b-instruct"), "{decision}");
    assert!(server.log().contains("router reloaded"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_rows_survive_a_killed_server() {
    switchyard_testkit::model_files();
    let (upstream_addr, _fake) = upstream::start().await;
    let mut server = switchyard_testkit::serve::spawn(crate::BIN, "", upstream_addr).await;
    let db = server.dir.path().join("decisions.sqlite");
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", server.base);
    let send = |i: usize| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let body =
                json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("Question {i}")}]});
            client.post(url).json(&body).send().await
        }
    };
    for i in 0..30 {
        assert_eq!(send(i).await.unwrap().status(), reqwest::StatusCode::OK);
    }
    // The rows are committed (another connection sees them) while the server runs.
    let mut committed = 0;
    for _ in 0..1200 {
        committed = Store::open(&db).unwrap().count().unwrap();
        if committed == 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(committed, 30);
    // Kill it with SIGKILL in the middle of a burst of writes: once rows of the burst are being committed.
    let burst: Vec<_> = (30..230).map(|i| tokio::spawn(send(i))).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while Store::open(&db).unwrap().count().unwrap() <= 30 {
        assert!(std::time::Instant::now() < deadline, "no row of the burst was committed within 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for b in burst {
        let _ = b.await;
    }
    let store = Store::open(&db).unwrap();
    store.integrity_check().unwrap();
    let count = store.count().unwrap();
    assert!(count >= 30, "{count} rows after the kill");
    let mut read = 0;
    store.for_each(i64::MIN, |r| read += usize::from(r.record.chosen_model.as_deref() == Some("gpt-4o-mini"))).unwrap();
    assert_eq!(read as u64, count);
}

/// `logs failures` on a log with nothing it can analyse says so, with what it found instead and what to do.
#[test]
fn logs_failures_with_nothing_to_analyse_says_what_it_found() {
    use switchyard_store::{Attempt, DecisionRecord, Feedback, PromptLogging};
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("decisions.sqlite");
    let answered = |id: &str, logging| {
        let mut r = DecisionRecord {
            request_id: id.into(),
            ts_ms: switchyard_store::now_ms(),
            endpoint: "chat".into(),
            status: 200,
            chosen_model: Some("gpt-4o".into()),
            attempts: vec![Attempt {
                model: "gpt-4o".into(),
                deployment: None,
                status: Some(200),
                latency_ms: 9.0,
                error: None,
            }],
            ..DecisionRecord::default()
        };
        r.set_prompt("What is 2 + 2?", logging);
        r
    };
    let mut store = Store::open(&db).unwrap();
    store.insert(&[answered("unscored", PromptLogging::Full), answered("hashed", PromptLogging::Hash)]).unwrap();
    store
        .feedback(&Feedback { request_id: "hashed".into(), api_key: None, score: 1.0, comment: None, ts_ms: 1 })
        .unwrap();
    drop(store);
    let router = switchyard_testkit::default_router();
    let args = ["logs", "failures", "--db", db.to_str().unwrap(), "--router", router.to_str().unwrap()];
    let (ok, _, stderr) = switchyard(&args, work.path());
    assert!(!ok, "nothing to analyse is an error");
    assert!(stderr.contains("nothing to analyse"), "{stderr}");
    assert!(
        stderr.contains("1 answered without feedback, 1 scored with the prompt logged as a hash only, 0 unanswered"),
        "{stderr}"
    );
    assert!(stderr.contains("POST /v1/feedback"), "{stderr}");
}
