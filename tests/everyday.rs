//! The bundled default router on everyday prompts (tests/fixtures/everyday-prompts.jsonl: 80 prompts written
//! for this test, 40 easy and 40 hard): complexity ranks hard above easy, easy prompts go to the cheap end of
//! the catalog at the default knob, hard ones to strong models, and easy traffic costs far less than hard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{encoder, workspace_root};
use serde_json::Value;
use switchyard_core::{estimate_input_tokens, Router};
use switchyard_encoder::Encoder;
use switchyard_train::metrics;

struct Case {
    prompt: String,
    hard: bool,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(workspace_root().join("tests/fixtures/everyday-prompts.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            Case { prompt: v["prompt"].as_str().unwrap().to_string(), hard: v["label"] == "hard" }
        })
        .collect()
}

#[test]
fn default_router_sends_easy_prompts_cheap_and_hard_prompts_strong() {
    let router = Router::load(&workspace_root().join("models/default")).unwrap();
    let cases = cases();
    assert!(cases.iter().filter(|c| c.hard).count() >= 20 && cases.iter().filter(|c| !c.hard).count() >= 20);
    let texts: Vec<&str> = cases.iter().map(|c| c.prompt.as_str()).collect();
    let embeddings = encoder().embed_batch(&texts).unwrap();

    // A call's typical price: 300 input and 300 output tokens at list prices.
    let price = |m: &str| {
        let c = router.manifest.models.iter().find(|c| c.model == m).unwrap();
        300.0 * (c.input_usd_per_mtok + c.output_usd_per_mtok)
    };
    let mut by_price: Vec<&str> = router.manifest.models.iter().map(|c| c.model.as_str()).collect();
    by_price.sort_by(|a, b| price(a).total_cmp(&price(b)));
    let third = by_price.len() / 3;
    let dearest_third = &by_price[by_price.len() - third..];
    let cheapest_half = &by_price[..by_price.len() / 2];

    let mut complexity = Vec::new();
    let (mut easy_spend, mut hard_spend) = (0.0, 0.0);
    let mut easy_to_dear = Vec::new();
    let mut hard_to_cheap = Vec::new();
    for (case, e) in cases.iter().zip(&embeddings) {
        let (prediction, decision) =
            router.route(&e.vector, estimate_input_tokens(&case.prompt), &router.manifest.default_policy).unwrap();
        complexity.push((prediction.complexity as f32, if case.hard { 1.0 } else { 0.0 }));
        let chosen = &decision.model;
        eprintln!(
            "{:<5} complexity {:.2} ood {:.2} -> {chosen:<24} {}",
            if case.hard { "hard" } else { "easy" },
            prediction.complexity,
            prediction.ood,
            case.prompt.chars().take(70).collect::<String>()
        );
        if case.hard {
            hard_spend += price(chosen);
            if cheapest_half.contains(&chosen.as_str()) {
                hard_to_cheap.push(case.prompt.clone());
            }
        } else {
            easy_spend += price(chosen);
            if dearest_third.contains(&chosen.as_str()) {
                easy_to_dear.push(case.prompt.clone());
            }
        }
    }
    let auc = metrics::auc(&complexity);
    let ratio = easy_spend / hard_spend;
    eprintln!("complexity AUC {auc:.3}; easy/hard spend {ratio:.3}; dearest third {dearest_third:?}");
    assert!(auc >= 0.8, "complexity separates hard from easy with AUC {auc:.3}");
    assert!(easy_to_dear.is_empty(), "easy prompts sent to the dearest third of the catalog: {easy_to_dear:?}");
    assert!(ratio <= 0.5, "easy prompts cost {ratio:.2} of what hard ones do");
    assert!(
        hard_to_cheap.len() * 4 <= cases.iter().filter(|c| c.hard).count(),
        "hard prompts sent to the cheapest half of the catalog: {hard_to_cheap:?}"
    );
}
