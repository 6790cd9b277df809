//! Training on real routing data: the learned router ranks held-out outcomes better than chance and than the
//! same trainer on shuffled labels; artifacts round-trip; every predictor trains the same weights from the same
//! logs; sparse-only and pairwise-only logs train; the bundled default router routes with the running encoder.
//! (The CLI's `train`, `route`, `calibrate` and `bench` are tested in the `switchyard` crate.)

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};
use switchyard_core::{estimate_input_tokens, Catalog, Knob, Policy, PredictorKind, RouteReport, Router, Timing};
use switchyard_encoder::Encoder;
use switchyard_testkit::{embedding_cache, encoder, workspace_root};
use switchyard_train::{metrics, train, Dataset, EmbeddingCache, RowFilter, TrainOptions};

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

fn options(candidates: Vec<PredictorKind>) -> TrainOptions {
    TrainOptions { candidates, ..TrainOptions::default() }
}

fn train_on(logs: &[PathBuf], catalog: Option<&Catalog>, options: &TrainOptions) -> Router {
    let dataset = Dataset::from_logs(logs, catalog, false, RowFilter::ExcludeTest).unwrap();
    let mut cache = EmbeddingCache::open(embedding_cache(), encoder()).unwrap();
    train(&dataset, encoder(), &mut cache, options).unwrap()
}

/// AUC of the router's P(success) against the held-out (split = test) outcomes of `logs`.
fn held_out_auc(router: &Router, logs: &[PathBuf]) -> f64 {
    let test = Dataset::from_logs(logs, None, false, RowFilter::TestOrAll).unwrap();
    let mut cache = EmbeddingCache::open(embedding_cache(), encoder()).unwrap();
    let texts: Vec<&str> = test.prompts.iter().map(|p| p.text.as_str()).collect();
    let vectors = cache.embed(encoder(), &texts, 32, |_, _| {}).unwrap();
    let mut pairs = Vec::new();
    for (prompt, vector) in test.prompts.iter().zip(&vectors) {
        let prediction = router.predict(vector, 100.0);
        for &(m, score) in &prompt.outcomes {
            let name = &test.models[m];
            let estimate = prediction.models.iter().find(|e| &e.model == name).unwrap();
            pairs.push((estimate.p_success as f32, score));
        }
    }
    metrics::auc(&pairs)
}

/// RouterArena (809 real prompts, 2 models, ~60 task groups), trained once per test binary.
fn arena_router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let catalog = Catalog::load(&set_path("routerarena", "catalog.toml")).unwrap();
        train_on(&[set_path("routerarena", "logs.jsonl.gz")], Some(&catalog), &TrainOptions::default())
    })
}

#[test]
fn large_logs_choose_on_a_sample_and_refit_on_every_prompt() {
    // RouterArena with the cross-validation sample set below its size: the choice is made on about 300
    // prompts, the router is still fitted on all of them, and a kNN memory keeps the sample only.
    let catalog = Catalog::load(&set_path("routerarena", "catalog.toml")).unwrap();
    let logs = [set_path("routerarena", "logs.jsonl.gz")];
    let all = Dataset::from_logs(&logs, Some(&catalog), false, RowFilter::ExcludeTest).unwrap().prompts.len();
    let options = TrainOptions { cv_sample: 300, ..options(vec![PredictorKind::Knn]) };
    let router = train_on(&logs, Some(&catalog), &options);
    assert_eq!(router.manifest.training.prompts, all);
    assert!(
        router.manifest.training.cv_sample.is_some_and(|n| (250..=300).contains(&n)),
        "{:?}",
        router.manifest.training
    );
    let switchyard_core::Predictor::Knn(memory) = &router.predictor else { panic!("kNN was the only candidate") };
    assert!((250..=300).contains(&memory.len()), "memory of {} prompts out of {all}", memory.len());
    let auc = held_out_auc(&router, &logs);
    assert!(auc > 0.6, "held-out AUC {auc}");
}

