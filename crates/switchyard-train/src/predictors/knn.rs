//! The similarity-weighted kNN predictor: each model's success rate over the prompt's nearest training
//! prompts, weighted by similarity and shrunk towards the model's mean by a Beta prior. k, the prior's
//! strength and the weighting are chosen by cross-validation; neighbours are found once per fold and shared
//! by every setting.

use candle_core::Device;
use ndarray::Array2;
use switchyard_core::{KnnMemory, Predictor};

use super::loss::tensor;
use crate::targets::Targets;
use crate::TrainError;

/// One kNN setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnConfig {
    /// Neighbours consulted.
    pub k: usize,
    /// Prior strength in pseudo-observations.
    pub alpha: f32,
    /// Similarity weighting exponent (0: unweighted).
    pub power: f32,
}

impl std::fmt::Display for KnnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "k={} prior={} power={}", self.k, self.alpha, self.power)
    }
}

/// The settings tried by cross-validation.
pub fn knn_grid() -> Vec<KnnConfig> {
    let mut grid = Vec::new();
    for k in [10, 20, 40, 80] {
        for alpha in [1.0, 4.0, 16.0] {
            for power in [0.0, 4.0] {
                grid.push(KnnConfig { k, alpha, power });
            }
        }
    }
    grid
}

/// A memory over `embeddings` (unit length) and `targets` (outcome rows; pairwise rows carry no outcome and
/// are not used by kNN).
pub fn knn_memory(embeddings: &Array2<f32>, targets: &Targets, config: KnnConfig) -> KnnMemory {
    let (n, dim) = embeddings.dim();
    let models = targets.models();
    let mut scores = vec![f32::NAN; n * models];
    for ((r, m), &w) in targets.weight.indexed_iter() {
        if w > 0.0 {
            scores[r * models + m] = targets.value[[r, m]];
        }
    }
    KnnMemory {
        dim,
        embeddings: embeddings.iter().copied().collect(),
        scores,
        prior: targets.model_means(),
        k: config.k,
        alpha: config.alpha,
        power: config.power,
    }
}

/// Queries compared with the memory per matrix product (bounds the similarity matrix held at once).
const QUERY_CHUNK: usize = 1024;

/// The `k` most similar rows of `memory` for every row of `queries`, as (cosine, index), best first:
/// matrix products over chunks of queries, then a partial sort per query.
pub fn nearest(queries: &Array2<f32>, memory: &Array2<f32>, k: usize) -> Result<Vec<Vec<(f32, usize)>>, TrainError> {
    let device = Device::Cpu;
    let memory = tensor(memory, &device)?.t()?;
    let mut out = Vec::with_capacity(queries.nrows());
    for start in (0..queries.nrows()).step_by(QUERY_CHUNK) {
        let end = (start + QUERY_CHUNK).min(queries.nrows());
        let chunk = queries.slice(ndarray::s![start..end, ..]).to_owned();
        let sims = tensor(&chunk, &device)?.matmul(&memory)?.to_vec2::<f32>()?;
        out.extend(top_k(sims, k));
    }
    Ok(out)
}

fn top_k(sims: Vec<Vec<f32>>, k: usize) -> Vec<Vec<(f32, usize)>> {
    sims.into_iter()
        .map(|row| {
            let mut scored: Vec<(f32, usize)> = row.into_iter().enumerate().map(|(i, s)| (s, i)).collect();
            let k = k.min(scored.len());
            if k > 0 {
                scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            }
            scored.truncate(k);
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored
        })
        .collect()
}

/// Most prompts a kNN memory keeps. A decision scans the whole memory, so the bound is what keeps its cost
/// flat as the logs grow (`cargo bench -p switchyard-train --bench decision`): 8,192 × 384 f32 is 12 MB, which
/// stays in cache; twice that falls out of it and costs several times more per decision.
pub const MAX_KNN_MEMORY: usize = 8_192;

/// The rows a kNN memory over `n` prompts keeps: all, or [`MAX_KNN_MEMORY`] evenly spaced ones. Cross-validation
/// uses the same rule on each fold, so it measures the predictor that is deployed.
pub fn memory_rows(n: usize) -> Vec<usize> {
    if n <= MAX_KNN_MEMORY {
        return (0..n).collect();
    }
    (0..MAX_KNN_MEMORY).map(|i| i * n / MAX_KNN_MEMORY).collect()
}

/// The kNN predictor for `config` over `embeddings`, keeping the rows [`memory_rows`] picks.
pub fn fit_knn(embeddings: &Array2<f32>, targets: &Targets, config: KnnConfig) -> Predictor {
    let n = embeddings.nrows();
    if n <= MAX_KNN_MEMORY {
        return Predictor::Knn(knn_memory(embeddings, targets, config));
    }
    let keep = memory_rows(n);
    Predictor::Knn(knn_memory(&embeddings.select(ndarray::Axis(0), &keep), &targets.rows(&keep), config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_memory_is_bounded_and_spread_over_the_rows() {
        let n = MAX_KNN_MEMORY + 808;
        let x = Array2::from_shape_fn((n, 4), |(r, c)| if c == r % 4 { 1.0 } else { 0.0 });
        let value = Array2::from_shape_fn((n, 2), |(r, m)| f32::from(u8::from((r + m) % 2 == 0)));
        let targets = Targets { value, weight: Array2::ones((n, 2)), pairs: Vec::new() };
        let Predictor::Knn(memory) = fit_knn(&x, &targets, KnnConfig { k: 10, alpha: 1.0, power: 0.0 }) else {
            panic!("not a kNN predictor");
        };
        assert_eq!(memory.len(), MAX_KNN_MEMORY);
        let rows = memory_rows(n);
        assert_eq!(rows.len(), MAX_KNN_MEMORY);
        assert!(rows.windows(2).all(|w| w[0] < w[1]) && rows[0] == 0 && *rows.last().unwrap() >= n - 2);
        // The kept rows carry their own scores.
        for (i, &r) in rows.iter().enumerate().step_by(997) {
            assert_eq!(memory.scores[i * 2], targets.value[[r, 0]]);
        }
        let small = fit_knn(
            &x.slice(ndarray::s![..100, ..]).to_owned(),
            &targets.rows(&(0..100).collect::<Vec<_>>()),
            KnnConfig { k: 10, alpha: 1.0, power: 0.0 },
        );
        assert!(matches!(small, Predictor::Knn(m) if m.len() == 100));
    }
}
