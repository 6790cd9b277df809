//! Fitting the prompt-level heads: a domain softmax (multinomial logistic regression by L-BFGS) and a
//! complexity score (a sigmoid-linear model fitted with candle to an item-difficulty target), and the
//! cross-fitting that keeps their outputs honest as predictor features.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use ndarray::Array2;
use switchyard_core::{Dense, Heads};

use crate::dataset::PromptRecord;
use crate::folds::Folds;
use crate::lbfgs::Lbfgs;
use crate::predictors::{select_rows, soft_bce_elements, squared, tensor, Params};
use crate::TrainError;

/// Bias given to a domain the head never saw in training (so its probability stays near zero).
const UNSEEN_DOMAIN_BIAS: f32 = -20.0;
/// L2 penalty of the domain head, on the mean cross-entropy.
const DOMAIN_PENALTY: f64 = 1e-5;

/// Fits the domain head on the prompts that carry a label. `None` when there are no domain labels;
/// a single label gives a constant head.
pub fn fit_domain_head(x: &Array2<f32>, labels: &[Option<usize>], domains: usize) -> Result<Option<Dense>, TrainError> {
    let dim = x.ncols();
    if domains == 0 {
        return Ok(None);
    }
    let rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i].is_some()).collect();
    let seen: std::collections::BTreeSet<usize> = rows.iter().filter_map(|&i| labels[i]).collect();
    if seen.len() < 2 {
        // One label (or none in the training split): a constant head.
        let bias =
            (0..domains).map(|d| if seen.contains(&d) || seen.is_empty() { 0.0 } else { UNSEEN_DOMAIN_BIAS }).collect();
        return Ok(Dense::new(domains, dim, vec![0.0; domains * dim], bias));
    }
    // Multinomial logistic regression over the labelled rows: mean cross-entropy plus a light L2 penalty,
    // by L-BFGS. Classes never seen keep a large negative bias.
    let device = Device::Cpu;
    let xs = tensor(&select_rows(x, &rows), &device)?;
    let onehot = Array2::from_shape_fn((rows.len(), domains), |(r, d)| f32::from(u8::from(labels[rows[r]] == Some(d))));
    let y = tensor(&onehot, &device)?;
    let mask: Vec<f32> = (0..domains).map(|d| if seen.contains(&d) { 0.0 } else { UNSEEN_DOMAIN_BIAS }).collect();
    let mask = Tensor::from_vec(mask, domains, &device)?;
    let n = rows.len() as f64;
    let params = Params::new(
        vec![(vec![0.0; domains * dim], vec![domains, dim]), (vec![0.0; domains], vec![domains])],
        &device,
    )?;
    params.minimize(Lbfgs { max_iter: 150, ..Lbfgs::default() }, |v| {
        let logits = xs.matmul(&v[0].t()?)?.broadcast_add(&v[1])?.broadcast_add(&mask)?;
        let log_probs = candle_nn::ops::log_softmax(&logits, 1)?;
        let nll = log_probs.mul(&y)?.sum_all()?.affine(-1.0 / n, 0.0)?;
        nll + squared(&v[0])?.affine(DOMAIN_PENALTY / 2.0, 0.0)?
    })?;
    let weight = params.vars[0].flatten_all()?.to_vec1::<f32>()?;
    let bias: Vec<f32> =
        params.vars[1].to_vec1::<f32>()?.iter().zip(mask.to_vec1::<f32>()?).map(|(b, m)| b + m).collect();
    Ok(Dense::new(domains, dim, weight, bias))
}

