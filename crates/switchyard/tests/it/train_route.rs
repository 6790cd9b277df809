//! The CLI on real routing data: `train`, `route` and `calibrate`, with clear errors for bad input; and
//! `bench`, whose report and plots hold every baseline and RouterArena's figures as the README gives them.
//! (Training itself is tested in switchyard-train.)

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use switchyard_testkit::workspace_root;

fn set_path(set: &str, file: &str) -> PathBuf {
    workspace_root().join("training-data").join(set).join(file)
}

/// Every row of a shipped set, as JSON.
fn rows_of(set: &str) -> Vec<Value> {
    let file = std::fs::File::open(set_path(set, "logs.jsonl.gz")).unwrap();
    let reader = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    reader.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect()
}

fn write_rows(path: &Path, rows: &[Value]) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for row in rows {
        writeln!(out, "{row}").unwrap();
    }
}

fn switchyard(args: &[&str]) -> std::process::Output {
    switchyard_testkit::cli(crate::BIN).args(args).output().unwrap()
}

#[test]
// Long: one CLI scenario: train, route, then each bad input on the router it trained.
fn cli_trains_then_routes_and_reports_bad_input() {
    switchyard_testkit::model_files();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("router");
    let logs = set_path("routerarena", "logs.jsonl.gz");
    let catalog = set_path("routerarena", "catalog.toml");
    let o = switchyard(&[
        "train",
        "--quiet",
        "--predictor",
        "mlp",
        "--logs",
        logs.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = switchyard(&[
        "route",
        "--router",
        out.to_str().unwrap(),
        "--min-quality",
        "0.5",
        "What is the derivative of x^3?",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decision: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(["claude-3-haiku-20240307", "gemini-2.0-flash-001"].contains(&decision["model"].as_str().unwrap()));
    assert_eq!(decision["models"].as_array().unwrap().len(), 2);
    assert!(decision["complexity"].as_f64().is_some() && decision["domains"][0]["domain"].is_string());
    assert!(decision["timing_ms"]["encode"].as_f64().is_some());

    // Calibration writes the knob that sends half the calls to gemini into the router's default policy.
    let o = switchyard(&[
        "calibrate",
        "--router",
        out.to_str().unwrap(),
        "--logs",
        logs.to_str().unwrap(),
        "--share",
        "gemini-2.0-flash-001=0.5",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let q = manifest["default_policy"]["knob"]["min_quality"].as_f64().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!("min_quality: {q}")) && text.contains("share of calls to gemini-2.0-flash-001"),
        "{text}"
    );

    // A bad row stops training with file:line, and --skip-bad-rows counts it.
    let bad = dir.path().join("bad.jsonl");
    let mut rows: Vec<Value> = rows_of("routerarena").into_iter().take(200).collect();
    rows.insert(3, json!({"prompt": "p", "model": "claude-3-haiku-20240307", "score": 7}));
    write_rows(&bad, &rows);
    let o = switchyard(&["train", "--quiet", "--logs", bad.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bad.jsonl:4:") && err.contains("--skip-bad-rows"), "{err}");
    let o = switchyard(&[
        "train",
        "--quiet",
        "--predictor",
        "knn",
        "--skip-bad-rows",
        "--logs",
        bad.to_str().unwrap(),
        "--out",
        dir.path().join("r2").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && err.contains("1 bad rows skipped"), "{err}");

    // A predictor that does not exist, more folds than prompts, output lengths without token counts, and
    // broken profiles: each a clear error, nothing panics.
    let no_tokens = dir.path().join("no-tokens.jsonl");
    let stripped: Vec<Value> = rows_of("routerarena")
        .into_iter()
        .take(300)
        .map(|mut r| {
            let o = r.as_object_mut().unwrap();
            o.remove("output_tokens");
            o.remove("input_tokens");
            r
        })
        .collect();
    write_rows(&no_tokens, &stripped);
    let profiles = dir.path().join("profiles.toml");
    std::fs::write(&profiles, "[[profiles]]\nmodel = \"gemini-2.0-flash-001\"\nmmlu_redux = 87.5\n").unwrap();
    let r3 = dir.path().join("r3");
    for (extra, expected) in [
        (vec!["--predictor", "forest"], "invalid value 'forest' for '--predictor"),
        (vec!["--folds", "5000"], "into 5000 folds: lower --folds"),
        (vec!["--folds", "1"], "--folds must be at least 2"),
        (vec!["--cv-sample", "5"], "--cv-sample must be at least 20"),
        (vec!["--output-tokens", "predict"], "output-length prediction needs logs with output_tokens"),
        (vec!["--profiles", profiles.to_str().unwrap()], "mmlu_redux must be a fraction in [0, 1]"),
    ] {
        let mut args = vec!["train", "--quiet", "--logs", no_tokens.to_str().unwrap(), "--out", r3.to_str().unwrap()];
        args.extend(extra);
        let o = switchyard(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // A catalog that lacks a model of the logs, and one with a negative price.
    let cat = dir.path().join("c.toml");
    for (catalog, expected) in [
        ("[[models]]\nname = \"claude-3-haiku-20240307\"\n", "not in the catalog: gemini-2.0-flash-001"),
        ("[[models]]\nname = \"a\"\noutput_usd_per_mtok = -2\n", "output_usd_per_mtok must be a number >= 0"),
    ] {
        std::fs::write(&cat, catalog).unwrap();
        let o = switchyard(&[
            "train",
            "--logs",
            logs.to_str().unwrap(),
            "--catalog",
            cat.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(expected), "{err}");
    }

    // Routing with a bad knob or an unknown model is a clear error.
    let o = switchyard(&["route", "--router", out.to_str().unwrap(), "--min-quality", "2", "hi"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("min_quality must be in [0, 1]"));
    let o = switchyard(&["route", "--router", out.to_str().unwrap(), "--allow", "gpt-9", "hi"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model \"gpt-9\""));
    let o = switchyard(&["route", "--router", dir.path().join("nope").to_str().unwrap(), "hi"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("manifest.json"));
}

/// `switchyard bench` trains in the same run, sweeps, compares with every baseline and writes the report
/// and the plots.
#[test]
// Long: one bench run, then each of its outputs checked in turn.
fn cli_bench_writes_report_and_plots() {
    switchyard_testkit::model_files();
    let dir = tempfile::tempdir().unwrap();
    let logs = set_path("routerarena", "logs.jsonl.gz");
    let o = switchyard(&[
        "bench",
        "--quiet",
        "--predictor",
        "mlp",
        "--train-logs",
        logs.to_str().unwrap(),
        "--logs",
        logs.to_str().unwrap(),
        "--catalog",
        set_path("routerarena", "catalog.toml").to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("learned router") && table.contains("knn40") && table.contains("zero_router"), "{table}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    let m = &report["metrics"];
    for key in ["aiq", "apgr", "cpt50", "cpt80", "ece", "auc"] {
        assert!(m[key].is_number(), "metrics.{key} missing: {m}");
    }
    for name in ["zero_router", "random", "oracle", "knn10", "knn40", "model:gemini-2.0-flash-001"] {
        assert!(report["baselines"][name]["aiq"].is_number(), "baseline {name} missing");
    }
    // A two-model set: the random router's APGR is 0.5 by definition, the oracle's is the best possible.
    assert_eq!(report["baselines"]["random"]["apgr"], 0.5);
    assert!(report["baselines"]["oracle"]["apgr"].as_f64().unwrap() > m["apgr"].as_f64().unwrap());
    // RouterArena's row of the README's benchmark table (`scripts/bench-all.sh` runs this bench without
    // `--predictor mlp`, with the same figures on this set): the learned AIQ 0.4910 [0.4414, 0.5384], no better and no worse than the zero router
    // (the single models' hull: +0.0000 [+0.0000, +0.0000]), and APGR above the zero router's with its whole
    // interval above 0 (+0.1836 [+0.0461, +0.4116]).
    let near = |value: &Value, want: f64| (value.as_f64().unwrap() - want).abs() < 5e-5;
    assert!(near(&m["aiq"], 0.4910) && near(&m["aiq_ci"]["lo"], 0.4414) && near(&m["aiq_ci"]["hi"], 0.5384), "{m}");
    let differences = report["differences"].as_array().unwrap();
    let difference = |metric: &str, baseline: &str| {
        differences.iter().find(|d| d["metric"] == metric && d["baseline"] == baseline).unwrap().clone()
    };
    let aiq_vs_zero = difference("aiq", "zero_router");
    assert!(near(&aiq_vs_zero["value"], 0.0) && near(&aiq_vs_zero["ci"]["lo"], 0.0), "{aiq_vs_zero}");
    let apgr_vs_zero = difference("apgr", "zero_router");
    assert!(apgr_vs_zero["ci"]["lo"].as_f64().unwrap() > 0.0, "learned - zero router APGR: {apgr_vs_zero}");
    let curve = report["curve"].as_array().unwrap();
    assert!(curve.len() > 100 && curve.iter().all(|p| p["cost"].is_number() && p["quality"].is_number()));
    // No leakage: the held-out prompts seen in training are counted (and left out).
    assert!(report["overlap_dropped"].is_u64(), "overlap_dropped missing");
    // Intervals next to each metric, around the value; the differences with theirs.
    let within = |m: &Value, key: &str| {
        let (v, ci) = (m[key].as_f64().unwrap(), &m[format!("{key}_ci")]);
        let (lo, hi) = (ci["lo"].as_f64().unwrap(), ci["hi"].as_f64().unwrap());
        assert!(lo <= v && v <= hi && lo < hi, "{key}: {v} outside [{lo}, {hi}]");
    };
    for key in ["aiq", "apgr", "cpt50"] {
        within(m, key);
        within(&report["baselines"]["knn40"], key);
    }
    for name in ["knn10", "zero_router", "oracle"] {
        within(&report["baselines"][name], "aiq");
    }
    for (metric, baseline) in [("aiq", "knn40"), ("aiq", "zero_router"), ("apgr", "knn40"), ("apgr", "zero_router")] {
        let d = differences.iter().find(|d| d["metric"] == metric && d["baseline"] == baseline).unwrap();
        let (v, lo, hi) =
            (d["value"].as_f64().unwrap(), d["ci"]["lo"].as_f64().unwrap(), d["ci"]["hi"].as_f64().unwrap());
        assert!(lo <= v && v <= hi, "{metric} learned - {baseline}: {v} outside [{lo}, {hi}]");
    }
    assert_eq!(report["bootstrap"]["resamples"], 1000);
    assert!(table.contains("learned router - knn40"), "{table}");
    // The oracle is a curve, above every router; its single point is kept beside it.
    assert!(report["oracle_curve"].as_array().unwrap().len() > 100);
    assert!(report["baselines"]["oracle"]["aiq"].as_f64().unwrap() > m["aiq"].as_f64().unwrap());
    assert!(report["baselines"]["oracle_point"]["cost"].is_number());
    for plot in ["curve.svg", "curve.png"] {
        assert!(std::fs::metadata(dir.path().join(plot)).unwrap().len() > 10_000, "{plot} is missing or empty");
    }
    // Options that train, given a router that is already trained: refused, saying what to give instead.
    let router = switchyard_testkit::default_router();
    for (option, value, says) in
        [("--leave-out", "auto", "--leave-out trains the routers"), ("--train-seed", "3", "--train-seed seeds")]
    {
        let args = ["bench", "--router", router.to_str().unwrap(), "--logs", logs.to_str().unwrap(), option, value];
        let o = switchyard(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(says) && stderr.contains("--train-logs"), "{stderr}");
    }
}
