//! Fitting a router's [`Familiarity`]: centroids of the training prompts (spherical k-means, bounded in
//! number), the held-out similarity quantiles that calibrate `ood`, and each model's prior per domain.

use candle_core::Device;
use ndarray::Array2;
use switchyard_core::{logit, sigmoid, Familiarity};

use crate::folds::Folds;
use crate::predictors::{select_rows, tensor};
use crate::targets::{domain_average, Targets};
use crate::TrainError;

/// Most centroids kept (a decision compares the prompt with each).
pub const MAX_CENTROIDS: usize = 512;
/// Quantile knots of the held-out similarity.
const QUANTILES: usize = 101;
/// Lloyd iterations of k-means.
const ITERATIONS: usize = 12;
/// Pseudo-observations pulling a model's per-domain prior toward its baseline.
const PRIOR_STRENGTH: f32 = 10.0;
/// Most complexity-labelled prompts a router keeps (beyond, as many centroids).
pub const MAX_LABELLED: usize = 2048;
/// Bound on a length slope (logit per unit of ln tokens).
const MAX_LENGTH_SLOPE: f64 = 3.0;
/// Bound on the difficulty slope (logit per unit of complexity).
const MAX_DIFFICULTY_SLOPE: f64 = 12.0;

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

/// What [`fit_familiarity`] learns from.
pub struct FamiliarityInputs<'a> {
    /// The training prompts' embeddings (unit length), `[prompts, dim]`.
    pub embeddings: &'a Array2<f32>,
    /// Their folds: `ood` is calibrated on fold 0 against centroids of the others.
    pub folds: &'a Folds,
    /// Per-model outcome targets.
    pub targets: &'a Targets,
    /// Each prompt's (out-of-fold) domain probabilities, `[prompts, domains]` (may have no columns): what
    /// a decision sees.
    pub domain_probs: &'a Array2<f32>,
    /// Each prompt's domain membership, `[prompts, domains]`: one-hot where the logs label the domain, else
    /// its domain probabilities. Per-domain priors and evidence count by it.
    pub membership: &'a Array2<f32>,
    /// Each model's baseline per domain, `[models, domains]` (see [`crate::baselines`]).
    pub baseline: &'a Array2<f32>,
    /// The prompts' out-of-fold complexity.
    pub complexity: &'a [f32],
    /// Their difficulty targets.
    pub difficulty: &'a [f32],
    /// Their ln(1 + input tokens).
    pub log_lengths: &'a [f32],
    /// Embeddings and complexity of prompts with a complexity label only (see [`crate::ComplexityLabels`]).
    pub labelled: Option<(&'a Array2<f32>, &'a [f32])>,
    /// Seed of k-means.
    pub seed: u64,
}

