//! Online learning across two replicas sharing one PostgreSQL (the decision log) and one Redis, both real
//! servers started for the test: outcomes learned on one replica move the other's estimates, feedback sent to
//! either is learned, and outcomes learned while Redis is down reach the other replica once it is back.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_server::AppState;
use switchyard_testkit::pg::Postgres;
use switchyard_testkit::redis::Redis;
use switchyard_testkit::replicas::{call, header, metric, replica, until_metric};
use switchyard_testkit::upstream;

const MODEL: &str = "llama-3.1-8b-instruct";

/// Two replicas with online learning on (read back from Redis before every decision), sharing `pg` and
/// `redis`.
struct Learners {
    pg: Postgres,
    redis: Redis,
    a: Arc<AppState>,
    b: Arc<AppState>,
    _fake: Arc<upstream::Fake>,
    _dir: tempfile::TempDir,
}

async fn learners() -> Learners {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = |name: &str| {
        let learning = format!(
            "[learning]\nonline = true\nsync_ms = 0\nprior_strength = 10\nmax_key_share = 1\nstate_file = {:?}\n",
            dir.path().join(format!("{name}-online.json"))
        );
        replica(addr, &pg, &redis.url, &dir.path().join(format!("{name}-spool.sqlite")), &learning)
    };
    let (a, b) = (state("a"), state("b"));
    Learners { pg, redis, a, b, _fake: fake, _dir: dir }
}

/// Routes `prompt` on `state` restricted to [`MODEL`]: (request id, MODEL's P(success)).
async fn route(state: &Arc<AppState>, prompt: &str) -> (String, f64) {
    let body = json!({"prompt": prompt, "allowed_models": [MODEL]});
    let (status, _, text) = call(state, "POST", "/v1/route", "open-key", &[], body).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let p = v["models"].as_array().unwrap().iter().find(|m| m["model"] == MODEL).unwrap()["p_success"].as_f64();
    (v["request_id"].as_str().unwrap().to_string(), p.unwrap())
}

/// Sends `prompt` 30 times through `decider`'s gateway, routed to [`MODEL`] only, and each answered request's
/// feedback `score` to `judge` (online learning learns only from requests an upstream answered).
async fn feed_back(decider: &Arc<AppState>, judge: &Arc<AppState>, prompt: &str, score: u8) {
    for _ in 0..30 {
        let body = json!({
            "model": "switchyard",
            "messages": [{"role": "user", "content": prompt}],
            "metadata": {"allowed_models": MODEL},
        });
        let (status, h, text) = call(decider, "POST", "/v1/chat/completions", "open-key", &[], body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let id = header(&h, "x-switchyard-request-id");
        let (status, _, text) =
            call(judge, "POST", "/v1/feedback", "open-key", &[], json!({"request_id": id, "score": score})).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        assert!(text.contains("\"learned\":true"), "{text}");
    }
}

/// MODEL's P(success) on `state` once `moved` holds for it, or the last one read after 100 tries (outcomes
/// reach Redis in the background; the replica reads them back before its next decision).
async fn p_once(state: &Arc<AppState>, prompt: &str, moved: impl Fn(f64) -> bool) -> f64 {
    let mut p = f64::NAN;
    for _ in 0..100 {
        p = route(state, prompt).await.1;
        if moved(p) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

/// Online learning shared through Redis: failures fed back through replica A lower the model's P(success) on
/// replica B, which never saw them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_posteriors_are_shared_between_replicas() {
    const PROMPT: &str = "What is the derivative of x^3 * sin(x)?";
    let Learners { pg, redis, a, b, .. } = learners().await;
    let (_, before) = route(&b, PROMPT).await;
    feed_back(&a, &a, PROMPT, 0).await;
    let after = p_once(&b, PROMPT, |p| p < before - 0.2).await;
    assert!(after < before - 0.2, "replica B's P(success) for {MODEL}: {before:.3} before, {after:.3} after");
    // Feedback sent to B for requests A answered is learned too: A kept each prediction in Redis.
    let (_, low) = route(&a, PROMPT).await;
    feed_back(&a, &b, PROMPT, 1).await;
    let recovered = p_once(&a, PROMPT, |p| p > low + 0.1).await;
    assert!(
        recovered > low + 0.1,
        "feedback of 1 sent to B for A's requests: A's P(success) for {MODEL} went from {low:.3} to {recovered:.3}"
    );
    let metrics = call(&b, "GET", "/metrics", "open-key", &[], Value::Null).await.2;
    assert!(
        metrics.lines().any(|l| l.starts_with("switchyard_online_updates_total{source=\"feedback\"} 30")),
        "B counts the 30 feedback scores it learned from: {}",
        metrics.lines().filter(|l| l.contains("online_updates")).collect::<Vec<_>>().join("\n")
    );
    drop((pg, redis));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_learned_while_redis_is_down_reach_the_other_replica_after() {
    const PROMPT: &str = "Integrate x * e^x from 0 to 1.";
    let Learners { pg, redis, a, b, .. } = learners().await;
    let (_, before) = route(&b, PROMPT).await;

    // Redis dies; A learns 30 failures on its own (PostgreSQL still takes the feedback).
    let redis = tokio::task::spawn_blocking(move || {
        redis.kill();
        redis
    })
    .await
    .unwrap();
    feed_back(&a, &a, PROMPT, 0).await;
    assert_eq!(metric(&a, "switchyard_state_degraded").await, Some(1.0));
    // Each outcome goes to the shared state in a task of its own: all 30 are kept.
    until_metric(&a, "switchyard_state_unsynced_outcomes", 30.0).await;
    let (_, on_a) = route(&a, PROMPT).await;
    assert!(on_a < before - 0.2, "A routes on what it learned: {before:.3} before, {on_a:.3} on A");
    let (_, on_b) = route(&b, PROMPT).await;
    assert!((on_b - before).abs() < 1e-9, "B cannot know yet: {before:.3} before, {on_b:.3} during the outage");

    // Redis is back, empty: A writes the outcomes it kept, and B reads them.
    let redis = tokio::task::spawn_blocking(move || {
        redis.start_again();
        redis
    })
    .await
    .unwrap();
    until_metric(&a, "switchyard_state_degraded", 0.0).await;
    until_metric(&a, "switchyard_state_unsynced_outcomes", 0.0).await;
    until_metric(&b, "switchyard_state_degraded", 0.0).await;
    let after = p_once(&b, PROMPT, |p| p < before - 0.2).await;
    assert!(after < before - 0.2, "B after the outage: {before:.3} before, {after:.3} after");
    drop((pg, redis));
}