#[test]
fn learned_router_beats_chance_and_shuffled_labels_on_held_out_prompts() {
    let logs = [set_path("routerarena", "logs.jsonl.gz")];
    let real = held_out_auc(arena_router(), &logs);

    // Same prompts, same trainer, outcomes shuffled across training prompts (test rows untouched).
    let mut rows = rows_of("routerarena");
    let train_idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i]["split"] == "train").collect();
    let mut scores: Vec<Value> = train_idx.iter().map(|&i| rows[i]["score"].clone()).collect();
    let mut state = 0x9e3779b97f4a7c15u64;
    for i in (1..scores.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        scores.swap(i, (state % (i as u64 + 1)) as usize);
    }
    for (&i, s) in train_idx.iter().zip(scores) {
        rows[i]["score"] = s;
    }
    let dir = tempfile::tempdir().unwrap();
    let shuffled_logs = [dir.path().join("shuffled.jsonl")];
    write_rows(&shuffled_logs[0], &rows);
    let catalog = Catalog::load(&set_path("routerarena", "catalog.toml")).unwrap();
    let shuffled = held_out_auc(&train_on(&shuffled_logs, Some(&catalog), &TrainOptions::default()), &logs);

    eprintln!("held-out AUC: learned {real:.3}, shuffled labels {shuffled:.3}");
    assert!(real > 0.65, "learned router AUC {real}");
    assert!(real - shuffled > 0.08, "learned {real} vs shuffled {shuffled}");
}

#[test]
fn output_lengths_beat_each_models_mean_on_held_out_token_counts() {
    let router = arena_router();
    assert!(router.lengths.is_some(), "RouterArena logs have output_tokens: lengths should be predicted");
    let test =
        Dataset::from_logs(&[set_path("routerarena", "logs.jsonl.gz")], None, false, RowFilter::TestOrAll).unwrap();
    let mut cache = EmbeddingCache::open(embedding_cache(), encoder()).unwrap();
    let texts: Vec<&str> = test.prompts.iter().map(|p| p.text.as_str()).collect();
    let vectors = cache.embed(encoder(), &texts, 32, |_, _| {}).unwrap();
    let (mut predicted, mut mean, mut n) = (0f64, 0f64, 0usize);
    for (prompt, vector) in test.prompts.iter().zip(&vectors) {
        let prediction = router.predict(vector, estimate_input_tokens(&prompt.text));
        for &(m, tokens) in &prompt.output_tokens {
            let name = &test.models[m];
            let estimate = prediction.models.iter().find(|e| &e.model == name).unwrap();
            let cost = router.manifest.models.iter().find(|c| &c.model == name).unwrap();
            let truth = f64::from(tokens).ln_1p();
            predicted += (estimate.output_tokens.ln_1p() - truth).abs();
            mean += (cost.mean_output_tokens.ln_1p() - truth).abs();
            n += 1;
        }
    }
    assert!(n > 100, "{n} held-out rows with token counts");
    let (predicted, mean) = (predicted / n as f64, mean / n as f64);
    eprintln!("held-out MAE of ln(1 + output tokens): predicted {predicted:.3}, per-model mean {mean:.3}");
    assert!(predicted < mean, "per-prompt lengths ({predicted:.3}) should beat each model's mean ({mean:.3})");
}

#[test]
fn far_prompts_fall_back_on_the_priors() {
    let router = arena_router();
    let texts = [
        // A held-out RouterArena-style prompt, and chat unlike anything in RouterArena.
        "Please solve the following mathematical problem step by step. Question: What is 17 * 23?",
        "lol 😂😂 brb gotta feed the cat, ttyl",
    ];
    let vectors = encoder().embed_batch(&texts).unwrap();
    let near = router.predict(&vectors[0].vector, estimate_input_tokens(texts[0]));
    let far = router.predict(&vectors[1].vector, estimate_input_tokens(texts[1]));
    assert!(near.ood < 0.9 && near.shrink == 0.0, "near: ood {} shrink {}", near.ood, near.shrink);
    assert!(far.ood >= 0.95 && far.shrink >= 0.5, "far: ood {} shrink {}", far.ood, far.shrink);
    // Every model's P leans on its prior at least as much as the shrinkage says, and the reason says why.
    for estimate in &far.models {
        assert!(estimate.prior_weight >= far.shrink - 1e-9, "{estimate:?}");
    }
    let policy = Policy::new(Knob::MinQuality(0.7));
    let (prediction, decision) = router.route(&vectors[1].vector, estimate_input_tokens(texts[1]), &policy).unwrap();
    let report = RouteReport::new(prediction, decision, policy, vectors[1].tokens, false, Timing::default());
    assert!(report.reason.contains("far from the training data"), "{}", report.reason);
}