/// Fits the familiarity of a router: centroids over every training prompt, `ood` calibrated on fold 0's
/// prompts against centroids of the other folds, each model's per-domain priors (its targets by domain
/// membership, pulled toward the baseline) and evidence, the priors' shared difficulty slope and per-model
/// length slopes, the complexity fallback's length slope, and centroids of the complexity-labelled prompts.
pub fn fit_familiarity(inputs: &FamiliarityInputs<'_>) -> Result<Familiarity, TrainError> {
    let FamiliarityInputs { embeddings, folds, targets, domain_probs, membership, baseline, .. } = *inputs;
    let (complexity, difficulty, log_lengths) = (inputs.complexity, inputs.difficulty, inputs.log_lengths);
    let (train, held) = folds.split(0);
    let fit_on = select_rows(embeddings, &train);
    let held_out = select_rows(embeddings, &held);
    let mut sims = nearest_similarity(&held_out, &centroids(&fit_on, centroid_count(train.len()), inputs.seed)?)?;
    sims.sort_by(f32::total_cmp);
    let quantiles = (0..QUANTILES)
        .map(|q| sims[((sims.len() - 1) as f64 * q as f64 / (QUANTILES - 1) as f64).round() as usize])
        .collect();
    let all = centroids(embeddings, centroid_count(embeddings.nrows()), inputs.seed)?;
    let (labelled, labelled_complexity) = match inputs.labelled {
        Some((x, targets)) if x.nrows() > 0 => labelled_memory(x, targets, inputs.seed)?,
        _ => (Vec::new(), Vec::new()),
    };

    let one = Array2::ones((targets.value.nrows(), 1));
    let membership = if membership.ncols() == 0 { &one } else { membership };
    let (models, domains) = (targets.models(), membership.ncols());
    let (priors, evidence) = priors_and_evidence(targets, membership, baseline, difficulty);
    // Each domain's typical (out-of-fold) complexity, where the difficulty term is centred.
    let domain_complexity = domain_average(membership, complexity);
    let base_complexity = complexity.iter().sum::<f32>() / complexity.len().max(1) as f32;
    let n = log_lengths.len().max(1) as f32;
    let length_mean = log_lengths.iter().sum::<f32>() / n;
    let z: Vec<f32> = log_lengths.iter().map(|l| (l - length_mean).clamp(-4.0, 4.0)).collect();
    // Least squares of difficulty on centred log length.
    let (szz, szd) = z.iter().zip(difficulty).fold((0f32, 0f32), |(a, b), (z, d)| (a + z * z, b + z * d));
    let complexity_slope = if szz > 1e-6 { szd / szz } else { 0.0 };
    let offset = |m: usize, r: usize| {
        let probs: Vec<f32> = if domain_probs.ncols() == 0 { Vec::new() } else { domain_probs.row(r).to_vec() };
        logit(row_prior(&priors[m * domains..(m + 1) * domains], &probs))
    };
    let typical = |r: usize| {
        if domain_probs.ncols() == domains {
            domain_complexity.iter().zip(domain_probs.row(r)).map(|(c, p)| c * p).sum()
        } else {
            base_complexity
        }
    };
    let observed = |m: usize| (0..targets.value.nrows()).filter(move |&r| targets.weight[[r, m]] > 0.0);
    // One difficulty slope shared by the models (an IRT difficulty term), on the out-of-fold complexity.
    let pooled: Vec<(f32, f32, f32, f32)> = (0..models)
        .flat_map(|m| {
            observed(m)
                .map(move |r| (offset(m, r), complexity[r] - typical(r), targets.value[[r, m]], targets.weight[[r, m]]))
        })
        .collect();
    let difficulty_slope = slope(&pooled, MAX_DIFFICULTY_SLOPE);
    let length_slopes = (0..models)
        .map(|m| {
            let rows: Vec<(f32, f32, f32, f32)> = observed(m)
                .map(|r| {
                    let offset = offset(m, r) + difficulty_slope * (complexity[r] - typical(r));
                    (offset, z[r], targets.value[[r, m]], targets.weight[[r, m]])
                })
                .collect();
            slope(&rows, MAX_LENGTH_SLOPE)
        })
        .collect();
    Ok(Familiarity {
        dim: embeddings.ncols(),
        centroids: all.iter().copied().collect(),
        quantiles,
        priors,
        domains,
        base_complexity,
        length_mean,
        complexity_slope,
        length_slopes,
        difficulty_slope,
        evidence,
        labelled,
        labelled_complexity,
        domain_complexity,
    })
}

/// Per-domain priors: each model's difficulty-adjusted mean there, pulled toward its baseline; the weight behind
/// the mean, plus the pairwise rows it appears in, is the model's evidence in the domain. Both are
/// `models × domains`, row-major.
fn priors_and_evidence(
    targets: &Targets,
    membership: &Array2<f32>,
    baseline: &Array2<f32>,
    difficulty: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (models, domains) = (targets.models(), membership.ncols());
    let (means, weight) = targets.domain_means(membership, difficulty);
    let mut priors = vec![0f32; models * domains];
    let mut evidence = vec![0f32; models * domains];
    for m in 0..models {
        for d in 0..domains {
            let w = weight[[m, d]];
            priors[m * domains + d] =
                ((w * means[[m, d]] + PRIOR_STRENGTH * baseline[[m, d]]) / (w + PRIOR_STRENGTH)).clamp(0.02, 0.98);
            evidence[m * domains + d] = w;
        }
    }
    // Pairwise rows are evidence of both models too (they have no outcome mean, so no prior of their own).
    for pair in &targets.pairs {
        for m in [pair.a, pair.b] {
            for d in 0..domains {
                evidence[m * domains + d] += membership[[pair.row, d]];
            }
        }
    }
    (priors, evidence)
}

