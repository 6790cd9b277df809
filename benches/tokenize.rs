//! Tokenizing huge prompts: switchyard's tokenizer (runs of whitespace squeezed, the text cut at 64 bytes a
//! token before tokenizing) side by side with the model's stock tokenizer on the whole text, which is what a
//! prompt cost before the cut. Three 200,000-character prompts: prose, whitespace-padded words, one word.
//!
//! `cargo bench -p switchyard-encoder --bench tokenize` prints, per prompt, the median of each in alternating
//! blocks in the same run, and their ratio. Needs the model in `models/all-MiniLM-L6-v2/`.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use switchyard_encoder::{ModelLocator, PromptTokenizer, DEFAULT_MODEL_DIR};

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let files = ModelLocator::new(root.join(DEFAULT_MODEL_DIR)).locate().unwrap_or_else(|e| panic!("{e}"));
    let ours = PromptTokenizer::from_file(&files.tokenizer, 256, "").unwrap();
    let mut stock = tokenizers::Tokenizer::from_file(&files.tokenizer).unwrap();
    stock.with_padding(None);
    stock.with_truncation(None).unwrap();
    let prompts = [
        ("prose", "Route every prompt to the cheapest model likely to succeed. ".repeat(3400)),
        ("padded words", format!("word{}", " ".repeat(61)).repeat(3300)),
        ("one word", "x".repeat(200_000)),
    ];
    println!("| prompt (chars) | stock, whole text | switchyard | ratio |\n| --- | --- | --- | --- |");
    for (name, text) in &prompts {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            let t = Instant::now();
            std::hint::black_box(stock.encode_fast(text.as_str(), true).unwrap());
            a.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(ours.encode(text).unwrap());
            b.push(t.elapsed());
        }
        let (a, b) = (median(a), median(b));
        let ratio = a.as_secs_f64() / b.as_secs_f64();
        println!("| {name} ({}) | {a:.2?} | {b:.2?} | {ratio:.0}x |", text.chars().count());
    }
}
