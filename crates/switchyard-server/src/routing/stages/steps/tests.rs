use std::path::Path;

use switchyard_core::ModelEstimate;

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn policy(knob: Knob) -> Policy {
    Policy { knob, allowed: None, denied: Vec::new() }
}

/// Estimates for models a (cheap, weak), b, c (dear, strong).
fn prediction() -> Prediction {
    let estimate = |model: &str, p: f64, cost: f64| ModelEstimate {
        model: model.into(),
        p_success: p,
        expected_cost_usd: cost,
        input_tokens: 10.0,
        output_tokens: 100.0,
        prior_weight: 0.0,
        prior_only: false,
    };
    Prediction {
        complexity: 0.5,
        ood: 0.0,
        shrink: 0.0,
        domains: Vec::new(),
        models: vec![estimate("a", 0.5, 0.001), estimate("b", 0.7, 0.01), estimate("c", 0.9, 0.1)],
    }
}

fn decision(model: &str, ranking: &[&str]) -> Decision {
    Decision { model: model.into(), reason: "cheapest above the bar".into(), meets_bar: true, ranking: names(ranking) }
}

/// The bundled default router, a real trained artifact.
fn default_router() -> Router {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/default");
    Router::load(&dir).unwrap()
}

#[test]
fn an_arm_brings_its_router_knob_and_sticky_id() {
    let main = default_router();
    let q = Query { request_id: "sy-1".into(), user: Some("u-7".into()), ..Query::default() };
    let none = arm(None, None, &main, &[], &q, &[]);
    assert!(std::ptr::eq(none.router, &main) && none.choice.is_none() && none.knob.is_none());
    assert_eq!(none.user.as_deref(), Some("u-7"));

    let experiment: ExperimentConfig = toml::from_str(
        "name = \"bar\"\nkey = \"user\"\n[[arms]]\nname = \"strict\"\nweight = 1\nmin_quality = 0.9\n\
         [[arms]]\nname = \"own\"\nweight = 1\n",
    )
    .unwrap();
    let own = Arc::new(default_router());
    let routers = [None, Some(own.clone())];
    // The same user always lands in the same arm; over many users both arms are used.
    let mut seen = std::collections::BTreeSet::new();
    for u in 0..64 {
        let q = Query { user: Some(format!("u-{u}")), ..Query::default() };
        let a = arm(Some(&experiment), None, &main, &routers, &q, &[]);
        let again = arm(Some(&experiment), None, &main, &routers, &q, &[]);
        let choice = a.choice.clone().unwrap();
        assert_eq!(Some(&choice), again.choice.as_ref());
        assert_eq!(choice.experiment, "bar");
        match choice.arm.as_str() {
            "strict" => assert!(std::ptr::eq(a.router, &main) && a.knob == Some(Knob::MinQuality(0.9))),
            _ => assert!(std::ptr::eq(a.router, own.as_ref()) && a.knob.is_none()),
        }
        seen.insert(choice.arm);
    }
    assert_eq!(seen.len(), 2);

    // Scoped by a `when` clause: a request outside it is in no arm.
    let scope = crate::routing::rules::Rule::scope(
        toml::from_str("name = \"legal\"\nwhen = { keywords = [\"contract\"] }\nthen = {}").unwrap(),
    )
    .unwrap();
    let asks = |prompt: &str| Query { prompt: prompt.into(), user: Some("u-1".into()), ..Query::default() };
    let inside = arm(Some(&experiment), Some(&scope), &main, &routers, &asks("Review this contract clause"), &[]);
    let outside = arm(Some(&experiment), Some(&scope), &main, &routers, &asks("Write a poem"), &[]);
    assert!(inside.choice.is_some() && outside.choice.is_none() && std::ptr::eq(outside.router, &main));
}

