//! Encoder latency and throughput on the real all-MiniLM-L6-v2 weights.
//!
//! `cargo bench -p switchyard-encoder --bench encoder` — batch-1 latency at 8/16/32/64/128 tokens, and
//! throughput at batch 32 of 15-token prompts. Needs the model in `models/all-MiniLM-L6-v2/` (fetched
//! automatically on first use).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard_encoder::{EncoderOptions, MiniLm, ModelLocator, TokenizedText, DEFAULT_MODEL_DIR};

fn load() -> MiniLm {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let locator = ModelLocator::new(root.join(DEFAULT_MODEL_DIR));
    MiniLm::from_locator(&locator, EncoderOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A text of exactly `tokens` tokens ([CLS] and [SEP] included).
fn text_of(encoder: &MiniLm, tokens: usize) -> TokenizedText {
    let words = "route every prompt to the cheapest model likely to succeed while keeping quality high ";
    let text = words.repeat(tokens);
    let tokenizer = encoder.tokenizer();
    let mut t = tokenizer.encode(&text).unwrap();
    let sep = *t.ids.last().unwrap();
    t.ids.truncate(tokens - 1);
    t.ids.push(sep);
    t
}

fn latency(c: &mut Criterion) {
    let encoder = load();
    let mut group = c.benchmark_group("encoder_batch1");
    for tokens in [8, 16, 32, 64, 128] {
        let input = [text_of(&encoder, tokens)];
        group.bench_with_input(BenchmarkId::from_parameter(tokens), &input, |b, input| {
            b.iter(|| encoder.embed_tokenized(input).unwrap())
        });
    }
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let encoder = load();
    let batch: Vec<TokenizedText> = (0..32).map(|_| text_of(&encoder, 15)).collect();
    let mut group = c.benchmark_group("encoder_batch32x15");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.sample_size(20);
    group.bench_function("embed", |b| b.iter(|| encoder.embed_tokenized(&batch).unwrap()));
    group.finish();
}

criterion_group!(benches, latency, throughput);
criterion_main!(benches);