#[test]
fn trained_artifact_round_trips_with_identical_decisions() {
    let router = arena_router();
    let validation = &router.manifest.validation;
    // Every setting of the four kinds, and the ensemble of each kind's best, cross-validated; the chosen first.
    for kind in
        [PredictorKind::Logistic, PredictorKind::Mf, PredictorKind::Mlp, PredictorKind::Knn, PredictorKind::Ensemble]
    {
        assert!(validation.iter().any(|m| m.kind == kind), "{kind} was not cross-validated");
    }
    assert_eq!(validation[0].kind, router.manifest.predictor);
    // Two models: the utility is APGR, with its interval.
    let u = validation[0].utility.as_ref().expect("a utility on two dense models");
    assert_eq!(u.metric, "apgr");
    assert!(u.lo <= u.value && u.value <= u.hi, "{u:?}");
    assert!(validation.iter().all(|m| m.utility.as_ref().is_none_or(|x| x.value <= u.value + 1e-9)));
    assert!(router.manifest.domains.contains(&"law".to_string()));
    let dir = tempfile::tempdir().unwrap();
    router.save(dir.path()).unwrap();
    let loaded = Router::load(dir.path()).unwrap();
    let prompts = ["Solve 3x + 5 = 20.", "Translate 'good morning' to German.", "Who wrote Hamlet?"];
    let embeddings = encoder().embed_batch(&prompts).unwrap();
    for e in &embeddings {
        for policy in [Knob::MinQuality(0.6), Knob::WillingnessToPay(0.002)] {
            let policy = switchyard_core::Policy::new(policy);
            let (pa, da) = router.route(&e.vector, 50.0, &policy).unwrap();
            let (pb, db) = loaded.route(&e.vector, 50.0, &policy).unwrap();
            assert_eq!(da, db);
            assert_eq!(pa, pb);
        }
    }
}

/// Training is reproducible: the same logs and options give the same weights, bit for bit (every initial
/// value is seeded; candle's own initialiser is not), for each predictor kind: logistic, MF, the MLP (the
/// default router's) and kNN.
#[test]
fn the_same_logs_train_the_same_router() {
    let logs = [set_path("routerarena", "logs.jsonl.gz")];
    let dir = tempfile::tempdir().unwrap();
    for kind in [PredictorKind::Logistic, PredictorKind::Mf, PredictorKind::Mlp, PredictorKind::Knn] {
        let options = options(vec![kind]);
        let weights: Vec<Vec<u8>> = ["a", "b"]
            .iter()
            .map(|name| {
                let out = dir.path().join(format!("{kind}-{name}"));
                let router = train_on(&logs, None, &options);
                assert_eq!(router.manifest.predictor, kind);
                router.save(&out).unwrap();
                std::fs::read(out.join("router.safetensors")).unwrap()
            })
            .collect();
        assert!(weights[0] == weights[1], "{kind}: two trainings on the same logs gave different weights");
    }
}

