//! One logistic row over fixed representations, the piece every parametric fit of `profile add` is built
//! from: the two-stage fit toward a mixture of the existing models ([`RowFit`]) and the penalised problem
//! itself ([`RowProblem`]).

use switchyard_core::{logit, sigmoid, Dense};

use crate::folds::Folds;
use crate::lbfgs::Lbfgs;
use crate::TrainError;

/// Fitting the new model's row of one layer, in two stages:
/// 1. a mixture of the existing models: logit = Σ_j c_j·z_j(x) + b + o(x), where z_j is model j's logit from
///    this layer, c penalised toward equal weights (the mean row): a handful of parameters, which 50 prompts
///    can pin down, saying which existing models the new one resembles;
/// 2. the full row, penalised toward that mixture's row Σ_j c_j·w_j, so the eval rows can move it where they
///    have something to say.
///
/// Each stage's penalty is chosen by grouped cross-validation (stage 1 refitted inside every fold of stage 2).
pub(super) struct RowFit<'a> {
    pub(super) reps: &'a [Vec<f32>],
    pub(super) offsets: &'a [f32],
    pub(super) targets: &'a [(f32, f32)],
    pub(super) layer: &'a Dense,
}

impl RowFit<'_> {
    /// Stage 1 on `rows`: the mixture's row (weights, bias).
    pub(super) fn mixture(&self, rows: &[usize], lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let logits: Vec<Vec<f32>> = self.reps.iter().map(|r| self.layer.forward(r)).collect();
        let k = self.layer.outputs.max(1);
        let equal = vec![1.0 / k as f32; k];
        let problem =
            RowProblem { reps: &logits, offsets: self.offsets, targets: self.targets, centre: &equal, tail: None };
        let (c, b) = problem.fit(rows, lambda)?;
        let mut weight = vec![0f32; self.layer.inputs];
        for (row, cj) in self.layer.weight.chunks_exact(self.layer.inputs.max(1)).zip(&c) {
            weight.iter_mut().zip(row).for_each(|(w, r)| *w += cj * r);
        }
        let bias = b + c.iter().zip(&self.layer.bias).map(|(cj, bj)| cj * bj).sum::<f32>();
        Ok((weight, bias))
    }

    /// Stage 2 on `rows`: the full row, penalised by `lambda` toward the stage-1 row (fitted on the same rows).
    pub(super) fn refine(&self, rows: &[usize], mix_lambda: f64, lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let (centre, _) = self.mixture(rows, mix_lambda)?;
        RowProblem { reps: self.reps, offsets: self.offsets, targets: self.targets, centre: &centre, tail: None }
            .fit(rows, lambda)
    }

    /// The penalty of `lambdas` whose fits (by `fit` on the training folds) score the best out-of-fold log
    /// loss, with those out-of-fold predictions.
    pub(super) fn choose(
        &self,
        folds: &Folds,
        lambdas: &[f64],
        fit: impl Fn(&[usize], f64) -> Result<(Vec<f32>, f32), TrainError>,
    ) -> Result<(f64, Vec<f32>), TrainError> {
        let mut best: Option<(f64, f64, Vec<f32>)> = None;
        for &lambda in lambdas {
            let mut oof = vec![0f32; self.reps.len()];
            for f in 0..folds.k {
                let (train, held) = folds.split(f);
                let (w, b) = fit(&train, lambda)?;
                for &i in &held {
                    let z = switchyard_core::dot(&w, &self.reps[i]) + b + self.offsets[i];
                    oof[i] = sigmoid(z);
                }
            }
            let pairs: Vec<(f32, (f32, f32))> = oof.iter().copied().zip(self.targets.iter().copied()).collect();
            let loss = weighted_log_loss(&pairs);
            if best.as_ref().is_none_or(|(_, l, _)| loss < *l) {
                best = Some((lambda, loss, oof));
            }
        }
        best.map(|(lambda, _, oof)| (lambda, oof)).ok_or_else(|| TrainError::Fit("no penalty to try".into()))
    }
}

/// One logistic row over fixed representations: P_i = σ(w·r_i + b + o_i), fitted on soft targets weighted
/// by rows, with λ/2·|w − centre|² added to the weighted mean loss (the weights from `tail.0` on penalised by
/// `tail.1` instead of λ, when given).
pub(super) struct RowProblem<'a> {
    pub(super) reps: &'a [Vec<f32>],
    pub(super) offsets: &'a [f32],
    pub(super) targets: &'a [(f32, f32)],
    pub(super) centre: &'a [f32],
    pub(super) tail: Option<(usize, f64)>,
}

