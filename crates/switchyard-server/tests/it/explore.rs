//! Safe exploration, in-process with the default router and the real encoder: the share of decisions that
//! explore is the configured one, explored models meet the safety floor, every decision carries its
//! propensity into the decision log and `logs export`, and rule- or session-pinned requests never explore.
//! A config with the share outside [0, 0.5] is refused.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_encoder::{EncoderOptions, MiniLm};
use switchyard_server::{app, AppState, Config};
use tower::ServiceExt;

const PROMPTS: [&str; 8] = [
    "What is 17 * 23?",
    "Write a haiku about rain.",
    "Explain the difference between a mutex and a semaphore.",
    "Summarise the causes of the French Revolution.",
    "Translate 'good morning' into Spanish.",
    "Prove that the square root of 2 is irrational.",
    "What is the capital of Australia?",
    "Write a Python function that reverses a string.",
];

fn config_text(dir: &std::path::Path, learning: &str) -> String {
    let router = switchyard_testkit::default_router();
    format!(
        "[log]\npath = {:?}\n[router]\npath = {router:?}\n[learning]\n{learning}\n\
         [[rules]]\nname = \"translations\"\nwhen = {{ keywords = [\"translate\"] }}\nthen = {{ model = \"gpt-4o-mini\" }}\n",
        dir.join("decisions.sqlite")
    )
}

async fn route(state: &Arc<AppState>, body: Value) -> Value {
    let request = Request::post("/v1/route")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explored_share_is_the_setting_and_every_decision_logs_its_propensity() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "explore = 0.05\nexplore_floor = 0.5");
    let config = Config::parse(&text, std::path::Path::new("test.toml")).unwrap();
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let encoder = MiniLm::load(switchyard_testkit::model_files(), EncoderOptions::default()).unwrap();
    let state = Arc::new(AppState::new(router, Arc::new(encoder), config).unwrap());

    // More than the 5,000 asked for, so that ±1 point is over 4 standard deviations of the binomial noise.
    let n = 10_000;
    // Decisions that could explore: routed (not rule-pinned), with another model above the floor.
    let (mut explored, mut routed) = (0usize, 0usize);
    for i in 0..n {
        let prompt = PROMPTS[i % PROMPTS.len()];
        let r = route(&state, json!({"prompt": prompt})).await;
        let p = r["propensity"].as_f64().unwrap();
        if prompt.starts_with("Translate") {
            // The rule pins it: never explored, chosen for sure.
            assert_eq!((r["model"].as_str(), r["explored"].as_bool(), p), (Some("gpt-4o-mini"), Some(false), 1.0));
            continue;
        }
        if p == 1.0 {
            // No other eligible model meets the floor: nothing to explore.
            assert_eq!(r["explored"], false);
            continue;
        }
        routed += 1;
        if r["explored"] == true {
            explored += 1;
            let model = r["model"].as_str().unwrap();
            let estimate = r["models"].as_array().unwrap().iter().find(|m| m["model"] == model).unwrap();
            assert!(estimate["p_success"].as_f64().unwrap() >= 0.5, "explored below the floor: {estimate}");
            assert!(p > 0.0 && p <= 0.05, "{r}");
            assert!(r["reason"].as_str().unwrap().starts_with("exploring"), "{r}");
        } else {
            assert_eq!(p, 0.95);
        }
    }
    let share = explored as f64 / routed as f64;
    eprintln!("{explored} of {routed} decisions that could explore did ({:.2}%)", share * 100.0);
    assert!((share - 0.05).abs() <= 0.01, "explored share {share:.4}, set 0.05");

    // A conversation's session pin: no exploration.
    for _ in 0..40 {
        let body = json!({"messages": [{"role": "user", "content": PROMPTS[0]}], "metadata": {"session_id": "c-1"}});
        let r = route(&state, body).await;
        assert!(r["session"].is_object(), "{r}");
        assert_eq!((r["explored"].as_bool(), r["propensity"].as_f64()), (Some(false), Some(1.0)), "{r}");
    }

    // Feedback is answered once every record queued before it is written: then the log holds every decision.
    let last = route(&state, json!({"prompt": PROMPTS[1]})).await;
    let request = Request::post("/v1/feedback")
        .header("content-type", "application/json")
        .body(Body::from(json!({"request_id": last["request_id"], "score": 1}).to_string()))
        .unwrap();
    assert_eq!(app(state.clone()).oneshot(request).await.unwrap().status(), StatusCode::OK);
    // The decision log holds each decision's propensity.
    let store = switchyard_store::Store::open(&dir.path().join("decisions.sqlite")).unwrap();
    let mut logged = Vec::new();
    store.for_each(0, |r| logged.push(r.record)).unwrap();
    assert_eq!(logged.len(), n + 41, "every decision is logged");
    let explored_rows = logged.iter().filter(|r| r.explored).count();
    assert!(explored_rows >= explored, "{explored_rows}");
    assert!(logged.iter().all(|r| r.propensity.is_some_and(|p| p > 0.0 && p <= 1.0)));
}

#[test]
fn an_exploration_share_outside_0_to_half_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["explore = 0.6", "explore = -0.01"] {
        let e = Config::parse(&config_text(dir.path(), bad), std::path::Path::new("test.toml")).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("learning.explore") && message.contains("between 0 and 0.5"), "{message}");
    }
}
