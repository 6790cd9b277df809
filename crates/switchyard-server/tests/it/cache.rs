//! The response cache (`[cache]`): the default similarity measured on the paraphrase sets with the real encoder,
//! and the cache through the gateway against the stand-in upstream — exact and reworded hits, near misses,
//! keys kept apart, sampling and `cache-control`, streams both ways, the Messages API, the decision log and
//! the metrics — and two replicas sharing answers through a real Redis.

use std::sync::Arc;

use serde_json::{json, Value};
use switchyard_encoder::Encoder;
use switchyard_server::cache::config::DEFAULT_SIMILARITY;
use switchyard_server::cache::guard;
use switchyard_server::{AppState, Config};
use switchyard_testkit::redis::Redis;
use switchyard_testkit::replicas::{call, digest, header, metric};
use switchyard_testkit::upstream::{self, Fake, Mode};

/// Hits of one kind of pair at a similarity: (hits, pairs).
fn hits(pairs: &[(Value, f32)], kind: &str, similarity: f32) -> (usize, usize) {
    let of_kind: Vec<&(Value, f32)> = pairs.iter().filter(|(p, _)| p["kind"] == kind).collect();
    let hit = of_kind
        .iter()
        .filter(|(p, cosine)| {
            *cosine >= similarity && guard::compatible(p["a"].as_str().unwrap(), p["b"].as_str().unwrap())
        })
        .count();
    (hit, of_kind.len())
}

/// Every pair of a paraphrase file with the cosine of its prompts' routing embeddings.
fn scored(file: &str) -> Vec<(Value, f32)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(file);
    let pairs: Vec<Value> =
        std::fs::read_to_string(&path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<&str> = pairs.iter().flat_map(|p| [p["a"].as_str().unwrap(), p["b"].as_str().unwrap()]).collect();
    let embeddings = switchyard_testkit::encoder().embed_batch(&texts).unwrap();
    pairs
        .into_iter()
        .zip(embeddings.chunks(2))
        .map(|(p, e)| (p, switchyard_core::dot(&e[0].vector, &e[1].vector)))
        .collect()
}

#[test]
fn the_default_similarity_serves_most_rewordings_and_few_near_misses() {
    for file in ["cache-paraphrases.jsonl", "cache-paraphrases-holdout.jsonl"] {
        let pairs = scored(file);
        println!("{file}: similarity, reword hits, near-miss hits (cosine alone, then with the lexical guard)");
        for similarity in [0.75, 0.80, 0.85, 0.90, 0.95] {
            let alone = |kind: &str| pairs.iter().filter(|(p, c)| p["kind"] == kind && *c >= similarity).count();
            let (reword, n_reword) = hits(&pairs, "reword", similarity);
            let (near, n_near) = hits(&pairs, "near_miss", similarity);
            println!(
                "  {similarity:.2}: alone {}/{n_reword} and {}/{n_near}; guarded {reword}/{n_reword} and {near}/{n_near}",
                alone("reword"),
                alone("near_miss")
            );
        }
        let (reword, n_reword) = hits(&pairs, "reword", DEFAULT_SIMILARITY);
        let (near, n_near) = hits(&pairs, "near_miss", DEFAULT_SIMILARITY);
        // The goal, on the set the default was chosen on: at most 1% of near misses served from the cache. The
        // held-out set (written after the guard) measured 2 of 80 at the default: both keep every word (a
        // plural, a word that also occurs earlier in a long prompt); more would be a regression.
        let allowed = if file.contains("holdout") { 2 } else { n_near / 100 };
        assert!(near <= allowed, "{file}: {near} of {n_near} near misses hit at {DEFAULT_SIMILARITY}");
        assert!(reword * 2 >= n_reword, "{file}: only {reword} of {n_reword} rewordings hit at {DEFAULT_SIMILARITY}");
    }
}

/// Two keys (`team-a`, `team-b`) with their secrets `a-key` and `b-key`.
fn keys() -> String {
    format!(
        "[[keys]]\nname = \"team-a\"\nkey_sha256 = \"{}\"\n[[keys]]\nname = \"team-b\"\nkey_sha256 = \"{}\"\n",
        digest("a-key"),
        digest("b-key")
    )
}

