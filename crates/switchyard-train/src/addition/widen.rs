//! A direction of the new model's own over the router's features, next to its row in the shared
//! representation ([`ModelHead::Widened`]).
//!
//! A factorised or MLP router's representation was learned from the existing models' outcomes. Where the new
//! model succeeds and fails along lines none of them does (the launch-day case of a model stronger than all,
//! or a router trained on one or two models), no row over that representation can say so. The widened head
//! adds d·f to the new model's logit: the row is still penalised toward the mixture of existing models, d
//! toward 0, each penalty chosen by grouped cross-validation, and the head is kept only where it predicts the
//! held-out eval prompts better than the plain row by more than a standard error.

use switchyard_core::{dot, sigmoid, ModelHead};

#[cfg(test)]
use super::row::weighted_log_loss;
use super::row::{RowFit, RowProblem};
use crate::folds::Folds;
use crate::TrainError;

/// Penalties tried on the direction, as λ_d/2·|d|² on the mean loss.
const DIRECTION_LAMBDAS: [f64; 4] = [1e-3, 1e-2, 1e-1, 1.0];

/// What widening needs: the plain row's problem and its chosen penalties, and each eval prompt's features.
pub(super) struct Widening<'a> {
    /// The plain row's problem (representations, offsets, targets, the layer for the mixture).
    pub(super) rows: &'a RowFit<'a>,
    /// The router's features of each eval prompt.
    pub(super) features: &'a [Vec<f32>],
    /// The mixture's penalty, as chosen for the plain row.
    pub(super) mix_lambda: f64,
    /// The row's penalty, as chosen for the plain row.
    pub(super) lambda: f64,
}

impl Widening<'_> {
    /// The widened head fitted on every eval prompt, with its out-of-fold predictions, when the best
    /// direction penalty's out-of-fold log loss beats the plain row's (out-of-fold predictions `plain`) by more
    /// than one standard error of the per-prompt difference (the best of several penalties on the same folds
    /// flatters itself; a gain inside the noise keeps the plain row); `None` otherwise.
    pub(super) fn fit(&self, folds: &Folds, plain: &[f32]) -> Result<Option<(ModelHead, Vec<f32>)>, TrainError> {
        let reps: Vec<Vec<f32>> =
            self.rows.reps.iter().zip(self.features).map(|(r, f)| r.iter().chain(f).copied().collect()).collect();
        let mut best: Option<(f64, f64, Vec<f32>)> = None;
        for &direction_lambda in &DIRECTION_LAMBDAS {
            let mut oof = vec![0f32; reps.len()];
            for f in 0..folds.k {
                let (train, held) = folds.split(f);
                let (w, b) = self.fit_on(&reps, &train, direction_lambda)?;
                for &i in &held {
                    oof[i] = sigmoid(dot(&w, &reps[i]) + b + self.rows.offsets[i]);
                }
            }
            let (gain, se) = paired_gain(plain, &oof, self.rows.targets);
            if gain > se && best.as_ref().is_none_or(|(_, g, _)| gain > *g) {
                best = Some((direction_lambda, gain, oof));
            }
        }
        let Some((direction_lambda, _, oof)) = best else { return Ok(None) };
        let all: Vec<usize> = (0..reps.len()).collect();
        let (w, bias) = self.fit_on(&reps, &all, direction_lambda)?;
        let inputs = self.rows.reps.first().map_or(0, Vec::len);
        let (weight, direction) = w.split_at(inputs);
        Ok(Some((ModelHead::Widened { weight: weight.to_vec(), bias, direction: direction.to_vec() }, oof)))
    }

    /// The widened row on `rows`: the representation's part penalised toward the mixture (fitted on the same
    /// rows), the direction toward 0.
    fn fit_on(&self, reps: &[Vec<f32>], rows: &[usize], direction_lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let (mut centre, _) = self.rows.mixture(rows, self.mix_lambda)?;
        let inputs = centre.len();
        centre.resize(reps.first().map_or(inputs, Vec::len), 0.0);
        let problem = RowProblem {
            reps,
            offsets: self.rows.offsets,
            targets: self.rows.targets,
            centre: &centre,
            tail: Some((inputs, direction_lambda)),
        };
        problem.fit(rows, self.lambda)
    }
}