#[test]
fn a_rule_sets_the_knob_narrows_to_its_tier_and_returns_its_pin() {
    let tiers = BTreeMap::from([("premium".to_string(), names(&["b", "c"]))]);
    let mut p = policy(Knob::MinQuality(0.5));
    assert_eq!(apply_rule(&mut p, None, &tiers), None);
    assert_eq!(p, policy(Knob::MinQuality(0.5)));

    let then = Action { tier: Some("premium".into()), min_quality: Some(0.8), ..Action::default() };
    assert_eq!(apply_rule(&mut p, Some(&then), &tiers), None);
    assert_eq!((p.knob, p.allowed.clone()), (Knob::MinQuality(0.8), Some(names(&["b", "c"]))));
    // The tier within what the request allows; the whole tier when they share nothing.
    let mut p = Policy { allowed: Some(names(&["a", "c"])), ..policy(Knob::MinQuality(0.5)) };
    apply_rule(&mut p, Some(&then), &tiers);
    assert_eq!(p.allowed, Some(names(&["c"])));
    let mut p = Policy { allowed: Some(names(&["a"])), ..policy(Knob::MinQuality(0.5)) };
    apply_rule(&mut p, Some(&then), &tiers);
    assert_eq!(p.allowed, Some(names(&["b", "c"])));
    let pin = Action { model: Some("c".into()), ..Action::default() };
    assert_eq!(apply_rule(&mut p, Some(&pin), &tiers).as_deref(), Some("c"));
}

#[test]
fn a_keys_models_bound_the_request_and_a_rules_pin() {
    let models = names(&["a", "b", "c"]);
    let mut p = policy(Knob::MinQuality(0.5));
    let mut pinned = Some("c".to_string());
    bound_by_key(&mut p, &mut pinned, None, &models).unwrap();
    assert_eq!((p.allowed.clone(), pinned.clone()), (None, Some("c".to_string())));

    let key = names(&["a", "b"]);
    bound_by_key(&mut p, &mut pinned, Some(&key), &models).unwrap();
    assert_eq!((p.allowed.clone(), pinned.clone()), (Some(names(&["a", "b"])), None), "c is not the key's");

    let mut p = Policy { allowed: Some(names(&["c"])), ..policy(Knob::MinQuality(0.5)) };
    let e = bound_by_key(&mut p, &mut None, Some(&key), &models).unwrap_err();
    assert_eq!(e.code(), "model_not_allowed");
    assert!(e.to_string().contains("the key may use a, b"), "{e}");
}

#[test]
fn needs_keep_only_models_that_declare_them() {
    let card = |name: &str, tools: bool| -> ModelCard {
        toml::from_str(&format!("name = \"{name}\"\nsupports_tools = {tools}\n")).unwrap()
    };
    let cards = [card("a", false), card("b", true), card("c", true)];
    let lookup = |m: &str| cards.iter().find(|c| c.name == m);
    let catalog = Some(&lookup);
    let models = names(&["a", "b", "c"]);
    let tools = Needs { tools: true, ..Needs::default() };

    let mut p = policy(Knob::MinQuality(0.5));
    let mut pinned = Some("a".to_string());
    assert_eq!(bound_by_needs(&mut p, &mut pinned, Needs::default(), catalog, &models).unwrap(), None);
    let none: Option<&fn(&str) -> Option<&'static ModelCard>> = None;
    assert_eq!(bound_by_needs(&mut p, &mut pinned, tools, none, &models).unwrap(), None, "no catalog: no filter");
    assert_eq!(pinned.as_deref(), Some("a"));

    let narrowed = bound_by_needs(&mut p, &mut pinned, tools, catalog, &models).unwrap();
    assert_eq!(narrowed.as_deref(), Some("tools"));
    assert_eq!((p.allowed.clone(), pinned), (Some(names(&["b", "c"])), None));

    let mut p = Policy { allowed: Some(names(&["a"])), ..policy(Knob::MinQuality(0.5)) };
    let e = bound_by_needs(&mut p, &mut None, tools, catalog, &models).unwrap_err();
    assert_eq!(e.code(), "unsupported_request");
    assert!(e.to_string().contains("supports_tools"), "{e}");
}