/// Each prompt seen by one model only, as in production logs.
#[test]
fn sparse_logs_train_a_useful_router() {
    let rows = rows_of("routerarena");
    let sparse: Vec<Value> = rows
        .iter()
        .filter(|r| {
            // Keep one model per prompt, alternating by prompt id; test rows stay dense for evaluation.
            let id = r["id"].as_str().unwrap();
            let pick = id.bytes().map(u32::from).sum::<u32>() % 2 == 0;
            r["split"] == "test" || (r["model"] == "gemini-2.0-flash-001") == pick
        })
        .cloned()
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("sparse.jsonl")];
    write_rows(&logs[0], &sparse);
    // No catalog: costs come from the rows' observed cost_usd.
    let router = train_on(&logs, None, &options(vec![PredictorKind::Mlp, PredictorKind::Logistic]));
    assert!(router.manifest.models.iter().all(|m| m.mean_cost_usd.is_some()));
    let auc = held_out_auc(&router, &logs);
    eprintln!("sparse-only held-out AUC {auc:.3}");
    assert!(auc > 0.6, "sparse-only AUC {auc}");
}

/// Arena-style rows only: GPT-4 vs Mixtral on GSM8K, the winner being the one that answered correctly.
#[test]
fn pairwise_logs_train_a_router_that_prefers_the_stronger_model() {
    let rows: Vec<Value> = rows_of("routellm").into_iter().filter(|r| r["task"] == "gsm8k").collect();
    let mut by_id: std::collections::BTreeMap<String, Vec<&Value>> = Default::default();
    for r in &rows {
        by_id.entry(r["id"].as_str().unwrap().to_string()).or_default().push(r);
    }
    let pairwise: Vec<Value> = by_id
        .values()
        .take(500)
        .map(|pair| {
            let (a, b) = (pair[0], pair[1]);
            let winner = match (a["score"].as_f64(), b["score"].as_f64()) {
                (Some(x), Some(y)) if x > y => "model_a",
                (Some(x), Some(y)) if x < y => "model_b",
                _ => "tie",
            };
            json!({"prompt": a["prompt"], "model_a": a["model"], "model_b": b["model"], "winner": winner,
                   "id": a["id"], "split": a["split"]})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let logs = [dir.path().join("pairwise.jsonl")];
    write_rows(&logs[0], &pairwise);
    let catalog = Catalog::load(&set_path("routellm", "catalog.toml")).unwrap();
    let router = train_on(&logs, Some(&catalog), &options(vec![PredictorKind::Mlp, PredictorKind::Knn]));
    let prediction = router.predict(
        &encoder().embed_batch(&["A train travels 60 miles in 1.5 hours. What is its average speed?"]).unwrap()[0]
            .vector,
        30.0,
    );
    let p = |name: &str| prediction.models.iter().find(|m| m.model == name).unwrap().p_success;
    assert!(p("gpt-4-1106-preview") > p("mixtral-8x7b-instruct-v0.1"), "{prediction:?}");
}

/// The bundled default router loads with the running encoder and routes among its 15 catalog models.
#[test]
fn bundled_default_router_routes() {
    let router = Router::load(&switchyard_testkit::default_router()).unwrap();
    let info = switchyard_core::EncoderInfo {
        id: encoder().id().to_string(),
        dim: encoder().dim(),
        max_tokens: encoder().max_tokens(),
        files_sha256: encoder().files_digest().map(str::to_string),
        precision: None,
    };
    router.check_encoder(&info).unwrap();
    let catalog = Catalog::load(&set_path("default", "catalog.toml")).unwrap();
    assert_eq!(router.manifest.models.len(), catalog.models.len());
    let e = encoder().embed_batch(&["Integrate x^2 from 0 to 3.", "Summarise the plot of Hamlet."]).unwrap();
    for (embedding, text) in e.iter().zip(["Integrate x^2 from 0 to 3.", "Summarise the plot of Hamlet."]) {
        let (prediction, decision) = router
            .route(&embedding.vector, switchyard_core::estimate_input_tokens(text), &router.manifest.default_policy)
            .unwrap();
        assert!(catalog.get(&decision.model).is_some());
        assert_eq!(decision.ranking.len(), 15);
        assert!(prediction.models.iter().all(|m| (0.0..=1.0).contains(&m.p_success) && m.expected_cost_usd > 0.0));
    }
}
