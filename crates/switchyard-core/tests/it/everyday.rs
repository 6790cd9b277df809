//! The bundled default router on everyday prompts: this crate's `tests/fixtures/everyday-prompts.jsonl` (40 easy
//! and 64 hard prompts written for this test, never used in training; the complexity labels the router learned
//! from are a different, disjoint set in `training-data/complexity/`). Complexity must rank the hard prompts
//! above the easy ones, and the router at its default knob must spend far less on the easy ones. On every
//! hard prompt (proofs, algorithms, code, science, law, medicine, systems design) a frontier model must have
//! the highest P(success), and the default knob must never send one to a model of 10B parameters or less or
//! to claude-3-haiku.

use std::collections::BTreeSet;

use serde_json::Value;
use switchyard_core::{estimate_input_tokens, normalize_prompt, Router};
use switchyard_encoder::Encoder;
use switchyard_testkit::{encoder, workspace_root};

/// The default catalog's frontier models: the largest model of each provider (2024).
const FRONTIER: [&str; 6] =
    ["gpt-4o", "claude-3-5-sonnet", "o1-mini", "gemini-1.5-pro", "llama-3.1-405b-instruct", "mistral-large"];
/// Models a hard prompt must never go to at the default knob: 10B parameters or less, and claude-3-haiku.
const TOO_SMALL: [&str; 4] = ["llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "gemma-2-9b-it", "claude-3-haiku"];

struct Routed {
    prompt: String,
    hard: bool,
    model: String,
    complexity: f64,
    /// The model with the highest P(success), and that P.
    top: (String, f64),
}

fn fixture() -> Vec<(String, bool)> {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/everyday-prompts.jsonl"),
    )
    .unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let label = v["label"].as_str().unwrap();
            assert!(label == "easy" || label == "hard", "{l}");
            (v["prompt"].as_str().unwrap().to_string(), label == "hard")
        })
        .collect()
}

fn route_all(router: &Router) -> Vec<Routed> {
    let prompts = fixture();
    let texts: Vec<&str> = prompts.iter().map(|(p, _)| p.as_str()).collect();
    let embeddings = encoder().embed_batch(&texts).unwrap();
    let policy = router.manifest.default_policy.clone();
    prompts
        .iter()
        .zip(embeddings)
        .map(|((prompt, hard), e)| {
            let (prediction, decision) = router.route(&e.vector, estimate_input_tokens(prompt), &policy).unwrap();
            let best = prediction.models.iter().max_by(|a, b| a.p_success.total_cmp(&b.p_success)).unwrap();
            Routed {
                prompt: prompt.clone(),
                hard: *hard,
                model: decision.model,
                complexity: prediction.complexity,
                top: (best.model.clone(), best.p_success),
            }
        })
        .collect()
}

/// Price of one call of 300 input and 300 output tokens.
fn call_price(router: &Router, model: &str) -> f64 {
    let m = router.manifest.models.iter().find(|m| m.model == model).unwrap();
    m.cost_for(300.0, 300.0)
}

#[test]
fn the_test_prompts_are_not_training_prompts() {
    let labels = std::fs::read_to_string(workspace_root().join("training-data/complexity/prompts.jsonl")).unwrap();
    let trained: BTreeSet<String> = labels
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| normalize_prompt(serde_json::from_str::<Value>(l).unwrap()["prompt"].as_str().unwrap()))
        .collect();
    let prompts = fixture();
    let hard = prompts.iter().filter(|p| p.1).count();
    assert!(prompts.len() - hard >= 40 && hard >= 60, "{} easy, {hard} hard", prompts.len() - hard);
    for (p, _) in &prompts {
        assert!(!trained.contains(&normalize_prompt(p)), "{p:?} is also a training prompt");
    }
}

#[test]
fn default_router_ranks_and_prices_everyday_prompts_sensibly() {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let routed = route_all(&router);
    let (hard, easy): (Vec<&Routed>, Vec<&Routed>) = routed.iter().partition(|r| r.hard);

    // Complexity ranks hard above easy (AUC over all pairs).
    let wins: f64 = hard
        .iter()
        .flat_map(|h| easy.iter().map(move |e| (h, e)))
        .map(|(h, e)| match h.complexity.total_cmp(&e.complexity) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum();
    let auc = wins / (hard.len() * easy.len()) as f64;
    assert!(auc >= 0.9, "complexity AUC {auc:.3}: hard prompts should rank above easy ones");

    // Easy prompts cost far less than hard ones at the default knob.
    let spend = |set: &[&Routed]| set.iter().map(|r| call_price(&router, &r.model)).sum::<f64>() / set.len() as f64;
    let ratio = spend(&easy) / spend(&hard);
    assert!(ratio <= 0.25, "easy/hard spend ratio {ratio:.3}");

    // Easy prompts stay off the dearest third of the catalog (at most 1 in 20 strays there).
    let mut prices: Vec<f64> = router.manifest.models.iter().map(|m| m.cost_for(300.0, 300.0)).collect();
    prices.sort_by(f64::total_cmp);
    let dearest_third = prices[prices.len() - prices.len() / 3];
    let stray: Vec<&str> =
        easy.iter().filter(|r| call_price(&router, &r.model) >= dearest_third).map(|r| r.model.as_str()).collect();
    assert!(stray.len() * 20 <= easy.len(), "easy prompts sent to the dearest third: {stray:?}");

    // Hard prompts go above the catalog's median price at least 40% of the time.
    let median = prices[prices.len() / 2];
    let strong = hard.iter().filter(|r| call_price(&router, &r.model) >= median).count();
    assert!(strong * 5 >= hard.len() * 2, "only {strong} of {} hard prompts went above the median price", hard.len());
}

#[test]
fn default_router_sends_hard_prompts_to_frontier_models() {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let routed = route_all(&router);
    let hard: Vec<&Routed> = routed.iter().filter(|r| r.hard).collect();
    let not_frontier: Vec<String> = hard
        .iter()
        .filter(|r| !FRONTIER.contains(&r.top.0.as_str()))
        .map(|r| format!("{} (P {:.3}): {}", r.top.0, r.top.1, r.prompt))
        .collect();
    let too_small: Vec<String> = hard
        .iter()
        .filter(|r| TOO_SMALL.contains(&r.model.as_str()))
        .map(|r| format!("{}: {}", r.model, r.prompt))
        .collect();
    assert!(not_frontier.is_empty(), "the highest P is not a frontier model's on:\n{}", not_frontier.join("\n"));
    assert!(too_small.is_empty(), "hard prompts sent to small models:\n{}", too_small.join("\n"));
}
