//! The encoder and a full routing decision: switchyard's fast CPU path in f32 and in int8, side by side with
//! candle-transformers' stock `BertModel`, on the real all-MiniLM-L6-v2 weights and the bundled default router.
//!
//! `cargo bench -p switchyard-encoder --bench encoder` runs criterion on each case (batch 1 at 8/16/32/64/128
//! tokens; a batch of 32 15-token prompts; encode + heads + policy for one prompt), then prints a table of
//! p50s measured in alternating blocks (f32, int8, stock, f32, ...) in the same run, with their ratios.
//! `-- --quick` skips criterion and prints only the table. Needs the model in `models/all-MiniLM-L6-v2/`
//! (fetched automatically on first use). Set RAYON_NUM_THREADS to the cores to use (the binary does this).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use switchyard_core::{estimate_input_tokens, Router};
use switchyard_encoder::{
    Backend, Encoder, EncoderOptions, MiniLm, ModelLocator, Precision, TokenizedText, DEFAULT_MODEL_DIR,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(backend: Backend, precision: Precision) -> MiniLm {
    let locator = ModelLocator::new(root().join(DEFAULT_MODEL_DIR));
    MiniLm::from_locator(&locator, EncoderOptions { backend, precision, ..EncoderOptions::default() })
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A text of exactly `tokens` tokens ([CLS] and [SEP] included).
fn text_of(encoder: &MiniLm, tokens: usize) -> TokenizedText {
    let words = "route every prompt to the cheapest model likely to succeed while keeping quality high ";
    let mut t = encoder.tokenizer().encode(&words.repeat(tokens)).unwrap();
    let sep = *t.ids.last().unwrap();
    t.ids.truncate(tokens - 1);
    t.ids.push(sep);
    t
}

/// A 15-token prompt (13 words), as in the decision-rate target.
const PROMPT: &str = "Which of these two contracts gives the tenant more rights overall?";

fn decide(encoder: &MiniLm, router: &Router) -> String {
    let embedding = encoder.embed_batch(&[PROMPT]).unwrap().remove(0);
    let policy = router.manifest.default_policy.clone();
    router.route(&embedding.vector, estimate_input_tokens(PROMPT), &policy).unwrap().1.model
}

struct Case {
    name: String,
    /// The same work on each encoder, in the order of [`ENCODERS`].
    runs: Vec<Box<dyn Fn()>>,
}

/// The encoders compared, by column.
const ENCODERS: [&str; 3] = ["f32", "int8", "stock"];

fn cases(encoders: [&'static MiniLm; 3], router: &'static Router) -> Vec<Case> {
    let mut cases = Vec::new();
    for tokens in [8, 16, 32, 64, 128] {
        let input = vec![text_of(encoders[0], tokens)];
        cases.push(Case {
            name: format!("batch 1, {tokens} tokens"),
            runs: encoders
                .map(|e| {
                    let input = input.clone();
                    Box::new(move || drop(e.embed_tokenized(&input).unwrap())) as Box<dyn Fn()>
                })
                .into(),
        });
    }
    let batch: Vec<TokenizedText> = (0..32).map(|_| text_of(encoders[0], 15)).collect();
    cases.push(Case {
        name: "batch 32 x 15 tokens".into(),
        runs: encoders
            .map(|e| {
                let batch = batch.clone();
                Box::new(move || drop(e.embed_tokenized(&batch).unwrap())) as Box<dyn Fn()>
            })
            .into(),
    });
    cases.push(Case {
        name: "decision (tokenize, encode, heads, policy)".into(),
        runs: encoders.map(|e| Box::new(move || drop(decide(e, router))) as Box<dyn Fn()>).into(),
    });
    cases
}

fn criterion_runs(c: &mut Criterion, encoders: [&MiniLm; 3], router: &Router) {
    let mut group = c.benchmark_group("encoder_batch1");
    for tokens in [8, 16, 32, 64, 128] {
        let input = [text_of(encoders[0], tokens)];
        for (name, encoder) in ENCODERS.into_iter().zip(encoders) {
            group.bench_with_input(BenchmarkId::new(name, tokens), &input, |b, input| {
                b.iter(|| encoder.embed_tokenized(input).unwrap())
            });
        }
    }
    group.finish();
    let batch: Vec<TokenizedText> = (0..32).map(|_| text_of(encoders[0], 15)).collect();
    let mut group = c.benchmark_group("encoder_batch32x15");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(20);
    for (name, encoder) in ENCODERS.into_iter().zip(encoders) {
        group.bench_function(name, |b| b.iter(|| encoder.embed_tokenized(&batch).unwrap()));
    }
    group.finish();
    let mut group = c.benchmark_group("decision");
    for (name, encoder) in ENCODERS.into_iter().zip(encoders) {
        group.bench_function(name, |b| b.iter(|| decide(encoder, router)));
    }
    group.finish();
}

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Every encoder timed in alternating blocks (f32, int8, stock, f32, ...) for about `budget` in all; the
/// first calls of each block are dropped, so no encoder is timed while another's idle threads still spin.
fn side_by_side(cases: &[Case], budget: Duration) {
    println!("\nside by side, p50 (alternating blocks in one run, {} threads)", rayon_threads());
    println!(
        "{:<44} {:>11} {:>11} {:>11} {:>9} {:>10}",
        "case", ENCODERS[0], ENCODERS[1], ENCODERS[2], "int8/f32", "f32/stock"
    );
    let block = budget / (6 * ENCODERS.len() as u32);
    for case in cases {
        let mut samples = vec![Vec::new(); case.runs.len()];
        for _ in 0..6 {
            for (run, samples) in case.runs.iter().zip(&mut samples) {
                let start = Instant::now();
                let mut calls = 0;
                while start.elapsed() < block || calls < 8 {
                    let t = Instant::now();
                    run();
                    if calls >= 2 {
                        samples.push(t.elapsed());
                    }
                    calls += 1;
                }
            }
        }
        let p: Vec<f64> = samples.iter_mut().map(|s| p50(s).as_secs_f64()).collect();
        let ms = |s: f64| format!("{:.3} ms", s * 1e3);
        println!(
            "{:<44} {:>11} {:>11} {:>11} {:>8.2}x {:>9.2}x",
            case.name,
            ms(p[0]),
            ms(p[1]),
            ms(p[2]),
            p[0] / p[1],
            p[2] / p[0]
        );
    }
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
}

fn main() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    let encoders: [&'static MiniLm; 3] =
        [(Backend::Fast, Precision::F32), (Backend::Fast, Precision::Int8), (Backend::Candle, Precision::F32)]
            .map(|(backend, precision)| &*Box::leak(Box::new(load(backend, precision))));
    let router: &'static Router = Box::leak(Box::new(Router::load(&root().join("models/default")).unwrap()));
    let quick = std::env::args().any(|a| a == "--quick");
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_runs(&mut c, encoders, router);
        c.final_summary();
    }
    side_by_side(&cases(encoders, router), Duration::from_secs(if quick { 3 } else { 6 }));
}
