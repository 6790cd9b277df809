//! `switchyard profile`: listing a trained router's models with their evidence, and removing one without
//! retraining: the other models' estimates stay exactly what they were, and the router still decides.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use serde_json::Value;
use switchyard_core::{RosterError, Router};

const PROMPTS: [&str; 4] = [
    "What is the derivative of x^3 * sin(x)?",
    "Write a haiku about autumn rain.",
    "Explain the difference between a mutex and a semaphore.",
    "hi there!",
];

fn switchyard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap()
}

#[test]
fn a_model_is_removed_and_the_others_predict_as_before() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("router");
    std::fs::create_dir(&dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(common::workspace_root().join("models/default").join(f), dir.join(f)).unwrap();
    }
    let before = Router::load(&dir).unwrap();
    let embeddings = switchyard_encoder::embed_all(common::encoder(), &PROMPTS, 8).unwrap();

    // The list names every model with its evidence.
    let out = switchyard(&["profile", "list", "--router", dir.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), before.manifest.models.len());
    let o1 = listed.iter().find(|p| p["model"] == "o1-mini").unwrap();
    assert!(o1["evidence_rows"].as_f64().unwrap() > 100.0, "{o1}");
    assert!(o1["prior_by_domain"].as_array().is_some_and(|d| !d.is_empty()), "{o1}");

    // Remove one through the CLI.
    let out = switchyard(&["profile", "remove", "--router", dir.to_str().unwrap(), "--model", "o1-mini"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after = Router::load(&dir).unwrap();
    assert_eq!(after.manifest.models.len(), before.manifest.models.len() - 1);
    assert!(after.manifest.models.iter().all(|m| m.model != "o1-mini"));
    for e in &embeddings {
        let input = e.tokens as f64;
        let (old, new) = (before.predict(&e.vector, input), after.predict(&e.vector, input));
        let kept: Vec<_> = old.models.iter().filter(|m| m.model != "o1-mini").collect();
        assert_eq!(kept.len(), new.models.len());
        for (a, b) in kept.iter().zip(&new.models) {
            assert_eq!(a.model, b.model);
            assert_eq!(a.p_success.to_bits(), b.p_success.to_bits(), "{} changed", a.model);
            assert_eq!(a.expected_cost_usd.to_bits(), b.expected_cost_usd.to_bits(), "{} cost changed", a.model);
        }
        let (_, decision) = after.route(&e.vector, input, &after.manifest.default_policy).unwrap();
        assert_ne!(decision.model, "o1-mini");
    }

    // Bad input changes nothing: an unknown name, and the last model.
    let out = switchyard(&["profile", "remove", "--router", dir.to_str().unwrap(), "--model", "gpt-5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no model \"gpt-5\"") && stderr.contains("gpt-4o"), "{stderr}");
    assert_eq!(Router::load(&dir).unwrap().manifest, after.manifest);
    // A removal that would leave the default policy nothing to choose is refused, and changes nothing.
    let mut strict = after.clone();
    let names: Vec<String> = strict.manifest.models.iter().map(|m| m.model.clone()).collect();
    strict.manifest.default_policy.denied = names[1..].to_vec();
    let untouched = strict.clone();
    assert_eq!(strict.remove_model(&names[0]), Err(RosterError::NoneEligible(names[0].clone())));
    assert_eq!(strict.manifest, untouched.manifest);
    let mut shrinking = after.clone();
    let names: Vec<String> = shrinking.manifest.models.iter().map(|m| m.model.clone()).collect();
    for name in &names[1..] {
        shrinking.remove_model(name).unwrap();
    }
    assert_eq!(shrinking.remove_model(&names[0]), Err(RosterError::Last(names[0].clone())));
    let (_, decision) = shrinking.route(&embeddings[0].vector, 10.0, &shrinking.manifest.default_policy).unwrap();
    assert_eq!(decision.model, names[0]);
}
