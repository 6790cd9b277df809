//! Experiments that vary the prompt and the model: a system-prompt arm reaches the upstream with its system
//! prompt and the other arm without it; a forced-model arm, scoped to a `when` clause, sends its requests to
//! its model, and requests outside the scope are in no experiment.

use serde_json::{json, Value};
use switchyard_testkit::replicas::{call, header};
use switchyard_testkit::upstream;

fn chat(prompt: &str, user: &str) -> Value {
    json!({"model": "switchyard", "user": user, "messages": [{"role": "user", "content": prompt}]})
}

#[tokio::test]
async fn a_system_prompt_arm_reaches_the_upstream_with_its_prompt_and_the_other_arm_without() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = switchyard_testkit::app::state(&format!(
        "[log]\npath = {:?}\n[experiment]\nname = \"terse\"\n\
         [[experiment.arms]]\nname = \"control\"\nweight = 1\n\
         [[experiment.arms]]\nname = \"one-word\"\nweight = 1\nsystem_prompt = \"Answer in one word.\"\n{}",
        dir.path().join("decisions.sqlite").display().to_string(),
        upstream::catalog(addr)
    ));
    let mut arms = std::collections::BTreeSet::new();
    for u in 0..16 {
        let (status, h, _) =
            call(&state, "POST", "/v1/chat/completions", "", &[], chat("Is water wet?", &format!("u{u}"))).await;
        assert_eq!(status, 200);
        let arm = header(&h, "x-switchyard-arm");
        let body = fake.bodies.lock().unwrap().last().cloned().unwrap();
        let first = &body["messages"][0];
        if arm == "one-word" {
            assert_eq!(
                (first["role"].as_str(), first["content"].as_str()),
                (Some("system"), Some("Answer in one word."))
            );
        } else {
            assert_eq!(arm, "control");
            assert_eq!(first["role"], "user", "{body}");
        }
        arms.insert(arm);
    }
    assert_eq!(arms.len(), 2, "16 users fall in both arms");
}

#[tokio::test]
async fn a_forced_model_arm_is_scoped_to_its_when_clause() {
    let (addr, fake) = upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let router = switchyard_core::Router::load(&switchyard_testkit::default_router()).unwrap();
    let forced = router.manifest.models.last().unwrap().model.clone();
    let cheap = router.manifest.models[0].model.clone();
    let state = switchyard_testkit::app::state(&format!(
        "[log]\npath = {:?}\n[tiers]\ncheap = [\"{cheap}\"]\n\
         [[rules]]\nname = \"clauses\"\nwhen = {{ keywords = [\"clause\"] }}\nthen = {{ tier = \"cheap\" }}\n\
         [experiment]\nname = \"legal\"\nwhen = {{ keywords = [\"contract\"] }}\n\
         [[experiment.arms]]\nname = \"router\"\nweight = 1\n\
         [[experiment.arms]]\nname = \"forced\"\nweight = 1\nmodel = \"{forced}\"\n{}",
        dir.path().join("decisions.sqlite").display().to_string(),
        upstream::catalog(addr)
    ));
    let mut forced_seen = 0;
    for u in 0..16 {
        let prompt = "Is a verbal contract binding in England?";
        let (_, h, _) = call(&state, "POST", "/v1/chat/completions", "", &[], chat(prompt, &format!("u{u}"))).await;
        assert_eq!(header(&h, "x-switchyard-experiment"), "legal");
        if header(&h, "x-switchyard-arm") == "forced" {
            assert_eq!(header(&h, "x-switchyard-model"), forced);
            assert_eq!(fake.bodies.lock().unwrap().last().unwrap()["model"], json!(forced));
            forced_seen += 1;
        }
    }
    assert!(forced_seen > 0 && forced_seen < 16, "{forced_seen} of 16 in the forced arm");
    // A rule's tier bounds the arm's model: within it, the forced arm's requests stay in the tier.
    for u in 0..16 {
        let prompt = "Draft a contract clause about late payment.";
        let (_, h, _) = call(&state, "POST", "/v1/chat/completions", "", &[], chat(prompt, &format!("u{u}"))).await;
        if header(&h, "x-switchyard-arm") == "forced" {
            assert_eq!(header(&h, "x-switchyard-model"), cheap, "the tier, not the arm's {forced}");
        }
    }
    let (_, h, _) =
        call(&state, "POST", "/v1/chat/completions", "", &[], chat("Write a haiku about rain.", "u1")).await;
    assert_eq!((header(&h, "x-switchyard-experiment"), header(&h, "x-switchyard-arm")), (String::new(), String::new()));
}