/// A server with the cache on (semantic), every catalog model on the stand-in upstream at `addr`.
fn server(addr: std::net::SocketAddr, dir: &std::path::Path, extra: &str) -> Arc<AppState> {
    let router = switchyard_core::Router::load(&switchyard_testkit::default_router()).unwrap();
    let text = format!(
        "[log]\npath = {:?}\n[cache]\nmode = \"semantic\"\n{extra}\n{}\n{}",
        dir.join("decisions.sqlite").display().to_string(),
        keys(),
        upstream::catalog(addr)
    );
    let config = Config::parse(&text, std::path::Path::new("cache.toml")).unwrap_or_else(|e| panic!("{e}"));
    let encoder = switchyard_encoder::MiniLm::load(
        switchyard_testkit::model_files(),
        switchyard_encoder::EncoderOptions::default(),
    )
    .unwrap();
    Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap_or_else(|e| panic!("{e}")))
}

/// A catalog model of the default router (requests that name it are not routed, so their scope is fixed).
fn a_model() -> String {
    let router = switchyard_core::Router::load(&switchyard_testkit::default_router()).unwrap();
    router.manifest.models[0].model.clone()
}

fn chat(model: &str, prompt: &str, temperature: f64, stream: bool) -> Value {
    json!({"model": model, "temperature": temperature, "stream": stream,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": prompt}]})
}

/// Sends a chat request: (cache header, request id, body text).
async fn ask(state: &Arc<AppState>, key: &str, headers: &[(&str, &str)], body: Value) -> (String, String, String) {
    let (status, h, text) = call(state, "POST", "/v1/chat/completions", key, headers, body).await;
    assert_eq!(status, 200, "{text}");
    (header(&h, "x-switchyard-cache"), header(&h, "x-switchyard-request-id"), text)
}

fn calls(fake: &Fake) -> usize {
    fake.total_calls()
}

#[tokio::test]
async fn repeated_and_reworded_requests_are_served_from_the_cache_and_near_misses_are_not() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = server(addr, dir.path(), "");
    let model = a_model();
    let first = chat(&model, "What is the capital of France?", 0.0, false);
    let (cache, miss_id, answer) = ask(&state, "a-key", &[], first.clone()).await;
    assert_eq!((cache.as_str(), calls(&fake)), ("miss", 1));
    let (cache, hit_id, again) = ask(&state, "a-key", &[], first.clone()).await;
    assert_eq!((cache.as_str(), calls(&fake)), ("hit", 1), "the same request");
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), serde_json::from_str::<Value>(&answer).unwrap());
    let reworded = chat(&model, "what's the capital of France?", 0.0, false);
    assert_eq!(ask(&state, "a-key", &[], reworded).await.0, "hit", "a rewording");
    assert_eq!(calls(&fake), 1);

    // Near misses, other keys, other system prompts, sampling and cache-control go upstream.
    let germany = chat(&model, "What is the capital of Germany?", 0.0, false);
    assert_eq!(ask(&state, "a-key", &[], germany).await.0, "miss");
    assert_eq!(ask(&state, "b-key", &[], first.clone()).await.0, "miss", "never across keys");
    let mut verbose = first.clone();
    verbose["messages"][0]["content"] = json!("Answer at length.");
    assert_eq!(ask(&state, "a-key", &[], verbose).await.0, "miss", "another system prompt");
    assert_eq!(calls(&fake), 4);
    let sampled = chat(&model, "What is the capital of France?", 0.7, false);
    assert_eq!(ask(&state, "a-key", &[], sampled.clone()).await.0, "bypass");
    // The client may allow reuse above temperature 0 (the temperature is part of the scope).
    let reuse = [("x-switchyard-cache", "reuse")];
    assert_eq!(ask(&state, "a-key", &reuse, sampled.clone()).await.0, "miss");
    assert_eq!(ask(&state, "a-key", &reuse, sampled).await.0, "hit");
    assert_eq!(ask(&state, "a-key", &[("cache-control", "no-cache")], first.clone()).await.0, "miss");
    assert_eq!(ask(&state, "a-key", &[("cache-control", "no-store")], first).await.0, "bypass");
    assert_eq!(calls(&fake), 8);

    // The log marks the hit: no cost, and what it saved (the stand-in's 5 + 3 tokens at $1 and $2 per million).
    state.log.as_ref().unwrap().flush();
    let store = switchyard_store::Store::open(&dir.path().join("decisions.sqlite")).unwrap();
    let mut rows = std::collections::HashMap::new();
    store
        .for_each(i64::MIN, |r| {
            rows.insert(r.record.request_id.clone(), r.record);
        })
        .unwrap();
    let (miss, hit) = (&rows[&miss_id], &rows[&hit_id]);
    assert!(!miss.cache_hit && miss.cost_usd.is_some_and(|c| (c - 0.000011).abs() < 1e-12), "{miss:?}");
    assert!(hit.cache_hit && hit.cost_usd == Some(0.0) && hit.attempts.is_empty(), "{hit:?}");
    assert_eq!((hit.cache_saved_usd, hit.chosen_model.as_deref()), (miss.cost_usd, Some(model.as_str())));
    assert_eq!(metric(&state, "switchyard_cache_hits_total").await, Some(3.0));
    let saved = metric(&state, "switchyard_cache_saved_usd_total").await.unwrap();
    assert!((saved - 3.0 * 0.000011).abs() < 1e-9, "{saved}");
    assert_eq!(metric(&state, "switchyard_cache_bypassed_total").await, Some(2.0));
}

