//! `switchyard profile`: listing a trained router's models with their evidence, removing one and adding one
//! without retraining (from a small eval set, or from published priors alone): the other models' estimates
//! stay exactly what they were, and the router still decides.

use serde_json::Value;
use switchyard_core::{ProfileBasis, RosterError, Router};

const PROMPTS: [&str; 4] = [
    "What is the derivative of x^3 * sin(x)?",
    "Write a haiku about autumn rain.",
    "Explain the difference between a mutex and a semaphore.",
    "hi there!",
];

fn switchyard(args: &[&str]) -> std::process::Output {
    switchyard_testkit::cli(crate::BIN).args(args).output().unwrap()
}

/// `switchyard` with the encoder and an embedding cache of its own (for commands that embed).
pub(crate) fn switchyard_encoding(args: &[&str], cache: &std::path::Path) -> std::process::Output {
    switchyard_testkit::cli(crate::BIN).args(args).env("SWITCHYARD_CACHE_DIR", cache).output().unwrap()
}

/// A copy of the bundled default router in `work/router`.
pub(crate) fn bundled_router(work: &std::path::Path) -> std::path::PathBuf {
    let _ = switchyard_testkit::model_files();
    let dir = work.join("router");
    std::fs::create_dir(&dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(switchyard_testkit::default_router().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// The bundled training logs' rows, as JSON.
pub(crate) fn default_logs() -> Vec<Value> {
    use std::io::BufRead;
    let file =
        std::fs::File::open(switchyard_testkit::workspace_root().join("training-data/default/logs.jsonl.gz")).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// Area under the ROC curve of `p` against binary `y`.
fn auc(pairs: &[(f64, f64)]) -> f64 {
    let pos: Vec<f64> = pairs.iter().filter(|x| x.1 >= 0.5).map(|x| x.0).collect();
    let neg: Vec<f64> = pairs.iter().filter(|x| x.1 < 0.5).map(|x| x.0).collect();
    let mut wins = 0.0;
    for a in &pos {
        for b in &neg {
            wins += if a > b {
                1.0
            } else if a == b {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (pos.len() * neg.len()).max(1) as f64
}

#[test]
fn a_model_is_removed_and_the_others_predict_as_before() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("router");
    std::fs::create_dir(&dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(switchyard_testkit::default_router().join(f), dir.join(f)).unwrap();
    }
    let before = Router::load(&dir).unwrap();
    let embeddings = switchyard_encoder::embed_all(switchyard_testkit::encoder(), &PROMPTS, 8).unwrap();

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

#[test]
// Long: one CLI scenario (remove, add, list, route, update, refusals) on one router, in order.
fn a_model_is_added_back_from_its_eval_rows_without_touching_the_others() {
    const MODEL: &str = "gemini-2.0-flash";
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let dir = bundled_router(work.path());
    let router_arg = dir.to_str().unwrap().to_string();
    let trained = Router::load(&dir).unwrap();

    // 200 of the model's training prompts as the eval set; its held-out (test) rows to check against.
    let rows = default_logs();
    let mine: Vec<&Value> = rows.iter().filter(|r| r["model"] == MODEL).collect();
    let mut seen = std::collections::HashSet::new();
    let eval: Vec<&Value> = mine
        .iter()
        .copied()
        .filter(|r| r["split"] != "test" && seen.insert(r["prompt"].as_str().unwrap().to_string()))
        .take(200)
        .collect();
    assert_eq!(eval.len(), 200);
    let held: Vec<&Value> = mine.iter().copied().filter(|r| r["split"] == "test").collect();
    assert!(held.len() >= 40, "{} held-out rows", held.len());
    let eval_path = work.path().join("eval.jsonl");
    std::fs::write(&eval_path, eval.iter().map(|r| r.to_string() + "\n").collect::<String>()).unwrap();
    let eval_arg = eval_path.to_str().unwrap().to_string();

    let out = switchyard(&["profile", "remove", "--router", &router_arg, "--model", MODEL]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let without = Router::load(&dir).unwrap();
    let add = |extra: &[&str]| {
        let mut args = vec!["profile", "add", "--router", &router_arg, "--model", MODEL, "--quiet"];
        args.extend_from_slice(extra);
        switchyard_encoding(&args, &cache)
    };
    let out = add(&["--logs", &eval_arg, "--input-usd-per-mtok", "0.1", "--output-usd-per-mtok", "0.4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("200 eval rows on 200 prompts"), "{stderr}");
    let added = Router::load(&dir).unwrap();
    assert_eq!(added.manifest.models.len(), trained.manifest.models.len());
    let profile = added.added_profile(MODEL).unwrap();
    assert_eq!((profile.basis, profile.rows, profile.prompts), (ProfileBasis::Eval, 200, 200));
    // Cross-validated, the fitted output predicts the model's outcomes better than its mean rate does.
    assert!(profile.cv_log_loss.unwrap() < profile.constant_log_loss.unwrap(), "{profile:?}");

    // The others predict exactly as before; the added model tracks its held-out outcomes, and what the
    // router trained on all of its rows predicted.
    let texts: Vec<&str> = held.iter().map(|r| r["prompt"].as_str().unwrap()).collect();
    let embeddings = switchyard_encoder::embed_all(switchyard_testkit::encoder(), &texts, 16).unwrap();
    let (mut versus_outcome, mut versus_trained) = (Vec::new(), Vec::new());
    for (e, row) in embeddings.iter().zip(&held) {
        let input = e.tokens as f64;
        let (old, new) = (without.predict(&e.vector, input), added.predict(&e.vector, input));
        for (a, b) in old.models.iter().zip(&new.models) {
            assert_eq!((&a.model, a.p_success.to_bits()), (&b.model, b.p_success.to_bits()));
        }
        let mine = new.models.last().unwrap();
        assert_eq!(mine.model, MODEL);
        assert!(!mine.prior_only);
        let original = trained.predict(&e.vector, input);
        let reference = original.models.iter().find(|m| m.model == MODEL).unwrap();
        versus_outcome.push((mine.p_success, row["score"].as_f64().unwrap()));
        versus_trained.push((mine.p_success, reference.p_success));
    }
    let auc_added = auc(&versus_outcome);
    let auc_trained = auc(&versus_trained.iter().zip(&versus_outcome).map(|(t, o)| (t.1, o.1)).collect::<Vec<_>>());
    eprintln!("held-out AUC: added {auc_added:.3}, trained with the router {auc_trained:.3}");
    // The bundled router is an irt router: one ability row per model over a few shared dimensions, coherent
    // across models but with little room for one model's per-prompt quirks; trained on all its rows it ranks
    // this model's held-out RouterArena outcomes at about 0.58. The added model must beat chance and match it.
    assert!(auc_added > 0.5, "the added model's P does not rank its held-out outcomes: AUC {auc_added:.3}");
    assert!(auc_added > auc_trained - 0.1, "added {auc_added:.3} vs trained {auc_trained:.3}");

    // Bad input changes nothing.
    let manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let out = add(&["--logs", &eval_arg, "--input-usd-per-mtok", "0.1", "--output-usd-per-mtok", "0.4"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("already has a model") && stderr.contains("--replace"),
        "{stderr}"
    );
    let few = work.path().join("few.jsonl");
    std::fs::write(&few, eval[..30].iter().map(|r| r.to_string() + "\n").collect::<String>()).unwrap();
    let out = add(&[
        "--replace",
        "--logs",
        few.to_str().unwrap(),
        "--input-usd-per-mtok",
        "0.1",
        "--output-usd-per-mtok",
        "0.4",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("only 30 distinct prompts") && stderr.contains("at least 50"),
        "{stderr}"
    );
    #[rustfmt::skip]
    let with_prior = |prior: &str| add(&[
        "--replace", "--prior", prior, "--mean-output-tokens", "100",
        "--input-usd-per-mtok", "0.1", "--output-usd-per-mtok", "0.4",
    ]);
    let out = with_prior("math=1.5");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("outside [0, 1]"), "{stderr}");
    let out = with_prior("astrology=0.5");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("no domain \"astrology\"") && stderr.contains("math"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("manifest.json")).unwrap(), manifest);
    // A router trained with another encoder refuses eval rows embedded by this one.
    let mut foreign = Router::load(&dir).unwrap();
    foreign.manifest.encoder.files_sha256 = Some("0000".into());
    let foreign_dir = work.path().join("foreign");
    foreign.save(&foreign_dir).unwrap();
    let out = switchyard_encoding(
        &[
            "profile",
            "add",
            "--router",
            foreign_dir.to_str().unwrap(),
            "--model",
            MODEL,
            "--replace",
            "--logs",
            &eval_arg,
            "--quiet",
        ],
        &cache,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("trained with encoder"), "{stderr}");

    // profile update merges new rows into the recorded eval file (which must still be there, unchanged).
    let more: Vec<&Value> = mine
        .iter()
        .copied()
        .filter(|r| r["split"] != "test" && seen.insert(r["prompt"].as_str().unwrap().to_string()))
        .take(30)
        .collect();
    let more_path = work.path().join("more.jsonl");
    std::fs::write(&more_path, more.iter().map(|r| r.to_string() + "\n").collect::<String>()).unwrap();
    let out = switchyard_encoding(
        &[
            "profile",
            "update",
            "--router",
            &router_arg,
            "--model",
            MODEL,
            "--logs",
            more_path.to_str().unwrap(),
            "--quiet",
        ],
        &cache,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let updated = Router::load(&dir).unwrap();
    let profile = updated.added_profile(MODEL).unwrap();
    assert_eq!((profile.prompts, profile.files.len()), (200 + more.len(), 2));
    assert_eq!(updated.manifest.models.last().unwrap().input_usd_per_mtok, 0.1);
    let out = switchyard_encoding(
        &["profile", "update", "--router", &router_arg, "--model", "gpt-4o", "--logs", &eval_arg],
        &cache,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("trained with the router"), "{stderr}");
}

#[test]
fn a_prior_only_model_is_chosen_in_its_strong_domains_only() {
    let work = tempfile::tempdir().unwrap();
    let dir = bundled_router(work.path());
    let out = switchyard_encoding(
        &[
            "profile",
            "add",
            "--router",
            dir.to_str().unwrap(),
            "--model",
            "mathstral-mini",
            "--prior",
            "math=0.97,all=0.15",
            "--input-usd-per-mtok",
            "0.01",
            "--output-usd-per-mtok",
            "0.01",
            "--mean-output-tokens",
            "150",
        ],
        &work.path().join("cache"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let router = Router::load(&dir).unwrap();
    let profile = router.added_profile("mathstral-mini").unwrap();
    assert_eq!(profile.basis, ProfileBasis::Prior);
    let listed = switchyard(&["profile", "list", "--router", dir.to_str().unwrap(), "--json"]);
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let entry = listed.iter().find(|p| p["model"] == "mathstral-mini").unwrap();
    assert_eq!(entry["added"]["basis"], "prior", "{entry}");

    let math = ["Solve for x: 3x + 7 = 22.", "What is the integral of 2x from 0 to 3?", "Factor x^2 - 5x + 6."];
    let other = [
        "Write a haiku about autumn rain.",
        "Summarise the plot of Hamlet in two sentences.",
        "What is the capital of Peru?",
    ];
    let choose = |texts: &[&str]| -> Vec<(String, bool)> {
        let embeddings = switchyard_encoder::embed_all(switchyard_testkit::encoder(), texts, 8).unwrap();
        embeddings
            .iter()
            .map(|e| {
                let (prediction, decision) =
                    router.route(&e.vector, e.tokens as f64, &router.manifest.default_policy).unwrap();
                let mine = prediction.models.iter().find(|m| m.model == "mathstral-mini").unwrap();
                assert!(mine.prior_only && mine.prior_weight > 0.99, "{mine:?}");
                (decision.model, mine.prior_only)
            })
            .collect()
    };
    for (model, _) in choose(&math) {
        assert_eq!(model, "mathstral-mini", "a math prompt went to {model}");
    }
    for (model, _) in choose(&other) {
        assert_ne!(model, "mathstral-mini");
    }
}
