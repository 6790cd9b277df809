//! Feedback cannot be turned against other tenants (issue 26): against a real gateway (the real encoder and
//! default router, the fake upstream on a loopback port) with `[learning] online = true` and client keys.
//! Another key's request id is answered exactly as an id never issued; resending a score replaces it rather
//! than counting again; one key moves a (model, domain) cell only up to `learning.max_key_share`, rescores
//! included, and cannot flip counts banked over past windows; a `/v1/route` decision's score is stored and
//! exported marked `"routed_only"` but not learned from, nor is a request no upstream answered; and a
//! feedback takes a slot of the key's rpm. With two replicas sharing Redis (a real server), a score resent to
//! either replica still counts once (also after Redis forgets it), a key's share is counted over both, and a
//! score replayed after an outage does not replace a later one.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use switchyard_testkit::upstream;
use tower::ServiceExt;

const MODEL: &str = "gemini-2.0-flash";
const MATH: &str = "What is the derivative of x^3 * sin(x)?";

fn sha256(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A gateway with online learning on (defaults: κ = 20, max_key_share = 0.25), three keys ("attacker",
/// "victim", and "limited" with rpm = 2), every default-router model on the fake upstream at `addr`, and the
/// decision log and online state in `dir`.
fn gateway(addr: SocketAddr, dir: &Path) -> Arc<AppState> {
    replica(addr, dir, "", "online.json")
}

/// As [`gateway`], with more config (`extra`: `[learning]` keys, then other tables) and its online state in
/// `dir/state_file`.
fn replica(addr: SocketAddr, dir: &Path, extra: &str, state_file: &str) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = format!(
        "[log]\npath = {:?}\n[learning]\nonline = true\nsync_ms = 0\nstate_file = {:?}\n{extra}\n\
         [[keys]]\nname = \"attacker\"\nkey_sha256 = \"{}\"\n\
         [[keys]]\nname = \"victim\"\nkey_sha256 = \"{}\"\n\
         [[keys]]\nname = \"limited\"\nkey_sha256 = \"{}\"\nrpm = 2\n{}",
        dir.join("log.sqlite"),
        dir.join(state_file),
        sha256("attacker-key"),
        sha256("victim-key"),
        sha256("limited-key"),
        upstream::catalog(addr)
    );
    let config = Config::parse(&text, Path::new("test.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap())
}

async fn call(state: &Arc<AppState>, key: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A chat request routed to [`MODEL`] only: the gateway's response.
async fn chat(state: &Arc<AppState>, key: &str, prompt: &str) -> axum::response::Response {
    let body = json!({
        "model": "switchyard",
        "messages": [{"role": "user", "content": prompt}],
        "metadata": {"allowed_models": MODEL},
    });
    let request = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    app(state.clone()).oneshot(request).await.unwrap()
}

/// A chat request routed to [`MODEL`] only, answered by the fake upstream: its request id.
async fn answered(state: &Arc<AppState>, key: &str, prompt: &str) -> String {
    let response = chat(state, key, prompt).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-switchyard-model"], MODEL);
    response.headers()["x-switchyard-request-id"].to_str().unwrap().to_string()
}

/// A `/v1/route` decision for `prompt` by `key`: its request id and [`MODEL`]'s P(success) (online shift
/// included).
async fn route(state: &Arc<AppState>, key: &str, prompt: &str) -> (String, f64) {
    let (status, v) = call(state, key, "/v1/route", json!({"prompt": prompt, "allowed_models": [MODEL]})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let p = v["models"].as_array().unwrap().iter().find(|m| m["model"] == MODEL).unwrap()["p_success"].as_f64();
    (v["request_id"].as_str().unwrap().to_string(), p.unwrap())
}

async fn feedback(state: &Arc<AppState>, key: &str, id: &str, score: f64) -> (StatusCode, Value) {
    call(state, key, "/v1/feedback", json!({"request_id": id, "score": score})).await
}

#[tokio::test]
async fn another_keys_request_is_as_unknown_as_an_id_never_issued() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    let id = answered(&state, "attacker-key", MATH).await;
    let (status, stolen) = feedback(&state, "victim-key", &id, 0.0).await;
    let never = "sy-0000000000000000";
    let (unknown_status, unknown) = feedback(&state, "victim-key", never, 0.0).await;
    assert_eq!((status, unknown_status), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
    assert_eq!(stolen["error"]["code"], "unknown_request", "{stolen}");
    // The same answer, but for the id it names: nothing tells the other key that the id exists.
    assert_eq!(stolen.to_string().replace(&id, "ID"), unknown.to_string().replace(never, "ID"));
    // The key that made the request scores it; the refused score was never stored.
    let (status, own) = feedback(&state, "attacker-key", &id, 1.0).await;
    assert_eq!((status, own["status"].as_str(), own["updates"].as_u64()), (StatusCode::OK, Some("recorded"), Some(1)));
    assert_eq!(own["learned"], true, "{own}");
}

#[tokio::test]
async fn resending_a_score_300_times_counts_it_once() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    let (_, before) = route(&state, "victim-key", MATH).await;
    let id = answered(&state, "attacker-key", MATH).await;
    for i in 0..300 {
        let (status, v) = feedback(&state, "attacker-key", &id, 0.0).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let expected = if i == 0 { "recorded" } else { "replaced" };
        assert_eq!((v["status"].as_str(), v["learned"].as_bool()), (Some(expected), Some(true)), "{v}");
        assert_eq!(v["updates"], i + 1);
    }
    // One observation of 0 against κ = 20 pseudo-observations: the victim's P moves by a few hundredths (300
    // counted observations took it from 0.74 to 0.26).
    let (_, after) = route(&state, "victim-key", MATH).await;
    assert!(after < before, "one failure counts: {before:.3} -> {after:.3}");
    assert!(after > before - 0.05, "the victim's P(success) for {MODEL}: {before:.3} before, {after:.3} after");
    let metrics = metrics(&state).await;
    assert!(metrics.contains("switchyard_online_updates_total{source=\"feedback\"} 1\n"), "{metrics}");
}

#[tokio::test]
async fn one_key_moves_a_cell_only_up_to_its_share() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    let (_, before) = route(&state, "victim-key", MATH).await;
    let mut learned = Vec::new();
    let mut refused = None;
    for _ in 0..30 {
        let id = answered(&state, "attacker-key", MATH).await;
        let (status, v) = feedback(&state, "attacker-key", &id, 0.0).await;
        assert_eq!((status, v["status"].as_str()), (StatusCode::OK, Some("recorded")), "{v}");
        if v["learned"] == true {
            learned.push(id);
        } else {
            refused = Some(v);
        }
    }
    // At its share, the key cannot move the cell by rescoring what it counted either.
    for id in &learned {
        let (status, v) = feedback(&state, "attacker-key", id, 1.0).await;
        assert_eq!(
            (status, v["learned"].as_bool(), v["reason"].as_str()),
            (StatusCode::OK, Some(false), Some("key_share"))
        );
    }
    let learned = learned.len();
    // max_key_share = 0.25 of κ = 20 plus the key's own: about 6.7 observations' weight per domain cell.
    assert!((6..=9).contains(&learned), "{learned} of 30 feedback scores learned");
    let refused = refused.unwrap();
    assert_eq!(refused["reason"], "key_share", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("learning.max_key_share"), "{refused}");
    // A cell whose key-made share is capped at a quarter keeps its posterior above 0.75 of its prediction.
    let (_, after) = route(&state, "victim-key", MATH).await;
    assert!(after < before - 0.02, "the key's share did count: {before:.3} -> {after:.3}");
    assert!(after > 0.75 * before - 0.05, "the victim's P(success) for {MODEL}: {before:.3} before, {after:.3} after");
    let metrics = metrics(&state).await;
    let line = format!("switchyard_online_feedback_unlearned_total{{reason=\"key_share\"}} {}\n", 30);
    assert!(metrics.contains(&line), "{metrics}");
}

#[tokio::test]
async fn a_route_decisions_score_is_stored_and_exported_marked_but_not_learned() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    let (_, before) = route(&state, "victim-key", MATH).await;
    let (id, _) = route(&state, "attacker-key", MATH).await;
    for i in 0..50 {
        let (status, v) = feedback(&state, "attacker-key", &id, 0.0).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!((v["learned"].as_bool(), v["reason"].as_str()), (Some(false), Some("routed_only")), "{i}: {v}");
    }
    let (_, after) = route(&state, "victim-key", MATH).await;
    assert_eq!(before, after, "a /v1/route decision's score moved the posteriors");
    // Export writes the row, marked; the training contract still reads it.
    let store = switchyard_store::Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut out = Vec::new();
    let summary = switchyard_store::export(&store, i64::MIN, &mut out).unwrap();
    assert_eq!((summary.written, summary.routed_only), (1, 1), "{summary}");
    let row: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!((row["request_id"].as_str(), row["routed_only"].as_bool()), (Some(id.as_str()), Some(true)));
    switchyard_core::LabelledRow::parse(std::str::from_utf8(&out).unwrap().trim()).unwrap();
}

#[tokio::test]
async fn feedback_takes_a_slot_of_the_keys_rpm() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    let id = answered(&state, "limited-key", MATH).await;
    let (status, v) = feedback(&state, "limited-key", &id, 1.0).await;
    assert_eq!(status, StatusCode::OK, "the second of two slots: {v}");
    for _ in 0..48 {
        let (status, v) = feedback(&state, "limited-key", &id, 0.0).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded", "{v}");
    }
    // The refused feedback was not stored: the score is still the one sent within the limit.
    let store = switchyard_store::Store::open(&dir.path().join("log.sqlite")).unwrap();
    let mut scores = Vec::new();
    store.for_each(i64::MIN, |r| scores.push(r.feedback)).unwrap();
    assert_eq!(scores, [Some(1.0)]);
    // Another key is not held by this one's limit.
    let other = answered(&state, "victim-key", MATH).await;
    assert_eq!(feedback(&state, "victim-key", &other, 1.0).await.0, StatusCode::OK);
}

/// Two replicas sharing one decision log and one real Redis: a score resent to either counts once in the
/// shared cells, and the attacker's share of a cell is counted over both replicas, not per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_count_a_score_once_and_a_keys_share_over_both() {
    let redis = tokio::task::spawn_blocking(switchyard_testkit::redis::Redis::start).await.unwrap();
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = format!("[state]\nurl = \"{}\"\ntimeout_ms = 1000", redis.url);
    let (a, b) = (replica(addr, dir.path(), &state, "a.json"), replica(addr, dir.path(), &state, "b.json"));
    let replicas = [&a, &b];
    let (_, before) = route(&b, "victim-key", MATH).await;
    let id = answered(&a, "attacker-key", MATH).await;
    a.log.as_ref().unwrap().flush();
    for i in 0..100 {
        let (status, v) = feedback(replicas[i % 2], "attacker-key", &id, 0.0).await;
        assert_eq!((status, v["learned"].as_bool()), (StatusCode::OK, Some(true)), "{i}: {v}");
    }
    // B reads the shared cells before its next decision: one observation in all, whichever replica took it.
    let (_, after) = route(&b, "victim-key", MATH).await;
    let observations = cells(&b, "online_observations").await.iter().sum::<f64>();
    assert!(observations > 0.0 && observations <= 1.0 + 1e-9, "{observations} observations of {MODEL} on B");
    assert!(after > before - 0.05, "the victim's P(success) on B: {before:.3} before, {after:.3} after");
    // Redis holds the request's counted score (the latest), which is what made every resend a replacement.
    let scored = redis.get(&format!("switchyard:scored:{id}")).unwrap();
    assert_eq!(scored.split(' ').next().unwrap().parse::<f64>().unwrap(), 0.0, "{scored}");

    // New requests, answered by one replica and scored through the other: the share counts over both.
    let mut learned = 0;
    let shares_before = redis.query(&["KEYS", "switchyard:online:*:share:attacker"]);
    for i in 0..30 {
        let id = answered(replicas[i % 2], "attacker-key", MATH).await;
        replicas[i % 2].log.as_ref().unwrap().flush();
        let (status, v) = feedback(replicas[(i + 1) % 2], "attacker-key", &id, 0.0).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        learned += usize::from(v["learned"] == true);
    }
    // About 6.7 observations' weight for the key in all (one was counted above), not as much again per replica.
    assert!((4..=9).contains(&learned), "{learned} of 30 learned over two replicas");
    let shares = redis.query(&["KEYS", "switchyard:online:*:share:attacker"]);
    assert!(shares.contains("share:attacker"), "the key's share windows are kept in Redis: {shares} ({shares_before})");
    drop(redis);
}

