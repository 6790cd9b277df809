//! Embeds a fixed batch in a loop, for profilers (`perf record`) and quick timings (p50 and mean per call):
//! `cargo run --release -p switchyard-encoder --example encode_loop -- TOKENS BATCH SECONDS [f32|int8]`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchyard_encoder::{EncoderOptions, MiniLm, ModelLocator, Precision, DEFAULT_MODEL_DIR};

fn main() {
    let arg = |i: usize, default: f64| std::env::args().nth(i).map_or(default, |a| a.parse().unwrap());
    let (tokens, batch, seconds) = (arg(1, 16.0) as usize, arg(2, 1.0) as usize, arg(3, 5.0));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let locator = ModelLocator::new(root.join(DEFAULT_MODEL_DIR));
    let precision = std::env::args().nth(4).map_or(Precision::F32, |p| p.parse().unwrap());
    let encoder = MiniLm::from_locator(&locator, EncoderOptions { precision, ..EncoderOptions::default() }).unwrap();
    let mut text = encoder.tokenizer().encode(&"route every prompt to the cheapest model ".repeat(tokens)).unwrap();
    let sep = *text.ids.last().unwrap();
    text.ids.truncate(tokens - 1);
    text.ids.push(sep);
    let input = vec![text; batch];
    let start = std::time::Instant::now();
    let mut times = Vec::new();
    while start.elapsed().as_secs_f64() < seconds {
        let call = std::time::Instant::now();
        encoder.embed_tokenized(&input).unwrap();
        times.push(call.elapsed().as_secs_f64());
    }
    let mean = start.elapsed().as_secs_f64() / times.len() as f64;
    times.sort_by(f64::total_cmp);
    let p50 = times[times.len() / 2];
    println!("{:.3} ms p50, {:.3} ms mean, {:.0} texts/s", p50 * 1e3, mean * 1e3, batch as f64 / mean);
}