/// Each prompt's difficulty in [0, 1], adjusted for which models saw it: with `ability[m]` the mean target of
/// model m over all prompts and `A` the mean ability, difficulty = (1 − A) + mean over the prompt's models of
/// (ability[m] − target). On a dense benchmark this is exactly 1 − the prompt's mean score; on sparse logs it
/// does not mistake "answered by a weak model" for "hard".
pub fn difficulty_targets(prompts: &[&PromptRecord], models: usize) -> Vec<f32> {
    let mut sum = vec![0f64; models];
    let mut n = vec![0f64; models];
    let targets: Vec<Vec<(usize, f32, f32)>> = prompts.iter().map(|p| p.targets()).collect();
    for t in targets.iter().flatten() {
        sum[t.0] += f64::from(t.1);
        n[t.0] += 1.0;
    }
    let ability: Vec<f64> = sum.iter().zip(&n).map(|(s, n)| if *n > 0.0 { s / n } else { 0.5 }).collect();
    let observed: Vec<f64> = ability.iter().zip(&n).filter(|(_, n)| **n > 0.0).map(|(a, _)| *a).collect();
    let mean_ability = observed.iter().sum::<f64>() / observed.len().max(1) as f64;
    targets
        .iter()
        .map(|t| {
            if t.is_empty() {
                return (1.0 - mean_ability) as f32;
            }
            let residual = t.iter().map(|&(m, s, _)| ability[m] - f64::from(s)).sum::<f64>() / t.len() as f64;
            ((1.0 - mean_ability) + residual).clamp(0.0, 1.0) as f32
        })
        .collect()
}

/// Fits σ(w·x + b) to soft targets in [0, 1] by full-batch Adam on the cross-entropy (L2 on w).
pub fn fit_complexity_head(x: &Array2<f32>, targets: &[f32]) -> Result<Dense, TrainError> {
    let (n, dim) = x.dim();
    let device = Device::Cpu;
    let xs = Tensor::from_slice(
        x.as_slice().ok_or_else(|| TrainError::Fit("features not contiguous".into()))?,
        (n, dim),
        &device,
    )?;
    let ys = Tensor::from_slice(targets, (n, 1), &device)?;
    // The parameters start at zero weights and the targets' mean logit, not at candle's unseeded random
    // initialisation, so the same logs always give the same head (and the same router).
    let mean = targets.iter().map(|&t| f64::from(t)).sum::<f64>() / n.max(1) as f64;
    let start = switchyard_core::logit(mean.clamp(0.01, 0.99) as f32);
    let weight = Var::zeros((1, dim), DType::F32, &device)?;
    let bias = Var::from_tensor(&Tensor::new(&[start], &device)?)?;
    let layer = candle_nn::Linear::new(weight.as_tensor().clone(), Some(bias.as_tensor().clone()));
    let mut opt = candle_nn::AdamW::new(
        vec![weight, bias],
        candle_nn::ParamsAdamW { lr: 0.05, weight_decay: 1e-3, ..Default::default() },
    )?;
    for _ in 0..300 {
        let logits = candle_nn::Module::forward(&layer, &xs)?;
        let loss = soft_bce_with_logits(&logits, &ys)?;
        opt.backward_step(&loss)?;
    }
    let weight = layer.weight().flatten_all()?.to_vec1::<f32>()?;
    let bias = layer.bias().map(|b| b.to_vec1::<f32>()).transpose()?.unwrap_or_else(|| vec![0.0]);
    Dense::new(1, dim, weight, bias).ok_or_else(|| TrainError::Fit("complexity head has the wrong shape".into()))
}

/// Mean binary cross-entropy between logits and soft targets.
fn soft_bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    soft_bce_elements(logits, targets)?.mean_all()
}

