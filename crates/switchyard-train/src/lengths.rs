//! Predicting each model's output length per prompt: a ridge regression of ln(1 + output tokens) on the
//! prompt's features, one row of weights per model, so a long proof costs more than a one-line answer.
//! The penalty is chosen by grouped cross-validation, and the cross-validated error is reported next to the
//! error of the per-model mean it replaces.

use candle_core::Device;
use ndarray::Array2;
use switchyard_core::{Dense, LengthReport};

use crate::folds::Folds;
use crate::lbfgs::Lbfgs;
use crate::predictors::{select_rows, squared, tensor, Params};
use crate::targets::column_means;
use crate::TrainError;

/// Fewest prompts with a token count before output lengths are predicted (under `auto`).
pub const MIN_LENGTH_PROMPTS: usize = 50;
/// Penalties tried.
const LAMBDAS: [f64; 3] = [1e-4, 1e-3, 1e-2];

/// Whether to predict output lengths per prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputLengths {
    /// Predict when the logs have token counts for at least [`MIN_LENGTH_PROMPTS`] prompts.
    #[default]
    Auto,
    /// Predict; fail when the logs have no token counts.
    Predict,
    /// Use each model's mean output length.
    Mean,
}

/// Per-prompt, per-model ln(1 + mean output tokens) and weights (0 where unknown).
pub struct LengthTargets {
    /// `[prompts, models]` ln(1 + tokens).
    pub value: Array2<f32>,
    /// `[prompts, models]` rows behind each value.
    pub weight: Array2<f32>,
}

impl LengthTargets {
    /// Prompts with at least one token count.
    pub fn prompts(&self) -> usize {
        self.weight.rows().into_iter().filter(|r| r.iter().any(|&w| w > 0.0)).count()
    }

    fn rows(&self, idx: &[usize]) -> Self {
        Self { value: select_rows(&self.value, idx), weight: select_rows(&self.weight, idx) }
    }

    /// Each model's weighted mean (0 for a model without counts).
    fn means(&self) -> Vec<f32> {
        column_means(&self.value, &self.weight, 0.0)
    }

    fn mae(&self, predicted: &Array2<f32>) -> f64 {
        let (mut sum, mut n) = (0.0, 0.0);
        for ((idx, &w), &v) in self.weight.indexed_iter().zip(self.value.iter()) {
            if w > 0.0 {
                sum += f64::from(w) * f64::from((predicted[idx] - v).abs());
                n += f64::from(w);
            }
        }
        sum / n.max(1e-9)
    }
}

/// Ridge regression of the targets on `features`, one row per model; a model without counts gets its
/// fallback (`fallback[m]`, ln(1 + its mean output tokens)) as a constant.
fn fit(features: &Array2<f32>, targets: &LengthTargets, lambda: f64, fallback: &[f32]) -> Result<Dense, TrainError> {
    let device = Device::Cpu;
    let (_, nf) = features.dim();
    let models = targets.value.ncols();
    let means = targets.means();
    let start: Vec<f32> =
        (0..models).map(|m| if targets.weight.column(m).sum() > 0.0 { means[m] } else { fallback[m] }).collect();
    let x = tensor(features, &device)?;
    let (y, w) = (tensor(&targets.value, &device)?, tensor(&targets.weight, &device)?);
    let total = f64::from(targets.weight.sum()).max(1e-9);
    let params = Params::new(vec![(vec![0.0; models * nf], vec![models, nf]), (start, vec![models])], &device)?;
    params.minimize(Lbfgs { max_iter: 150, ..Lbfgs::default() }, |v| {
        let z = x.matmul(&v[0].t()?)?.broadcast_add(&v[1])?;
        let loss = (z - &y)?.sqr()?.mul(&w)?.sum_all()?.affine(1.0 / total, 0.0)?;
        loss + squared(&v[0])?.affine(lambda, 0.0)?
    })?;
    let weight = params.vars[0].flatten_all()?.to_vec1::<f32>()?;
    let bias = params.vars[1].to_vec1::<f32>()?;
    Dense::new(models, nf, weight, bias).ok_or_else(|| TrainError::Fit("length head has the wrong shape".into()))
}

/// Chooses the penalty by cross-validated absolute error and fits on every prompt.
pub fn fit_lengths(
    features: &Array2<f32>,
    targets: &LengthTargets,
    folds: &Folds,
    fallback: &[f32],
) -> Result<(Dense, LengthReport), TrainError> {
    let (n, models) = targets.value.dim();
    let mut mean_only = Array2::<f32>::zeros((n, models));
    let mut best: Option<(f64, f64)> = None;
    for (i, &lambda) in LAMBDAS.iter().enumerate() {
        let mut oof = Array2::<f32>::zeros((n, models));
        for f in 0..folds.k {
            let (train, val) = folds.split(f);
            let sub = targets.rows(&train);
            let layer = fit(&select_rows(features, &train), &sub, lambda, fallback)?;
            let means = sub.means();
            for &r in &val {
                let z = layer.forward(&features.row(r).to_vec());
                oof.row_mut(r).assign(&ndarray::Array1::from(z));
                if i == 0 {
                    mean_only.row_mut(r).assign(&ndarray::Array1::from(means.clone()));
                }
            }
        }
        let mae = targets.mae(&oof);
        tracing::debug!("output lengths, lambda {lambda:e}: cross-validated MAE of ln(1 + tokens) {mae:.4}");
        if best.is_none_or(|(b, _)| mae < b) {
            best = Some((mae, lambda));
        }
    }
    let (mae_log, lambda) = best.unwrap_or((f64::NAN, LAMBDAS[1]));
    let layer = fit(features, targets, lambda, fallback)?;
    let report =
        LengthReport { prompts: targets.prompts(), mae_log, mean_only_mae_log: targets.mae(&mean_only), lambda };
    Ok((layer, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_follow_the_features_better_than_the_mean() {
        // Output length grows with feature 0; model 1 writes twice as much; model 2 has no counts.
        let n = 120;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| if c == 0 { r as f32 / n as f32 } else { 1.0 });
        let value = Array2::from_shape_fn((n, 3), |(r, m)| {
            let tokens = 20.0 + 400.0 * r as f32 / n as f32;
            (1.0 + tokens * if m == 1 { 2.0 } else { 1.0 }).ln()
        });
        let weight = Array2::from_shape_fn((n, 3), |(_, m)| f32::from(u8::from(m < 2)));
        let targets = LengthTargets { value, weight };
        let hashes: Vec<u64> = (0..n as u64).collect();
        let folds = Folds::grouped(&hashes, 5, 2).unwrap();
        let (layer, report) = fit_lengths(&x, &targets, &folds, &[0.0, 0.0, 5.0]).unwrap();
        assert!(report.mae_log < report.mean_only_mae_log / 2.0, "{report:?}");
        let short = layer.forward(&[0.05, 1.0]);
        let long = layer.forward(&[0.95, 1.0]);
        assert!(long[0] > short[0] + 1.0 && long[1] > long[0], "{short:?} {long:?}");
        assert!((short[2] - 5.0).abs() < 1e-3 && (long[2] - 5.0).abs() < 1e-3);
    }
}
