//! Semantic rules, end to end on the default router with real upstreams: a rule built from 20 legal example
//! prompts (`tests/fixtures/legal-examples.txt`) sends unseen legal prompts to its model and leaves unrelated
//! prompts alone, in the server and in the CLI's `route --config` alike. (Pinned conversations and
//! capabilities are tested in switchyard-server.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};
use switchyard_core::Router;
use switchyard_server::AppState;
use switchyard_testkit::app::post_json as post;
use switchyard_testkit::upstream;

/// Every model of the default router behind one upstream; `extra` is added to the config.
fn gateway(addr: SocketAddr, extra: &str) -> Arc<AppState> {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let mut text = format!("[log]\nenabled = false\n{extra}\n");
    for m in &router.manifest.models {
        text.push_str(&format!(
            "[[models]]\nname = \"{}\"\nbase_url = \"http://{addr}/v1\"\ninput_usd_per_mtok = {}\noutput_usd_per_mtok = {}\n",
            m.model, m.input_usd_per_mtok, m.output_usd_per_mtok
        ));
    }
    switchyard_testkit::app::state(&text)
}

fn header(h: &axum::http::HeaderMap, name: &str) -> String {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

/// Legal questions written for this test, none of them among the rule's examples.
const LEGAL: [&str; 15] = [
    "Can my neighbor sue me if a tree from my yard falls on his garage?",
    "What should I do if I receive a cease and desist letter about my website's name?",
    "Is it legal for my landlord to enter my apartment without notice?",
    "How do I contest a speeding ticket in traffic court?",
    "What rights does a buyer have if a used car dealer hid known defects?",
    "Explain how probate works when someone dies without a will.",
    "Can a company enforce a non-disclosure agreement after I quit?",
    "What is the difference between a patent and a trade secret for protecting an invention?",
    "My former employer has not paid my final paycheck. What legal options do I have?",
    "Draft a clause limiting a consultant's liability to the fees paid under the contract.",
    "Is it legal to record a phone call without telling the other person?",
    "What does it mean to plead no contest to a criminal charge?",
    "How do I evict a tenant who has stopped paying rent?",
    "Can I get out of a gym membership contract that says it cannot be cancelled?",
    "What are the penalties for breaking an HOA rule about fences?",
];

/// Everything else.
const OTHER: [&str; 15] = [
    "What is the capital of Australia?",
    "Write a haiku about autumn leaves.",
    "How do I reverse a linked list in Python?",
    "Give me a recipe for a vegetarian lasagna.",
    "Explain how photosynthesis works.",
    "What are good stretches for lower back pain after running?",
    "Translate \"good morning, how are you\" into Spanish.",
    "Summarize the plot of Moby-Dick in three sentences.",
    "How many moons does Jupiter have?",
    "Write a SQL query that returns the top five customers by total order value.",
    "What is the difference between a virus and a bacterium?",
    "Plan a three-day trip to Kyoto for a first-time visitor.",
    "How do interest rates affect bond prices?",
    "Suggest a name for a golden retriever puppy.",
    "Prove that the square root of two is irrational.",
];

#[tokio::test]
async fn a_semantic_rule_sends_unseen_legal_prompts_to_its_model_and_leaves_the_rest() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legal-examples.txt");
    let rule = format!(
        "[[rules]]\nname = \"legal\"\nwhen = {{ similar_to = {:?} }}\nthen = {{ model = \"mistral-large\" }}\n",
        examples.display().to_string()
    );
    let (addr, _) = upstream::start().await;
    let state = gateway(addr, &rule);
    let mut hits = Vec::new();
    for (prompt, legal) in LEGAL.iter().map(|p| (p, true)).chain(OTHER.iter().map(|p| (p, false))) {
        let (status, h, v) = post(&state, "/v1/route", &[], json!({"prompt": prompt})).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let fired = v["rule"] == "legal";
        if fired {
            assert_eq!(v["model"], "mistral-large", "{v}");
            assert_eq!(header(&h, "x-switchyard-rule"), "legal");
            let similarity = v["similarity"].as_f64().unwrap();
            assert!(similarity > 0.0 && v["reason"].as_str().unwrap().contains("similarity"), "{v}");
        } else {
            assert!(v["similarity"].is_null(), "{v}");
        }
        hits.push((legal, fired));
    }
    let tp = hits.iter().filter(|(l, f)| *l && *f).count() as f64;
    let fp = hits.iter().filter(|(l, f)| !*l && *f).count() as f64;
    let recall = tp / LEGAL.len() as f64;
    let precision = tp / (tp + fp).max(1.0);
    assert!(recall >= 0.85, "recall {recall}: {hits:?}");
    assert!(precision >= 0.9, "precision {precision}: {hits:?}");

    // The CLI runs the same pipeline from the same config.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    let router = switchyard_testkit::default_router();
    std::fs::write(
        &config,
        format!("[router]\npath = {:?}\n[log]\nenabled = false\n{rule}", router.display().to_string()),
    )
    .unwrap();
    let run = |prompt: &str| {
        let out = switchyard_testkit::cli(crate::BIN)
            .args(["route", "--config"])
            .arg(&config)
            .arg("--model-dir")
            .arg(switchyard_testkit::model_folder())
            .arg(prompt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let legal = run(LEGAL[2]);
    assert_eq!((legal["rule"].as_str(), legal["model"].as_str()), (Some("legal"), Some("mistral-large")), "{legal}");
    let other = run(OTHER[0]);
    assert!(other["rule"].is_null() && other["model"] != "mistral-large", "{other}");
}