/// The heads fitted on every prompt, and each prompt's predictor features (embedding, domain probabilities,
/// complexity) computed by heads fitted on the other folds: out-of-fold, so the features carry no more
/// about a prompt's own labels than they will about a new prompt's. `labelled` (embeddings and target
/// complexities of prompts with a complexity label but no outcomes) joins every complexity fit: those prompts
/// carry no outcome, so they cannot leak one. Heads are fitted only on the rows in `fit_on` (all rows, or the
/// cross-validation sample of large logs: linear heads over a 384-wide embedding learn as much from tens of
/// thousands of prompts as from millions); every row still gets its out-of-fold features.
pub fn cross_fit_heads(
    x: &Array2<f32>,
    prompts: &[&PromptRecord],
    domains: &[String],
    models: usize,
    folds: &Folds,
    fit_on: &[usize],
    labelled: Option<(&Array2<f32>, &[f32])>,
) -> Result<(Heads, Array2<f32>), TrainError> {
    let mut fitted = vec![false; x.nrows()];
    for &r in fit_on {
        fitted[r] = true;
    }
    let fit = |idx: &[usize]| -> Result<Heads, TrainError> {
        let xs = Array2::from_shape_fn((idx.len(), x.ncols()), |(r, c)| x[[idx[r], c]]);
        let labels: Vec<Option<usize>> = idx.iter().map(|&i| prompts[i].domain).collect();
        let records: Vec<&PromptRecord> = idx.iter().map(|&i| prompts[i]).collect();
        let mut difficulty = difficulty_targets(&records, models);
        let complexity = match labelled {
            Some((extra, targets)) => {
                difficulty.extend_from_slice(targets);
                let both = ndarray::concatenate(ndarray::Axis(0), &[xs.view(), extra.view()])
                    .map_err(|e| TrainError::Fit(format!("complexity labels: {e}")))?;
                fit_complexity_head(&both, &difficulty)?
            }
            None => fit_complexity_head(&xs, &difficulty)?,
        };
        Ok(Heads { domains: domains.to_vec(), domain: fit_domain_head(&xs, &labels, domains.len())?, complexity })
    };
    let width = x.ncols() + domains.len() + 1;
    let mut features = Array2::zeros((x.nrows(), width));
    for f in 0..folds.k {
        let (train, val) = folds.split(f);
        let train: Vec<usize> = train.into_iter().filter(|&r| fitted[r]).collect();
        let heads = fit(&train)?;
        for i in val {
            let row = heads.features(&x.row(i).to_vec());
            features.row_mut(i).assign(&ndarray::Array1::from(row));
        }
    }
    Ok((fit(fit_on)?, features))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pearson correlation.
    fn corr(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() as f32;
        let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt().max(1e-12)
    }

    #[test]
    fn out_of_fold_complexity_does_not_memorise_the_labels() {
        // Pure-noise embeddings (60 dimensions, 80 prompts) and outcomes unrelated to them: a head fitted on
        // these prompts memorises their difficulty, so its in-sample outputs track the targets; the
        // out-of-fold outputs, which the predictors see as features, must not.
        let (n, dim) = (80, 60);
        let mut state = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32
        };
        let x = Array2::from_shape_fn((n, dim), |_| next() - 0.5);
        let records: Vec<PromptRecord> = (0..n)
            .map(|i| PromptRecord {
                key: format!("p{i}"),
                text: format!("prompt {i}"),
                text_hash: i as u64,
                domain: None,
                source: 0,
                outcomes: vec![(0, f32::from(u8::from(next() < 0.5)))],
                outcome_weights: vec![1.0],
                output_tokens: Vec::new(),
                pairs: Vec::new(),
                split: None,
            })
            .collect();
        let prompts: Vec<&PromptRecord> = records.iter().collect();
        let targets = difficulty_targets(&prompts, 1);
        let hashes: Vec<u64> = (0..n as u64).collect();
        let folds = Folds::grouped(&hashes, 5, 7).unwrap();
        let (heads, features) =
            cross_fit_heads(&x, &prompts, &[], 1, &folds, &(0..n).collect::<Vec<_>>(), None).unwrap();
        let in_sample: Vec<f32> = (0..n).map(|i| heads.complexity(&x.row(i).to_vec())).collect();
        let out_of_fold: Vec<f32> = features.column(dim).to_vec();
        let (fitted, honest) = (corr(&in_sample, &targets), corr(&out_of_fold, &targets));
        assert!(fitted > 0.6, "in-sample correlation {fitted}: the head should overfit noise");
        assert!(honest < 0.3, "out-of-fold correlation {honest}: features leak the labels");
    }
}