/// The text of an OpenAI stream's content deltas, and whether it ended with `[DONE]`.
fn streamed_text(sse: &str) -> (String, bool) {
    let mut text = String::new();
    for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if let Ok(v) = serde_json::from_str::<Value>(data) {
            text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
        }
    }
    (text, sse.contains("data: [DONE]"))
}

#[tokio::test]
async fn streams_fill_the_cache_and_replay_from_it_through_both_apis() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = server(addr, dir.path(), "");
    let model = a_model();
    let prompt = "Name three rivers of Europe.";
    let (cache, _, sse) = ask(&state, "a-key", &[], chat(&model, prompt, 0.0, true)).await;
    let (text, done) = streamed_text(&sse);
    assert_eq!((cache.as_str(), done), ("miss", true));
    // The stream's answer, assembled, serves a whole request...
    let (cache, _, whole) = ask(&state, "a-key", &[], chat(&model, prompt, 0.0, false)).await;
    assert_eq!(cache, "hit");
    let whole: Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(whole["choices"][0]["message"]["content"].as_str(), Some(text.as_str()));
    // ... and is replayed as a stream, with the usage when asked for.
    let mut asked = chat(&model, prompt, 0.0, true);
    asked["stream_options"] = json!({"include_usage": true});
    let (cache, _, replayed) = ask(&state, "a-key", &[], asked).await;
    assert_eq!((cache.as_str(), streamed_text(&replayed)), ("hit", (text.clone(), true)));
    assert!(replayed.contains("\"usage\""), "{replayed}");
    assert_eq!(calls(&fake), 1);

    // The Messages API (its requests are their own scope: `max_tokens` is required there), whole, then
    // replayed whole and as Anthropic's event stream.
    let messages = json!({"model": model, "max_tokens": 100, "temperature": 0, "system": "Answer briefly.",
        "messages": [{"role": "user", "content": prompt}]});
    let (_, h, first) = call(&state, "POST", "/v1/messages", "a-key", &[], messages.clone()).await;
    assert_eq!((header(&h, "x-switchyard-cache").as_str(), calls(&fake)), ("miss", 2));
    let (status, h, body) = call(&state, "POST", "/v1/messages", "a-key", &[], messages.clone()).await;
    assert_eq!((status.as_u16(), header(&h, "x-switchyard-cache").as_str()), (200, "hit"), "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), serde_json::from_str::<Value>(&first).unwrap());
    let mut streamed = messages;
    streamed["stream"] = json!(true);
    let (_, h, events) = call(&state, "POST", "/v1/messages", "a-key", &[], streamed).await;
    assert_eq!(header(&h, "x-switchyard-cache"), "hit");
    assert!(events.contains("event: message_start") && events.contains("event: message_stop"), "{events}");
    assert!(events.contains(&format!("hello from {model}")), "{events}");
    assert_eq!(calls(&fake), 2);
}

