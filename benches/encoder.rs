//! The encoder and a full routing decision, switchyard's fast CPU path side by side with candle-transformers'
//! stock `BertModel`, on the real all-MiniLM-L6-v2 weights and the bundled default router.
//!
//! `cargo bench -p switchyard-encoder --bench encoder` runs criterion on each case (batch 1 at 8/16/32/64/128
//! tokens; a batch of 32 15-token prompts; encode + heads + policy for one prompt), then prints a table of
//! p50s measured in alternating blocks (fast, stock, fast, stock, ...) in the same run, with their ratio.
//! `-- --quick` skips criterion and prints only the table. Needs the model in `models/all-MiniLM-L6-v2/`
//! (fetched automatically on first use). Set RAYON_NUM_THREADS to the cores to use (the binary does this).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use switchyard_core::{estimate_input_tokens, Router};
use switchyard_encoder::{Backend, Encoder, EncoderOptions, MiniLm, ModelLocator, TokenizedText, DEFAULT_MODEL_DIR};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(backend: Backend) -> MiniLm {
    let locator = ModelLocator::new(root().join(DEFAULT_MODEL_DIR));
    MiniLm::from_locator(&locator, EncoderOptions { backend, ..EncoderOptions::default() })
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
    fast: Box<dyn Fn()>,
    stock: Box<dyn Fn()>,
}

fn cases(fast: &'static MiniLm, stock: &'static MiniLm, router: &'static Router) -> Vec<Case> {
    let mut cases = Vec::new();
    for tokens in [8, 16, 32, 64, 128] {
        let input = vec![text_of(fast, tokens)];
        let (a, b) = (input.clone(), input);
        cases.push(Case {
            name: format!("batch 1, {tokens} tokens"),
            fast: Box::new(move || drop(fast.embed_tokenized(&a).unwrap())),
            stock: Box::new(move || drop(stock.embed_tokenized(&b).unwrap())),
        });
    }
    let batch: Vec<TokenizedText> = (0..32).map(|_| text_of(fast, 15)).collect();
    let (a, b) = (batch.clone(), batch);
    cases.push(Case {
        name: "batch 32 x 15 tokens".into(),
        fast: Box::new(move || drop(fast.embed_tokenized(&a).unwrap())),
        stock: Box::new(move || drop(stock.embed_tokenized(&b).unwrap())),
    });
    cases.push(Case {
        name: "decision (tokenize, encode, heads, policy)".into(),
        fast: Box::new(move || drop(decide(fast, router))),
        stock: Box::new(move || drop(decide(stock, router))),
    });
    cases
}

fn criterion_runs(c: &mut Criterion, fast: &MiniLm, stock: &MiniLm, router: &Router) {
    let mut group = c.benchmark_group("encoder_batch1");
    for tokens in [8, 16, 32, 64, 128] {
        let input = [text_of(fast, tokens)];
        for (name, encoder) in [("fast", fast), ("stock", stock)] {
            group.bench_with_input(BenchmarkId::new(name, tokens), &input, |b, input| {
                b.iter(|| encoder.embed_tokenized(input).unwrap())
            });
        }
    }
    group.finish();
    let batch: Vec<TokenizedText> = (0..32).map(|_| text_of(fast, 15)).collect();
    let mut group = c.benchmark_group("encoder_batch32x15");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(20);
    for (name, encoder) in [("fast", fast), ("stock", stock)] {
        group.bench_function(name, |b| b.iter(|| encoder.embed_tokenized(&batch).unwrap()));
    }
    group.finish();
    let mut group = c.benchmark_group("decision");
    for (name, encoder) in [("fast", fast), ("stock", stock)] {
        group.bench_function(name, |b| b.iter(|| decide(encoder, router)));
    }
    group.finish();
}

fn p50(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Both sides timed in alternating blocks (fast, stock, fast, ...) for about `budget` in all; the first calls
/// of each block are dropped, so neither side is timed while the other's idle threads are still spinning.
fn side_by_side(cases: &[Case], budget: Duration) {
    println!("\nside by side, p50 (alternating blocks in one run, {} threads)", rayon_threads());
    println!("{:<44} {:>12} {:>12} {:>8}", "case", "fast", "stock", "speed-up");
    let block = budget / 12;
    for case in cases {
        let (mut fast, mut stock) = (Vec::new(), Vec::new());
        for _ in 0..6 {
            for (run, samples) in [(&case.fast, &mut fast), (&case.stock, &mut stock)] {
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
        let (f, s) = (p50(&mut fast), p50(&mut stock));
        let ms = |d: Duration| format!("{:.3} ms", d.as_secs_f64() * 1e3);
        println!("{:<44} {:>12} {:>12} {:>7.2}x", case.name, ms(f), ms(s), s.as_secs_f64() / f.as_secs_f64());
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
    let fast: &'static MiniLm = Box::leak(Box::new(load(Backend::Fast)));
    let stock: &'static MiniLm = Box::leak(Box::new(load(Backend::Candle)));
    let router: &'static Router = Box::leak(Box::new(Router::load(&root().join("models/default")).unwrap()));
    let quick = std::env::args().any(|a| a == "--quick");
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_runs(&mut c, fast, stock, router);
        c.final_summary();
    }
    side_by_side(&cases(fast, stock, router), Duration::from_secs(if quick { 3 } else { 6 }));
}
