//! Fitting a router's [`Familiarity`]: centroids of the training prompts (spherical k-means, bounded in
//! number), the held-out similarity quantiles that calibrate `ood`, and each model's prior per domain.

use candle_core::Device;
use ndarray::Array2;
use switchyard_core::Familiarity;

use crate::folds::Folds;
use crate::predictors::{select_rows, tensor};
use crate::targets::Targets;
use crate::TrainError;

/// Most centroids kept (a decision compares the prompt with each).
pub const MAX_CENTROIDS: usize = 512;
/// Quantile knots of the held-out similarity.
const QUANTILES: usize = 101;
/// Lloyd iterations of k-means.
const ITERATIONS: usize = 12;
/// Pseudo-observations pulling a model's per-domain prior toward its overall mean.
const PRIOR_STRENGTH: f32 = 10.0;

/// Number of centroids for `n` prompts: one per 8 prompts, between 8 and [`MAX_CENTROIDS`].
fn centroid_count(n: usize) -> usize {
    (n / 8).clamp(8, MAX_CENTROIDS).min(n.max(1))
}

/// Spherical k-means on unit-length rows: `k` unit-length centroids, seeded.
pub fn centroids(x: &Array2<f32>, k: usize, seed: u64) -> Result<Array2<f32>, TrainError> {
    let (n, dim) = x.dim();
    let k = k.min(n).max(1);
    // Initial centroids: k distinct rows in a seeded order.
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed.max(1);
    for i in (1..n).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let mut c = Array2::from_shape_fn((k, dim), |(r, j)| x[[order[r], j]]);
    let device = Device::Cpu;
    let xt = tensor(x, &device)?;
    for _ in 0..ITERATIONS {
        let assign = tensor(&c, &device)?.matmul(&xt.t()?)?.argmax(0)?.to_vec1::<u32>()?;
        let mut sum = Array2::<f32>::zeros((k, dim));
        for (i, &a) in assign.iter().enumerate() {
            let mut row = sum.row_mut(a as usize);
            row += &x.row(i);
        }
        for (r, mut row) in sum.rows_mut().into_iter().enumerate() {
            let norm = row.dot(&row).sqrt();
            if norm > 1e-6 {
                row /= norm;
                c.row_mut(r).assign(&row);
            }
        }
    }
    Ok(c)
}

/// Each row's cosine to its nearest centroid.
fn nearest_similarity(x: &Array2<f32>, c: &Array2<f32>) -> Result<Vec<f32>, TrainError> {
    let device = Device::Cpu;
    Ok(tensor(x, &device)?.matmul(&tensor(c, &device)?.t()?)?.max(1)?.to_vec1::<f32>()?)
}

/// Fits the familiarity of a router trained on `embeddings`: centroids over every prompt, `ood` calibrated
/// on fold 0's prompts against centroids of the other folds, and per-domain priors from `targets` weighted
/// by each prompt's (out-of-fold) domain probabilities `domain_probs` (`[prompts, domains]`, may have no
/// columns), each pulled toward `baseline` (`[models, domains]`, see [`crate::baselines`]).
/// `complexity` holds the prompts' out-of-fold complexity.
pub fn fit_familiarity(
    embeddings: &Array2<f32>,
    folds: &Folds,
    targets: &Targets,
    domain_probs: &Array2<f32>,
    baseline: &Array2<f32>,
    complexity: &[f32],
    seed: u64,
) -> Result<Familiarity, TrainError> {
    let (train, held) = folds.split(0);
    let fit_on = select_rows(embeddings, &train);
    let held_out = select_rows(embeddings, &held);
    let mut sims = nearest_similarity(&held_out, &centroids(&fit_on, centroid_count(train.len()), seed)?)?;
    sims.sort_by(f32::total_cmp);
    let quantiles = (0..QUANTILES)
        .map(|q| sims[((sims.len() - 1) as f64 * q as f64 / (QUANTILES - 1) as f64).round() as usize])
        .collect();
    let all = centroids(embeddings, centroid_count(embeddings.nrows()), seed)?;

    let models = targets.models();
    let domains = domain_probs.ncols().max(1);
    let mut priors = vec![0f32; models * domains];
    for m in 0..models {
        for d in 0..domains {
            let (mut sum, mut weight) = (0f32, 0f32);
            for r in 0..targets.value.nrows() {
                let w = targets.weight[[r, m]] * if domain_probs.ncols() == 0 { 1.0 } else { domain_probs[[r, d]] };
                sum += w * targets.value[[r, m]];
                weight += w;
            }
            priors[m * domains + d] = (sum + PRIOR_STRENGTH * baseline[[m, d]]) / (weight + PRIOR_STRENGTH);
        }
    }
    let base_complexity = complexity.iter().sum::<f32>() / complexity.len().max(1) as f32;
    Ok(Familiarity {
        dim: embeddings.ncols(),
        centroids: all.iter().copied().collect(),
        quantiles,
        priors,
        domains,
        base_complexity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_near_the_clusters_are_familiar_and_far_ones_are_not() {
        // 200 unit vectors around two directions in 3-D; a far query along the third axis.
        let n = 200;
        let x = Array2::from_shape_fn((n, 3), |(r, c)| {
            let jitter = ((r * 37 % 11) as f32 - 5.0) / 60.0;
            let v = match (r % 2, c) {
                (0, 0) | (1, 1) => 1.0,
                (_, 2) => jitter,
                _ => -jitter,
            };
            v
        });
        let x = Array2::from_shape_fn(x.dim(), |(r, c)| x[[r, c]] / x.row(r).dot(&x.row(r)).sqrt());
        let hashes: Vec<u64> = (0..n as u64).collect();
        let folds = Folds::grouped(&hashes, 5, 1).unwrap();
        let targets = Targets {
            value: Array2::from_shape_fn((n, 2), |(r, m)| f32::from(u8::from(m == 0 || r % 2 == 0))),
            weight: Array2::ones((n, 2)),
            pairs: Vec::new(),
        };
        let probs = Array2::from_shape_fn((n, 2), |(r, d)| f32::from(u8::from(r % 2 == d)));
        let baseline = Array2::from_elem((2, 2), 0.5);
        let f = fit_familiarity(&x, &folds, &targets, &probs, &baseline, &vec![0.25; n], 3).unwrap();
        assert!(f.ood(&[1.0, 0.0, 0.0]) < 0.9, "{}", f.ood(&[1.0, 0.0, 0.0]));
        assert_eq!(f.ood(&[0.0, 0.0, 1.0]), 1.0);
        assert!((f.base_complexity - 0.25).abs() < 1e-6);
        // Model 1 succeeds on domain 0's prompts only: its prior there is high, low in domain 1.
        assert!(f.prior(1, &[1.0, 0.0]) > 0.85 && f.prior(1, &[0.0, 1.0]) < 0.15, "{:?}", f.priors);
        assert!(f.centroids.len() / 3 <= MAX_CENTROIDS);
    }
}