#[tokio::test]
async fn two_replicas_share_answers_through_redis() {
    let redis = tokio::task::spawn_blocking(Redis::start).await.unwrap();
    let (addr, fake) = upstream::start().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = format!("[state]\nurl = \"{}\"\ntimeout_ms = 1000\n", redis.url);
    let (a, b) = (server(addr, dir_a.path(), &shared), server(addr, dir_b.path(), &shared));
    let model = a_model();
    let first = chat(&model, "How many legs does a spider have?", 0.0, false);
    assert_eq!(ask(&a, "a-key", &[], first.clone()).await.0, "miss");
    // The shared copy is written in the background: wait until Redis holds it.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let written = async {
        loop {
            if !answer_keys(&mut conn).await.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), written).await.expect("the answer reaches Redis");
    let (cache, _, _) = ask(&b, "a-key", &[], chat(&model, "how many legs does a spider have", 0.0, false)).await;
    assert_eq!((cache.as_str(), calls(&fake)), ("hit", 1), "the other replica's answer, reworded");
    assert_eq!(ask(&b, "b-key", &[], first).await.0, "miss", "never across keys, in Redis either");
    let key = answer_keys(&mut conn).await.swap_remove(0);
    let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut conn).await.unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "the answer expires with cache.ttl_s: {ttl}");
}

/// The cached answers' keys in Redis.
async fn answer_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    redis::cmd("KEYS").arg("switchyard:cache:answer:*").query_async(conn).await.unwrap()
}

#[tokio::test]
async fn routed_requests_hit_and_cut_streams_and_fallback_answers_are_not_kept() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = server(addr, dir.path(), "");
    // A routed request's scope is its decision: the same prompt routes the same way and hits.
    let routed = chat("switchyard", "Translate 'good night' into French.", 0.0, false);
    let (status, h, _) = call(&state, "POST", "/v1/chat/completions", "a-key", &[], routed.clone()).await;
    assert_eq!((status.as_u16(), header(&h, "x-switchyard-cache").as_str()), (200, "miss"));
    let decided = header(&h, "x-switchyard-model");
    let (_, h, _) = call(&state, "POST", "/v1/chat/completions", "a-key", &[], routed).await;
    assert_eq!((header(&h, "x-switchyard-cache"), header(&h, "x-switchyard-model")), ("hit".into(), decided));
    assert_eq!(calls(&fake), 1);

    // A stream cut before its end is not kept.
    let model = a_model();
    fake.modes.lock().unwrap().insert(model.clone(), Mode::DropMidStream);
    let prompt = "List the noble gases.";
    let (_, _, cut) = call(&state, "POST", "/v1/chat/completions", "a-key", &[], chat(&model, prompt, 0.0, true)).await;
    assert!(!streamed_text(&cut).1, "the stream was cut: {cut}");
    fake.modes.lock().unwrap().insert(model.clone(), Mode::Ok);
    assert_eq!(ask(&state, "a-key", &[], chat(&model, prompt, 0.0, false)).await.0, "miss");
    assert_eq!(calls(&fake), 3);

    // A fallback's answer is not kept under the failed model's scope.
    let stores = metric(&state, "switchyard_cache_stores_total").await;
    let ranking = {
        let (_, _, body) =
            call(&state, "POST", "/v1/route", "a-key", &[], json!({"prompt": "Spell 'necessary'."})).await;
        serde_json::from_str::<Value>(&body).unwrap()["model"].as_str().unwrap().to_string()
    };
    fake.modes.lock().unwrap().insert(ranking.clone(), Mode::Fail500);
    let spell = chat("switchyard", "Spell 'necessary'.", 0.0, false);
    let (status, h, _) = call(&state, "POST", "/v1/chat/completions", "a-key", &[], spell).await;
    assert_eq!(status.as_u16(), 200);
    assert_ne!(header(&h, "x-switchyard-model"), ranking, "a fallback answered");
    assert_eq!(metric(&state, "switchyard_cache_stores_total").await, stores, "and was not kept");
}
