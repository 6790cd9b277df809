//! Unbiased retraining on logged-bandit data: exported decisions carry the probability (`propensity`) that the
//! logging router chose the model that answered, and `train` weights each row by its clipped, self-normalised
//! inverse. Simulated logs with a known truth, where the logging policy saw something the router cannot (a
//! prompt's hidden difficulty) and sent easy math to one model and hard math to the other: naive training
//! believes the model that got the easy prompts is best at math; inverse-propensity training recovers the truth.

use switchyard_core::{estimate_input_tokens, PredictorKind, Router};
use switchyard_train::{train, Dataset, EmbeddingCache, RowFilter, TrainOptions};

/// Deterministic pseudo-random numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// True P(success): on math, alpha is great on easy prompts and poor on hard ones (0.575 on average), beta
/// steady (0.75): beta is truly best. On writing, alpha (0.8) beats beta (0.5).
fn truth(model: &str, math: bool, hard: bool) -> f64 {
    match (model, math, hard) {
        ("alpha", true, false) => 0.95,
        ("alpha", true, true) => 0.2,
        ("beta", true, false) => 0.8,
        ("beta", true, true) => 0.7,
        ("alpha", false, _) => 0.8,
        _ => 0.5,
    }
}

const TOPICS: [&str; 12] = [
    "the sea",
    "autumn",
    "a city at night",
    "friendship",
    "a lost key",
    "the moon",
    "rain",
    "a garden",
    "trains",
    "snow",
    "a lighthouse",
    "coffee",
];

/// Logged-bandit rows: one decision per prompt, the logging policy's choice with its propensity, and an
/// outcome drawn from the truth. On math, the logger sends easy prompts to alpha and hard ones to beta, 9 times
/// in 10; on writing it picks either model half the time.
fn logs(rng: &mut Rng) -> (String, Vec<(String, bool)>) {
    let mut rows = String::new();
    let mut prompts = Vec::new();
    for i in 0..700 {
        let math = i % 7 < 5;
        let prompt = if math {
            format!(
                "Compute {} + {} and explain each step.",
                (rng.next() * 900.0) as u32 + 100,
                (rng.next() * 900.0) as u32 + 100
            )
        } else {
            format!("Write a short poem about {}, number {i}.", TOPICS[i % TOPICS.len()])
        };
        let hard = rng.next() < 0.5;
        let p_alpha = match (math, hard) {
            (true, false) => 0.9,
            (true, true) => 0.1,
            (false, _) => 0.5,
        };
        let (model, propensity) = if rng.next() < p_alpha { ("alpha", p_alpha) } else { ("beta", 1.0 - p_alpha) };
        let score = f64::from(u8::from(rng.next() < truth(model, math, hard)));
        let domain = if math { "math" } else { "writing" };
        let cost = if model == "alpha" { 0.001 } else { 0.002 };
        rows.push_str(
            &serde_json::json!({
                "prompt": prompt, "domain": domain, "model": model, "score": score,
                "propensity": propensity, "cost_usd": cost,
            })
            .to_string(),
        );
        rows.push('\n');
        prompts.push((prompt, math));
    }
    (rows, prompts)
}

/// The model with the highest mean predicted P(success) over a domain's prompts.
fn best(router: &Router, prompts: &[(String, bool)], embeddings: &[Vec<f32>], math: bool) -> (String, Vec<f64>) {
    let mut sums = vec![0.0; router.manifest.models.len()];
    let mut n = 0.0;
    for ((text, is_math), e) in prompts.iter().zip(embeddings) {
        if *is_math == math {
            let p = router.predict(e, estimate_input_tokens(text));
            sums.iter_mut().zip(&p.models).for_each(|(s, m)| *s += m.p_success);
            n += 1.0;
        }
    }
    let means: Vec<f64> = sums.iter().map(|s| s / n).collect();
    let top = means.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
    (router.manifest.models[top].model.clone(), means)
}

#[test]
fn inverse_propensity_training_recovers_the_true_best_model_where_naive_training_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, prompts) = logs(&mut Rng(0x5EED));
    let path = dir.path().join("exported.jsonl");
    std::fs::write(&path, rows).unwrap();
    let encoder = switchyard_testkit::encoder();
    let mut cache = EmbeddingCache::open(&dir.path().join("cache"), encoder).unwrap();
    let options = TrainOptions { candidates: vec![PredictorKind::Logistic], folds: 3, ..TrainOptions::default() };

    let dataset = Dataset::from_logs(std::slice::from_ref(&path), None, false, RowFilter::ExcludeTest).unwrap();
    assert_eq!(dataset.bandit_rows, 700);
    let weighted = train(&dataset, encoder, &mut cache, &options).unwrap();
    let mut naive_data = dataset.clone();
    naive_data.ignore_propensities();
    let naive = train(&naive_data, encoder, &mut cache, &options).unwrap();

    let texts: Vec<&str> = prompts.iter().map(|(t, _)| t.as_str()).collect();
    let embeddings: Vec<Vec<f32>> = cache.embed(encoder, &texts, 32, |_, _| {}).unwrap();
    let (math_ips, means_ips) = best(&weighted, &prompts, &embeddings, true);
    let (math_naive, means_naive) = best(&naive, &prompts, &embeddings, true);
    eprintln!("math, mean P (alpha, beta): inverse propensity {means_ips:?}, naive {means_naive:?}");
    assert_eq!(math_ips, "beta", "inverse-propensity training: {means_ips:?} (truth: alpha 0.575, beta 0.75)");
    assert_eq!(math_naive, "alpha", "naive training should be fooled by the logging policy: {means_naive:?}");
    // Writing was logged without confounding: both find alpha.
    assert_eq!(best(&weighted, &prompts, &embeddings, false).0, "alpha");
    assert_eq!(best(&naive, &prompts, &embeddings, false).0, "alpha");
}