#[test]
fn a_prediction_covers_every_model_and_learning_keeps_the_routers_own_estimate() {
    let router = default_router();
    let dim = router.manifest.encoder.dim;
    let embedding: Vec<f32> = (0..dim).map(|i| if i == 0 { 1.0 } else { 0.0 }).collect();
    let (prediction, learned) = predict(&router, &embedding, 20.0, None);
    assert_eq!(prediction.models.len(), router.manifest.models.len());
    assert!(prediction.models.iter().all(|e| (0.0..=1.0).contains(&e.p_success) && e.expected_cost_usd >= 0.0));
    assert!(learned.is_none());

    let dir = tempfile::tempdir().unwrap();
    let config = LearningConfig { online: true, state_file: dir.path().join("online.json"), ..Default::default() };
    let learning = Learning::open(&config, &router).unwrap();
    let (moved, learned) = predict(&router, &embedding, 20.0, Some(&learning));
    let learned = learned.unwrap();
    // Nothing observed yet: the online shift moves nothing, and the base is the router's own estimate.
    for (e, (model, base)) in moved.models.iter().zip(&learned.base) {
        assert_eq!(&e.model, model);
        assert!((e.p_success - base).abs() < 1e-9, "{model}: {} against {base}", e.p_success);
    }
    assert!(!learned.domains.is_empty());
}

#[test]
fn a_rules_pin_puts_its_model_first_and_says_so() {
    let p = policy(Knob::MinQuality(0.8));
    let mut d = decision("c", &["c", "b", "a"]);
    pin_by_rule(&mut d, "legal", Some(0.91), Some("a"), &p, &prediction());
    assert_eq!((d.model.as_str(), d.ranking.clone()), ("a", names(&["a", "c", "b"])));
    assert!(!d.meets_bar, "a's P 0.5 is below the 0.8 bar");
    assert_eq!(d.reason, "rule \"legal\" (similarity 0.91) sends this request to a");

    let mut d = decision("c", &["c", "b", "a"]);
    pin_by_rule(&mut d, "vip", None, None, &p, &prediction());
    assert_eq!(d.model, "c");
    assert_eq!(d.reason, "rule \"vip\" applied; cheapest above the bar");
}

#[test]
fn a_conversation_stays_on_its_model_until_cheaper_turns_add_up() {
    let sessions = Sessions::new(std::time::Duration::from_secs(60), 16, 2);
    let p = policy(Knob::MinQuality(0.5));
    let turn = |n: usize, choice: &str| {
        let mut d = decision(choice, &["a", "b", "c"]);
        let c = Conversation { id: "s-1".into(), turn: n };
        let pin = pin_conversation(&mut d, &c, &sessions, 2, &p, &prediction());
        (d, pin)
    };
    let (d, pin) = turn(1, "c");
    assert_eq!((d.model.as_str(), pin.model.as_str()), ("c", "c"));
    // A cheaper choice on turn 2 is held on c once; on turn 3 the pin comes down.
    let (d, _) = turn(2, "a");
    assert_eq!((d.model.as_str(), d.ranking[0].as_str()), ("c", "c"));
    assert!(d.reason.starts_with("conversation s-1 stays on c"), "{}", d.reason);
    let (d, _) = turn(3, "a");
    assert_eq!(d.model, "a");
}

#[test]
fn exploration_is_off_at_zero_and_seeded_by_the_request_id() {
    let p = policy(Knob::MinQuality(0.5));
    let mut d = decision("b", &["b", "c", "a"]);
    assert!(explore(&mut d, &LearningConfig::default(), &p, &prediction(), "sy-1").is_none());
    assert_eq!(d, decision("b", &["b", "c", "a"]));

    let config = LearningConfig { explore: 0.5, explore_floor: 0.6, ..Default::default() };
    let (mut explored, mut kept) = (0, 0);
    for i in 0..200 {
        let id = format!("sy-{i}");
        let mut d = decision("b", &["b", "c", "a"]);
        let e = explore(&mut d, &config, &p, &prediction(), &id).unwrap();
        let mut again = decision("b", &["b", "c", "a"]);
        assert_eq!(explore(&mut again, &config, &p, &prediction(), &id), Some(e.clone()), "a replay explores alike");
        assert!(e.propensity > 0.0 && e.propensity <= 1.0);
        if e.explored {
            // Only c clears the 0.6 floor (a's P is 0.5).
            assert_eq!((d.model.as_str(), e.model.as_str()), ("c", "c"));
            assert!(d.reason.starts_with("exploring (50.0% of decisions explore): c instead of the policy's b"));
            explored += 1;
        } else {
            assert_eq!(d.model, "b");
            kept += 1;
        }
    }
    assert!(explored > 0 && kept > 0, "{explored} explored, {kept} kept");
}