/// The labelled prompts a router keeps to vote on complexity: all of them up to [`MAX_LABELLED`], else that
/// many centroids, each with the mean complexity of the prompts nearest to it.
fn labelled_memory(x: &Array2<f32>, targets: &[f32], seed: u64) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
    if x.nrows() <= MAX_LABELLED {
        return Ok((x.iter().copied().collect(), targets.to_vec()));
    }
    let c = centroids(x, MAX_LABELLED, seed)?;
    let device = Device::Cpu;
    let assign = tensor(x, &device)?.matmul(&tensor(&c, &device)?.t()?)?.argmax(1)?.to_vec1::<u32>()?;
    let mut sum = vec![0f32; c.nrows()];
    let mut count = vec![0f32; c.nrows()];
    for (&a, &t) in assign.iter().zip(targets) {
        sum[a as usize] += t;
        count[a as usize] += 1.0;
    }
    let mean = targets.iter().sum::<f32>() / targets.len() as f32;
    let complexity = sum.iter().zip(&count).map(|(s, n)| if *n > 0.0 { s / n } else { mean }).collect();
    Ok((c.iter().copied().collect(), complexity))
}

/// A model's prior for one prompt's domain probabilities.
fn row_prior(row: &[f32], probs: &[f32]) -> f32 {
    if probs.len() == row.len() {
        row.iter().zip(probs).map(|(p, w)| p * w).sum()
    } else {
        row.iter().sum::<f32>() / row.len().max(1) as f32
    }
}

/// The slope β of a one-feature logistic regression P = σ(offset + β·z) over (offset, z, target, weight)
/// rows, by Newton's method with a weak ridge (β stays 0 without evidence), within ±`bound`.
fn slope(rows: &[(f32, f32, f32, f32)], bound: f64) -> f32 {
    let mut beta = 0f64;
    for _ in 0..25 {
        let (mut grad, mut hess) = (1.0 * beta, 1.0);
        for &(offset, z, y, w) in rows {
            let p = f64::from(sigmoid(offset + beta as f32 * z));
            grad += f64::from(w) * (p - f64::from(y)) * f64::from(z);
            hess += f64::from(w) * p * (1.0 - p) * f64::from(z * z);
        }
        let step = grad / hess;
        beta -= step;
        if step.abs() < 1e-6 {
            break;
        }
    }
    beta.clamp(-bound, bound) as f32
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
            match (r % 2, c) {
                (0, 0) | (1, 1) => 1.0,
                (_, 2) => jitter,
                _ => -jitter,
            }
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
        // Longer prompts (by index) are harder, and model 0 fails more on them.
        let lengths: Vec<f32> = (0..n).map(|r| 2.0 + 3.0 * r as f32 / n as f32).collect();
        let difficulty: Vec<f32> = (0..n).map(|r| 0.2 + 0.5 * r as f32 / n as f32).collect();
        let complexity = vec![0.25; n];
        let inputs = FamiliarityInputs {
            embeddings: &x,
            folds: &folds,
            targets: &targets,
            domain_probs: &probs,
            membership: &probs,
            baseline: &baseline,
            complexity: &complexity,
            difficulty: &difficulty,
            log_lengths: &lengths,
            labelled: None,
            seed: 3,
        };
        let f = fit_familiarity(&inputs).unwrap();
        assert!((f.complexity_slope - 0.5 / 3.0).abs() < 1e-3, "{}", f.complexity_slope);
        assert!((f.length_mean - 3.5).abs() < 0.02);
        assert!(f.ood(&[1.0, 0.0, 0.0]) < 0.9, "{}", f.ood(&[1.0, 0.0, 0.0]));
        assert_eq!(f.ood(&[0.0, 0.0, 1.0]), 1.0);
        assert!((f.base_complexity - 0.25).abs() < 1e-6);
        // Model 1 succeeds on domain 0's prompts only: its prior there is high, low in domain 1.
        assert!(f.domain_prior(1, &[1.0, 0.0]) > 0.85 && f.domain_prior(1, &[0.0, 1.0]) < 0.15, "{:?}", f.priors);
        assert!(f.centroids.len() / 3 <= MAX_CENTROIDS);
        // Every prompt labels its domain: each model has n/2 observations in each.
        assert_eq!(f.evidence, vec![100.0; 4]);
        assert!(f.labelled.is_empty() && f.labelled_complexity.is_empty());

        // Pairwise rows are evidence of both models: three pairs on domain-0 prompts.
        let pairs: Vec<crate::PairTarget> =
            [0, 2, 4].iter().map(|&row| crate::PairTarget { row, a: 0, b: 1, y: 1.0 }).collect();
        let with_pairs = Targets { pairs, ..targets.clone() };
        let g = fit_familiarity(&FamiliarityInputs { targets: &with_pairs, ..inputs }).unwrap();
        assert_eq!(g.evidence, vec![103.0, 100.0, 103.0, 100.0]);
    }
}