/// A key that banks counts window after window (`key_share_window_s = 1`) and then flips them all from 1 to 0
/// moves the cell no further than its share of one window: a score can be replaced only within the window of
/// its count, and a replacement is charged to the key's share.
#[tokio::test]
async fn counts_banked_over_windows_cannot_be_flipped_at_once() {
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = replica(addr, dir.path(), "key_share_window_s = 1", "online.json");
    // Scores of 1 until the key's share of the cell refuses one, then new requests until one is learned again
    // (the window has passed), three windows over.
    let (mut banked, mut windows, mut refused) = (Vec::new(), 0, false);
    for _ in 0..2000 {
        let id = answered(&state, "attacker-key", MATH).await;
        let (status, v) = feedback(&state, "attacker-key", &id, 1.0).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        if v["learned"] == true {
            banked.push(id);
            refused = false;
        } else {
            assert_eq!(v["reason"], "key_share", "{v}");
            windows += usize::from(!refused);
            refused = true;
            if windows == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(windows, 3, "the key's share never refused a score");
    assert!(banked.len() > 15, "{} scores banked over three windows", banked.len());
    // Resending the last banked score as it was moves nothing; once its window has passed it is refused.
    let last = banked.last().unwrap();
    let mut closed = Value::Null;
    for _ in 0..100 {
        closed = feedback(&state, "attacker-key", last, 1.0).await.1;
        if closed["learned"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed["reason"], "rescore_closed", "{closed}");
    assert!(closed["detail"].as_str().unwrap().contains("learning.key_share_window_s"), "{closed}");
    // Flipping every banked score to 0 now moves nothing.
    let (_, before) = route(&state, "victim-key", MATH).await;
    let observed = cells(&state, "observed_success").await;
    for id in &banked {
        let (status, v) = feedback(&state, "attacker-key", id, 0.0).await;
        assert_eq!((status, v["reason"].as_str()), (StatusCode::OK, Some("rescore_closed")), "{v}");
    }
    let (_, after) = route(&state, "victim-key", MATH).await;
    assert_eq!(before, after, "{} banked scores flipped moved the victim's P(success)", banked.len());
    assert_eq!(observed, cells(&state, "observed_success").await);
}

/// A gateway request whose upstreams all failed can be scored, but is not learned from, and says why.
#[tokio::test]
async fn a_chat_request_no_upstream_answered_is_not_learned_from() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = gateway(addr, dir.path());
    fake.modes.lock().unwrap().insert(MODEL.to_string(), upstream::Mode::Fail500);
    let response = chat(&state, "attacker-key", MATH).await;
    assert!(response.status().is_server_error(), "{}", response.status());
    let id = response.headers()["x-switchyard-request-id"].to_str().unwrap().to_string();
    let (status, v) = feedback(&state, "attacker-key", &id, 0.0).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!((v["learned"].as_bool(), v["reason"].as_str()), (Some(false), Some("unanswered")), "{v}");
    assert!(!v["detail"].as_str().unwrap().contains("/v1/route"), "{v}");
    let metrics = metrics(&state).await;
    assert!(metrics.contains("switchyard_online_feedback_unlearned_total{reason=\"unanswered\"} 1\n"), "{metrics}");
    assert!(metrics.contains("switchyard_online_feedback_unlearned_total{reason=\"routed_only\"} 0\n"), "{metrics}");
}

/// With replicas, a request counts once even when a resend reaches a replica that learned of it only through
/// Redis: that replica forgets it when Redis does (with the answer's time, not the resend's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_counts_once_after_redis_forgets_it() {
    let redis = tokio::task::spawn_blocking(switchyard_testkit::redis::Redis::start).await.unwrap();
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("feedback_window_s = 3\n[state]\nurl = \"{}\"\ntimeout_ms = 1000", redis.url);
    let (a, b) = (replica(addr, dir.path(), &extra, "a.json"), replica(addr, dir.path(), &extra, "b.json"));
    let id = answered(&a, "attacker-key", MATH).await;
    a.log.as_ref().unwrap().flush();
    let (_, v) = feedback(&a, "attacker-key", &id, 1.0).await;
    assert_eq!(v["learned"], true, "{v}");
    // B learns of the request only through Redis, replacing its score a while after the count.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, v) = feedback(&b, "attacker-key", &id, 0.0).await;
    assert_eq!((v["status"].as_str(), v["learned"].as_bool()), (Some("replaced"), Some(true)), "{v}");
    // Redis forgets the request three seconds after its answer; a resend to B right after is not counted.
    redis_until(&redis, &format!("switchyard:scored:{id}"), false).await;
    let (_, v) = feedback(&b, "attacker-key", &id, 0.0).await;
    assert_eq!((v["learned"].as_bool(), v["reason"].as_str()), (Some(false), Some("not_remembered")), "{v}");
    route(&b, "victim-key", MATH).await;
    let observations = cells(&b, "online_observations").await.iter().sum::<f64>();
    assert!(observations > 0.0 && observations <= 1.0 + 1e-9, "{observations} observations of one request");
    drop(redis);
}

/// A score a replica learned while Redis was out of its reach, written to Redis after, does not replace a
/// score sent later that another replica counted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_replayed_after_an_outage_does_not_replace_a_later_one() {
    let redis = tokio::task::spawn_blocking(switchyard_testkit::redis::Redis::start).await.unwrap();
    let proxy = Proxy::start(redis.socket()).await;
    let (addr, _fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = |url: &str| format!("[state]\nurl = \"{url}\"\ntimeout_ms = 1000");
    let a = replica(addr, dir.path(), &state(&format!("redis://127.0.0.1:{}", proxy.port)), "a.json");
    let b = replica(addr, dir.path(), &state(&redis.url), "b.json");
    let id = answered(&a, "attacker-key", MATH).await;
    a.log.as_ref().unwrap().flush();
    redis_until(&redis, &format!("switchyard:observation:{id}"), true).await;
    // A loses Redis and learns a score of 1 on its own; then B counts a score of 0, sent later.
    proxy.cut();
    let (_, v) = feedback(&a, "attacker-key", &id, 1.0).await;
    assert_eq!(v["learned"], true, "{v}");
    until(&a, "switchyard_state_degraded 1\n").await;
    until(&a, "switchyard_state_unsynced_outcomes 1\n").await;
    // Scores are ordered by the millisecond they arrived in: B's arrives in a later one.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let (_, v) = feedback(&b, "attacker-key", &id, 0.0).await;
    assert_eq!(v["learned"], true, "{v}");
    // A reaches Redis again and writes its score back: Redis keeps the later one.
    proxy.mend();
    until(&a, "switchyard_state_unsynced_outcomes 0\n").await;
    until(&a, "switchyard_state_degraded 0\n").await;
    let scored = redis.get(&format!("switchyard:scored:{id}")).unwrap();
    assert_eq!(scored.split(' ').next(), Some("0"), "the replayed score replaced the later one: {scored}");
    route(&b, "victim-key", MATH).await;
    let (observations, observed) =
        (cells(&b, "online_observations").await.iter().sum::<f64>(), cells(&b, "observed_success").await);
    assert!(observations > 0.0 && observations <= 1.0 + 1e-9, "{observations} observations of one request");
    assert!(observed.iter().all(|s| s.abs() < 1e-9), "B's cells hold the later score, 0: {observed:?}");
    drop(redis);
}

/// Waits (up to 60 s) until Redis holds `key` (`present`) or no longer does.
async fn redis_until(redis: &switchyard_testkit::redis::Redis, key: &str, present: bool) {
    for _ in 0..3000 {
        if redis.get(key).is_some() == present {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("Redis {} {key}", if present { "never held" } else { "still holds" });
}

/// Waits (up to 60 s) until `state`'s metrics contain `line`.
async fn until(state: &Arc<AppState>, line: &str) {
    for _ in 0..1200 {
        if metrics(state).await.contains(line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {line:?}:\n{}", metrics(state).await);
}

/// A TCP proxy (on a loopback port it holds from the start) to Redis's unix socket that can be cut (its
/// connections closed, new ones closed as they come) and mended: one replica loses Redis while another keeps
/// it.
struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: std::path::PathBuf) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self { port, open: Arc::new(AtomicBool::new(true)), links: Arc::default() };
        let (open, links) = (proxy.open.clone(), proxy.links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !open.load(Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                links.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::UnixStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        proxy
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn mend(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// A gauge of [`MODEL`]'s online cells on a replica (`switchyard_{name}`), per domain.
async fn cells(state: &Arc<AppState>, name: &str) -> Vec<f64> {
    let prefix = format!("switchyard_{name}{{model=\"{MODEL}\",");
    let text = metrics(state).await;
    text.lines().filter(|l| l.starts_with(&prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).collect()
}

async fn metrics(state: &Arc<AppState>) -> String {
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}
