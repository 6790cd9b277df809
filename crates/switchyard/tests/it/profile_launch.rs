//! Launch day for a new model: `profile prompts` follows the traffic's mix, and a model added back by `profile
//! add` (the strongest one included) recovers what retraining would, measured by `bench --leave-out`.

use serde_json::Value;
use switchyard_core::Router;

use super::profiles::{bundled_router, default_logs, switchyard_encoding};

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
// Long: builds the synthetic launch (logs, eval rows, held-out prompts) and checks each domain, in order.
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
