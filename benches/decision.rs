//! A decision's cost against the size of the training set: the kNN predictor as training builds it (a memory
//! bounded at `MAX_KNN_MEMORY` prompts) side by side with an unbounded memory of every training prompt.
//!
//! `cargo bench -p switchyard-train --bench decision` runs criterion on each case, then prints a table of p50s
//! measured in alternating blocks in the same run. `-- --quick` prints only the table. The training sets are
//! 384-wide unit vectors and 0/1 outcomes of 9 models drawn from a seeded generator: a kNN scan costs the same
//! whatever the vectors hold, so only their number matters here. Everything else in a decision (heads,
//! familiarity's centroids and labelled prompts, the policy) is bounded by constants, whatever the logs' size.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ndarray::Array2;
use switchyard_core::Predictor;
use switchyard_train::bench::SplitMix64;
use switchyard_train::{fit_knn, knn_memory, KnnConfig, Targets, MAX_KNN_MEMORY};

const DIM: usize = 384;
const MODELS: usize = 9;
const SIZES: [usize; 5] = [2_000, 8_000, 20_000, 100_000, 200_000];
const CONFIG: KnnConfig = KnnConfig { k: 40, alpha: 1.0, power: 4.0 };

/// A uniform value in [-0.5, 0.5) from the seeded stream.
fn uniform(stream: &mut SplitMix64) -> f32 {
    (stream.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
}

fn unit_rows(rows: usize, stream: &mut SplitMix64) -> Array2<f32> {
    let mut x = Array2::from_shape_fn((rows, DIM), |_| uniform(stream));
    for mut row in x.rows_mut() {
        let norm = row.dot(&row).sqrt().max(1e-12);
        row /= norm;
    }
    x
}

/// A training set of `n` prompts: the predictor as training fits it (bounded) and an unbounded memory.
fn predictors(n: usize) -> (Predictor, Predictor) {
    let mut stream = SplitMix64(n as u64);
    let x = unit_rows(n, &mut stream);
    let value = Array2::from_shape_fn((n, MODELS), |_| f32::from(u8::from(!stream.next_u64().is_multiple_of(3))));
    let targets = Targets { value, weight: Array2::ones((n, MODELS)), pairs: Vec::new() };
    (fit_knn(&x, &targets, CONFIG), Predictor::Knn(knn_memory(&x, &targets, CONFIG)))
}

fn p50(f: &dyn Fn() -> f32, budget: Duration) -> Duration {
    let mut times = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget || times.len() < 5 {
        let t = Instant::now();
        std::hint::black_box(f());
        times.push(t.elapsed());
    }
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut stream = SplitMix64(7);
    let queries = unit_rows(64, &mut stream);
    let query = |i: usize| queries.row(i % queries.nrows()).to_vec();
    let cases: Vec<(usize, Predictor, Predictor)> = SIZES
        .iter()
        .map(|&n| {
            let (bounded, unbounded) = predictors(n);
            (n, bounded, unbounded)
        })
        .collect();

    if !quick {
        let mut criterion = Criterion::default().configure_from_args().sample_size(30);
        let mut group = criterion.benchmark_group("knn decision");
        for (n, bounded, unbounded) in &cases {
            let q = query(0);
            group.bench_with_input(BenchmarkId::new("bounded", n), &q, |b, q| b.iter(|| bounded.predict(q, q)));
            group.bench_with_input(BenchmarkId::new("unbounded", n), &q, |b, q| b.iter(|| unbounded.predict(q, q)));
        }
        group.finish();
        criterion.final_summary();
    }

    // Side by side: alternating blocks of each case, p50 of each, so machine noise hits both sides alike.
    println!("\n| training prompts | memory kept | p50, bounded (as trained) | p50, every prompt kept | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for (n, bounded, unbounded) in &cases {
        let i = std::cell::Cell::new(0usize);
        let run = |p: &Predictor| {
            let q = query(i.get());
            i.set(i.get() + 1);
            p.predict(&q, &q)[0]
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            a.push(p50(&|| run(bounded), Duration::from_millis(150)));
            b.push(p50(&|| run(unbounded), Duration::from_millis(150)));
        }
        a.sort();
        b.sort();
        let (a, b) = (a[2], b[2]);
        let kept = match bounded {
            Predictor::Knn(m) => m.len(),
            _ => 0,
        };
        println!(
            "| {n} | {kept} | {:.3} ms | {:.3} ms | {:.1}x |",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
    println!("\n(kNN memory bound: {MAX_KNN_MEMORY} prompts; k = {}, one decision per call)", CONFIG.k);
}
