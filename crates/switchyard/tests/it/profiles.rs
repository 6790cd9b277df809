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
fn switchyard_encoding(args: &[&str], cache: &std::path::Path) -> std::process::Output {
    switchyard_testkit::cli(crate::BIN).args(args).env("SWITCHYARD_CACHE_DIR", cache).output().unwrap()
}

/// A copy of the bundled default router in `work/router`.
fn bundled_router(work: &std::path::Path) -> std::path::PathBuf {
    let _ = switchyard_testkit::model_files();
    let dir = work.join("router");
    std::fs::create_dir(&dir).unwrap();
    for f in ["manifest.json", "router.safetensors"] {
        std::fs::copy(switchyard_testkit::default_router().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// The bundled training logs' rows, as JSON.
fn default_logs() -> Vec<Value> {
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

/// `bench --leave-out` on the RouteLLM set (GPT-4 and Mixtral): the model the full router depends on most is
/// left out, added back from 200 of its rows, and added back again from three more random samples; the
/// report holds every router's AIQ and the shares, and the three routers are saved.
#[test]
fn leave_one_out_adds_the_model_back_and_reports_its_share_of_the_gain() {
    let _ = switchyard_testkit::model_files();
    let work = tempfile::tempdir().unwrap();
    let logs = switchyard_testkit::workspace_root().join("training-data/routellm/logs.jsonl.gz");
    let catalog = switchyard_testkit::workspace_root().join("training-data/routellm/catalog.toml");
    let out = work.path().join("out");
    #[rustfmt::skip]
    let args = [
        "bench", "--quiet", "--train-logs", logs.to_str().unwrap(), "--logs", logs.to_str().unwrap(),
        "--catalog", catalog.to_str().unwrap(), "--leave-out", "auto", "--profile-rows", "200",
        "--profile-repeats", "3", "--predictor", "logistic", "--bootstrap", "50", "--out", out.to_str().unwrap(),
    ];
    let run = switchyard_encoding(&args, &work.path().join("cache"));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("leave-out.json")).unwrap()).unwrap();
    // Without Mixtral the router has GPT-4 alone and no trade-off to make: Mixtral is the one to leave out.
    assert_eq!(report["model"], "mixtral-8x7b-instruct-v0.1", "{report}");
    assert_eq!(report["profile_prompts"], 200);
    let aiq = |name: &str| report["aiq"][name]["aiq"].as_f64().unwrap_or_else(|| panic!("no AIQ for {name}"));
    let (full, added, zero) = (aiq("full"), aiq("added"), aiq("zero_router"));
    assert!(full > zero && added > zero && added > aiq("without"), "{report}");
    let share = report["added_share"]["value"].as_f64().unwrap();
    assert!((share - (added - zero) / (full - zero)).abs() < 1e-9, "{report}");
    assert!(share > 0.5, "200 rows recover most of the gain: {share}");
    assert!(report["added_share"]["ci"]["lo"].as_f64().unwrap() <= share);
    let shares: Vec<f64> = report["resampled_shares"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect();
    assert_eq!(shares.len(), 3, "{report}");
    assert!(shares.iter().all(|&s| s > 0.5), "every random sample recovers most of the gain: {shares:?}");
    assert!(stdout.contains("added back from 3 more random samples of 200 prompts"), "{stdout}");
    // Retraining that knows Mixtral from the same 200 prompts alone, on the same resamples.
    let retrained = report["retrained_share"]["value"].as_f64().unwrap();
    assert!((retrained - (aiq("retrained") - zero) / (full - zero)).abs() < 1e-9, "{report}");
    let vs = report["added_minus_retrained"]["value"].as_f64().unwrap();
    assert!((vs - (added - aiq("retrained"))).abs() < 1e-9, "{report}");
    let ci = &report["added_minus_retrained"]["ci"];
    assert!(ci["lo"].as_f64().unwrap() < ci["hi"].as_f64().unwrap(), "{report}");
    assert!(stdout.contains("retrained with the same 200 prompts of it:"), "{stdout}");
    for name in ["full", "without", "added", "retrained"] {
        let router = Router::load(&out.join("routers").join(name)).unwrap();
        let has = router.manifest.models.iter().any(|c| c.model == "mixtral-8x7b-instruct-v0.1");
        assert_eq!(has, name != "without", "{name}");
    }
    // Repeats of a sample holding every prompt of the model would all be the same: refused, saying what to do.
    let mut all_rows = args.to_vec();
    let rows = all_rows.iter().position(|a| *a == "200").unwrap();
    all_rows[rows] = "100000";
    let run = switchyard_encoding(&all_rows, &work.path().join("cache"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && stderr.contains("every repeat would") && stderr.contains("--profile-rows below 1220"),
        "{stderr}"
    );
}

/// `bench --leave-out strongest`: the launch-day case, a model better than every other (on RouteLLM, GPT-4,
/// with the higher mean success in the training rows) left out and added back.
#[test]
fn the_strongest_model_can_be_the_one_left_out() {
    let _ = switchyard_testkit::model_files();
    let work = tempfile::tempdir().unwrap();
    let logs = switchyard_testkit::workspace_root().join("training-data/routellm/logs.jsonl.gz");
    let catalog = switchyard_testkit::workspace_root().join("training-data/routellm/catalog.toml");
    let out = work.path().join("out");
    #[rustfmt::skip]
    let args = [
        "bench", "--quiet", "--train-logs", logs.to_str().unwrap(), "--logs", logs.to_str().unwrap(),
        "--catalog", catalog.to_str().unwrap(), "--leave-out", "strongest", "--profile-rows", "200",
        "--predictor", "logistic", "--bootstrap", "20", "--out", out.to_str().unwrap(),
    ];
    let run = switchyard_encoding(&args, &work.path().join("cache"));
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("leave-out.json")).unwrap()).unwrap();
    assert_eq!(report["model"], "gpt-4-1106-preview", "{report}");
    assert!(report["picked"].as_str().unwrap().contains("highest mean success"), "{report}");
    assert_eq!(report["profile_prompts"], 200);
}

/// `profile prompts` picks prompts in the logs' mix over the router's domains and prints both mixes.
#[test]
fn profile_prompts_follow_the_logs_mix() {
    let _ = switchyard_testkit::model_files();
    let work = tempfile::tempdir().unwrap();
    // 240 prompts of the default logs: 120 math, 80 code, 40 of other domains.
    let mut seen = std::collections::HashSet::new();
    let mut counts = std::collections::HashMap::new();
    let mut lines = String::new();
    for row in default_logs() {
        let domain = row["domain"].as_str().unwrap_or("other").to_string();
        let group = match domain.as_str() {
            "math" => "math",
            "code" => "code",
            _ => "other",
        };
        let want = match group {
            "math" => 120,
            "code" => 80,
            _ => 40,
        };
        let prompt = row["prompt"].as_str().unwrap().to_string();
        let n = counts.entry(group).or_insert(0);
        if *n < want && seen.insert(prompt.clone()) {
            *n += 1;
            lines.push_str(&serde_json::json!({"prompt": prompt, "model": "m", "score": 1}).to_string());
            lines.push('\n');
        }
    }
    let logs = work.path().join("logs.jsonl");
    std::fs::write(&logs, lines).unwrap();
    let router = switchyard_testkit::default_router();
    let args = ["profile", "prompts", "--quiet", "--logs", logs.to_str().unwrap(), "--n", "24", "--router"];
    let mut args = args.to_vec();
    args.push(router.to_str().unwrap());
    let run = switchyard_encoding(&args, &work.path().join("cache"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let picked: Vec<Value> =
        String::from_utf8_lossy(&run.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(picked.len(), 24);
    // The printed table: each domain's share in the logs and in the sample, within 5 points of each other.
    let rows: Vec<(String, f64, f64)> = stderr
        .lines()
        .skip_while(|l| !l.starts_with("domain"))
        .skip(1)
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            Some((parts.first()?.to_string(), parts.get(1)?.parse().ok()?, parts.get(2)?.parse().ok()?))
        })
        .collect();
    assert!(rows.iter().any(|(d, _, _)| d == "math"), "{stderr}");
    for (domain, logs, sample) in &rows {
        assert!((logs - sample).abs() <= 5.0 + 100.0 / 24.0, "{domain}: {logs} against {sample}\n{stderr}");
    }
}

/// Launch day: a new model better than every model the router has, on every domain, added from 200 rows
/// (the prompts `profile prompts` picks), must get the highest mean P on held-out prompts of each domain.
#[test]
fn a_new_model_better_than_all_gets_the_highest_p_in_every_domain() {
    const MODEL: &str = "frontier-next";
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let dir = bundled_router(work.path());
    let router_arg = dir.to_str().unwrap().to_string();
    let rows = default_logs();
    // Every distinct training prompt with its domain, and the best score any model got on it.
    let mut prompts: Vec<(String, String)> = Vec::new();
    let mut best: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for r in rows.iter().filter(|r| r["split"] != "test") {
        let prompt = r["prompt"].as_str().unwrap().to_string();
        let score = r["score"].as_f64().unwrap_or(0.0);
        let entry = best.entry(prompt.clone()).or_insert_with(|| {
            prompts.push((prompt.clone(), r["domain"].as_str().unwrap_or("").to_string()));
            0.0
        });
        *entry = entry.max(score);
    }
    // The traffic: 1,200 prompts, every 7th held out.
    let traffic: Vec<&(String, String)> = prompts.iter().step_by(prompts.len() / 1200).take(1200).collect();
    let (held, pool): (Vec<_>, Vec<_>) = traffic.iter().enumerate().partition(|(i, _)| i % 7 == 0);
    let pool_path = work.path().join("traffic.jsonl");
    let pool_text: String = pool
        .iter()
        .map(|(_, (p, _))| serde_json::json!({"prompt": p, "model": "m", "score": 1}).to_string() + "\n")
        .collect();
    std::fs::write(&pool_path, pool_text).unwrap();
    let picked = switchyard_encoding(
        &[
            "profile",
            "prompts",
            "--quiet",
            "--logs",
            pool_path.to_str().unwrap(),
            "--n",
            "200",
            "--router",
            &router_arg,
        ],
        &cache,
    );
    assert!(picked.status.success(), "{}", String::from_utf8_lossy(&picked.stderr));
    // The new model succeeds wherever any model did, and on most of the rest too.
    let eval: String = String::from_utf8_lossy(&picked.stdout)
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let prompt = serde_json::from_str::<Value>(line).unwrap()["prompt"].as_str().unwrap().to_string();
            let score = if best[&prompt] >= 0.5 || i % 5 != 0 { 1 } else { 0 };
            serde_json::json!({"prompt": prompt, "model": MODEL, "score": score}).to_string() + "\n"
        })
        .collect();
    let eval_path = work.path().join("eval.jsonl");
    std::fs::write(&eval_path, eval).unwrap();
    #[rustfmt::skip]
    let out = switchyard_encoding(&[
        "profile", "add", "--router", &router_arg, "--model", MODEL, "--quiet", "--logs", eval_path.to_str().unwrap(),
        "--input-usd-per-mtok", "5", "--output-usd-per-mtok", "15", "--mean-output-tokens", "300",
    ], &cache);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let router = Router::load(&dir).unwrap();
    // Mean P per domain on the held-out prompts: the new model's is the highest in every domain with 10 of them.
    let texts: Vec<&str> = held.iter().map(|(_, (p, _))| p.as_str()).collect();
    let embeddings = switchyard_encoder::embed_all(switchyard_testkit::encoder(), &texts, 16).unwrap();
    let mut sums: std::collections::BTreeMap<&str, (Vec<f64>, usize)> = std::collections::BTreeMap::new();
    for (e, (_, (_, domain))) in embeddings.iter().zip(&held) {
        let prediction = router.predict(&e.vector, e.tokens as f64);
        let entry = sums.entry(domain.as_str()).or_insert_with(|| (vec![0.0; prediction.models.len()], 0));
        prediction.models.iter().enumerate().for_each(|(m, est)| entry.0[m] += est.p_success);
        entry.1 += 1;
    }
    let names: Vec<&str> = router.manifest.models.iter().map(|m| m.model.as_str()).collect();
    let mut checked = 0;
    for (domain, (p, n)) in sums.iter().filter(|(_, (_, n))| *n >= 10) {
        let mine = p[names.iter().position(|m| *m == MODEL).unwrap()];
        let (top, best) = p.iter().enumerate().fold((0, f64::MIN), |b, (m, &v)| if v > b.1 { (m, v) } else { b });
        assert_eq!(
            names[top],
            MODEL,
            "{domain}: {} has mean P {:.3}, {MODEL} {:.3} ({n} prompts)",
            names[top],
            best / *n as f64,
            mine / *n as f64
        );
        checked += 1;
    }
    assert!(checked >= 4, "{sums:?}");
}