/// How much lower `better`'s log loss is than `base`'s on (score, rows) `targets`, weighted by rows, and the
/// standard error of that mean over the prompts.
fn paired_gain(base: &[f32], better: &[f32], targets: &[(f32, f32)]) -> (f64, f64) {
    let loss = |p: f32, y: f32| {
        let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
        let y = f64::from(y);
        -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
    };
    let gains: Vec<(f64, f64)> = base
        .iter()
        .zip(better)
        .zip(targets)
        .map(|((&b, &w), &(y, c))| (loss(b, y) - loss(w, y), f64::from(c)))
        .collect();
    let total: f64 = gains.iter().map(|g| g.1).sum::<f64>().max(1e-9);
    let mean = gains.iter().map(|(g, c)| g * c).sum::<f64>() / total;
    let variance = gains.iter().map(|(g, c)| c * (g - mean).powi(2)).sum::<f64>() / total;
    let effective = total * total / gains.iter().map(|g| g.1 * g.1).sum::<f64>().max(1e-9);
    (mean, (variance / (effective - 1.0).max(1.0)).sqrt())
}

#[cfg(test)]
mod tests {
    use switchyard_core::Dense;

    use super::*;

    /// Deterministic pseudo-random numbers in [0, 1).
    fn uniform(state: &mut u64) -> f32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 40) as f32 / (1u64 << 24) as f32
    }

    /// 200 eval prompts whose outcomes follow a feature the shared representation does not carry.
    fn outcomes_along(features: &[Vec<f32>], state: &mut u64) -> Vec<(f32, f32)> {
        features.iter().map(|f| (f32::from(u8::from(uniform(state) < sigmoid(4.0 * f[0]))), 1.0)).collect()
    }

    #[test]
    fn a_direction_is_kept_where_the_representation_misses_what_the_rows_say_and_not_otherwise() {
        let mut state = 11;
        let features: Vec<Vec<f32>> =
            (0..200).map(|_| (0..3).map(|_| uniform(&mut state) * 2.0 - 1.0).collect()).collect();
        // The representation: one unit of noise, unrelated to the outcomes; two existing models over it.
        let reps: Vec<Vec<f32>> = (0..200).map(|_| vec![uniform(&mut state) - 0.5]).collect();
        let offsets = vec![0f32; 200];
        let layer = Dense::new(2, 1, vec![1.0, -1.0], vec![0.0, 0.5]).unwrap();
        let hashes: Vec<u64> = (0..200).collect();
        let folds = Folds::grouped(&hashes, 5, 3).unwrap();
        let targets = outcomes_along(&features, &mut state);
        let rows = RowFit { reps: &reps, offsets: &offsets, targets: &targets, layer: &layer };
        let widening = Widening { rows: &rows, features: &features, mix_lambda: 0.1, lambda: 1.0 };
        // The plain row knows nothing here: it predicts about the mean everywhere.
        let plain = vec![0.5f32; 200];
        let Some((ModelHead::Widened { direction, .. }, oof)) = widening.fit(&folds, &plain).unwrap() else {
            panic!("the direction should be kept")
        };
        assert!(direction[0] > 1.0 && direction[0] > 4.0 * direction[1].abs().max(direction[2].abs()), "{direction:?}");
        let pairs: Vec<(f32, (f32, f32))> = oof.into_iter().zip(targets.iter().copied()).collect();
        assert!(weighted_log_loss(&pairs) < std::f64::consts::LN_2 - 0.05);

        // Outcomes that no feature explains: no direction beats the plain row.
        let coin: Vec<(f32, f32)> = (0..200).map(|_| (f32::from(u8::from(uniform(&mut state) < 0.5)), 1.0)).collect();
        let rows = RowFit { targets: &coin, ..rows };
        let widening = Widening { rows: &rows, ..widening };
        assert!(widening.fit(&folds, &plain).unwrap().is_none());
    }
}