impl RowProblem<'_> {
    pub(super) fn fit(&self, rows: &[usize], lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let d = self.centre.len();
        let total: f64 = rows.iter().map(|&i| f64::from(self.targets[i].1)).sum::<f64>().max(1e-9);
        let mean_y = rows.iter().map(|&i| f64::from(self.targets[i].0 * self.targets[i].1)).sum::<f64>() / total;
        let centred: f64 =
            rows.iter().map(|&i| f64::from(self.targets[i].1) * self.z(self.centre, 0.0, i)).sum::<f64>() / total;
        let mut start: Vec<f64> = self.centre.iter().map(|&v| f64::from(v)).collect();
        start.push(f64::from(logit(mean_y.clamp(0.01, 0.99) as f32)) - centred);
        let solution = Lbfgs { max_iter: 300, ..Lbfgs::default() }.minimize(start, |x| {
            let (w, b) = x.split_at(d);
            let mut grad = vec![0f64; d + 1];
            let mut loss = 0.0;
            for &i in rows {
                let (y, c) = (f64::from(self.targets[i].0), f64::from(self.targets[i].1) / total);
                let z = self.reps[i].iter().zip(w).map(|(r, w)| f64::from(*r) * w).sum::<f64>()
                    + b[0]
                    + f64::from(self.offsets[i]);
                loss += c * (softplus(z) - y * z);
                let g = c * (1.0 / (1.0 + (-z).exp()) - y);
                grad.iter_mut().zip(&self.reps[i]).for_each(|(gj, r)| *gj += g * f64::from(*r));
                grad[d] += g;
            }
            for j in 0..d {
                let lambda = match self.tail {
                    Some((from, tail)) if j >= from => tail,
                    _ => lambda,
                };
                let diff = w[j] - f64::from(self.centre[j]);
                loss += lambda / 2.0 * diff * diff;
                grad[j] += lambda * diff;
            }
            Ok::<_, TrainError>((loss, grad))
        })?;
        let weight: Vec<f32> = solution[..d].iter().map(|&v| v as f32).collect();
        Ok((weight, solution[d] as f32))
    }

    fn z(&self, w: &[f32], b: f32, i: usize) -> f64 {
        f64::from(switchyard_core::dot(w, &self.reps[i]) + b + self.offsets[i])
    }
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// The mean score over (score, rows) pairs, weighted by rows.
pub(super) fn weighted_mean(targets: impl Iterator<Item = (f32, f32)>) -> f32 {
    let (sum, n) = targets.fold((0f32, 0f32), |(s, n), (y, c)| (s + y * c, n + c));
    sum / n.max(1e-9)
}

/// Log loss of (P, (score, rows)) pairs, weighted by rows.
pub(super) fn weighted_log_loss(pairs: &[(f32, (f32, f32))]) -> f64 {
    let (mut sum, mut n) = (0f64, 0f64);
    for &(p, (y, c)) in pairs {
        let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
        let y = f64::from(y);
        sum += f64::from(c) * -(y * p.ln() + (1.0 - y) * (1.0 - p).ln());
        n += f64::from(c);
    }
    sum / n.max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [0, 1).
    fn uniform(state: &mut u64) -> f32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 40) as f32 / (1u64 << 24) as f32
    }

    #[test]
    fn a_row_is_recovered_from_outcomes_and_shrinks_to_the_centre_under_a_heavy_penalty() {
        // 2,000 prompts in 3 dimensions; outcomes drawn from σ(2·r0 − 3·r1 + 0.5 − r2) with r2 as the offset.
        let mut state = 7;
        let reps: Vec<Vec<f32>> =
            (0..2000).map(|_| (0..2).map(|_| uniform(&mut state) * 2.0 - 1.0).collect()).collect();
        let offsets: Vec<f32> = (0..2000).map(|_| uniform(&mut state) - 0.5).collect();
        let targets: Vec<(f32, f32)> = reps
            .iter()
            .zip(&offsets)
            .map(|(r, o)| {
                let p = sigmoid(2.0 * r[0] - 3.0 * r[1] + 0.5 + o);
                (f32::from(u8::from(uniform(&mut state) < p)), 1.0)
            })
            .collect();
        let centre = [0.0, 0.0];
        let problem = RowProblem { reps: &reps, offsets: &offsets, targets: &targets, centre: &centre, tail: None };
        let all: Vec<usize> = (0..reps.len()).collect();
        let (w, b) = problem.fit(&all, 1e-5).unwrap();
        assert!((w[0] - 2.0).abs() < 0.4 && (w[1] + 3.0).abs() < 0.5 && (b - 0.5).abs() < 0.3, "{w:?} {b}");
        let centre = [1.0, 1.0];
        let heavy = RowProblem { centre: &centre, ..problem };
        let (w, _) = heavy.fit(&all, 1e3).unwrap();
        assert!(w.iter().all(|v| (v - 1.0).abs() < 0.01), "{w:?}");
    }
}
