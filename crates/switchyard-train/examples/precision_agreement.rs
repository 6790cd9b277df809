//! How often a router picks the same model for a prompt embedded in f32 and in int8, at its default policy:
//! `cargo run --release -p switchyard-train --example precision_agreement -- ROUTER_DIR PROMPTS.jsonl`.
//! PROMPTS.jsonl holds one JSON object with a "prompt" string per line (as the everyday fixture,
//! crates/switchyard-core/tests/fixtures/everyday-prompts.jsonl). Prints the share of prompts routed alike, with
//! a Wilson 95% interval, the cosines, and each prompt routed differently. The router is given both
//! embeddings directly: serving checks the precision a router was trained at; this measures why.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_core::{estimate_input_tokens, Router};
use switchyard_encoder::{Encoder, EncoderOptions, MiniLm, ModelLocator, Precision, DEFAULT_MODEL_DIR};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (router_dir, prompts) = (args.get(1).expect("ROUTER_DIR"), args.get(2).expect("PROMPTS.jsonl"));
    let router = Router::load(std::path::Path::new(router_dir)).unwrap();
    let locator = ModelLocator::new(DEFAULT_MODEL_DIR);
    let load = |precision| MiniLm::from_locator(&locator, EncoderOptions { precision, ..EncoderOptions::default() });
    let (f32s, int8) = (load(Precision::F32).unwrap(), load(Precision::Int8).unwrap());
    let texts: Vec<String> = std::fs::read_to_string(prompts)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt"].as_str().unwrap().to_string())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (a, b) = (f32s.embed_batch(&refs).unwrap(), int8.embed_batch(&refs).unwrap());
    let policy = router.manifest.default_policy.clone();
    let (mut same, mut min_cosine, mut cosines) = (0usize, f32::INFINITY, 0f64);
    for ((text, x), y) in texts.iter().zip(&a).zip(&b) {
        let tokens = estimate_input_tokens(text);
        let (dx, dy) = (router.route(&x.vector, tokens, &policy), router.route(&y.vector, tokens, &policy));
        let (mx, my) = (dx.map(|d| d.1.model).unwrap_or_default(), dy.map(|d| d.1.model).unwrap_or_default());
        let cosine: f32 = x.vector.iter().zip(&y.vector).map(|(p, q)| p * q).sum();
        (min_cosine, cosines) = (min_cosine.min(cosine), cosines + f64::from(cosine));
        if mx == my {
            same += 1;
        } else {
            println!("differs: f32 {mx}, int8 {my}: {:?}", text.chars().take(80).collect::<String>());
        }
    }
    let (n, p) = (texts.len() as f64, same as f64 / texts.len().max(1) as f64);
    // Wilson score interval, 95%.
    let z = 1.96f64;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
    println!(
        "{same} of {} prompts routed alike: {:.2}% [{:.2}, {:.2}]; cosine min {min_cosine:.5}, mean {:.5}",
        texts.len(),
        p * 100.0,
        (centre - half) * 100.0,
        (centre + half) * 100.0,
        cosines / n
    );
}
