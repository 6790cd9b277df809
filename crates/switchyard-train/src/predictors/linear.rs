//! The two full-batch predictors, fitted by L-BFGS on the observed loss with an L2 penalty:
//! per-model logistic regression over the features, and the matrix-factorisation / IRT predictor.

use candle_core::Device;
use ndarray::Array2;
use switchyard_core::{logit, Dense, Factorized, Predictor};

use super::loss::{squared, tensor, uniform, ObservedLoss, Params};
use crate::lbfgs::Lbfgs;
use crate::targets::Targets;
use crate::TrainError;

/// Penalty on the models' biases alone: they are free except with pairwise-only data, where only their
/// differences are identified.
const BIAS_PENALTY: f64 = 1e-4;

/// What both full-batch predictors start from: the sizes, the features as a tensor, the observed loss, and
/// each model's base rate as a logit (the biases' starting point).
struct Problem {
    nf: usize,
    models: usize,
    x: candle_core::Tensor,
    observed: ObservedLoss,
    prior: Vec<f32>,
}

impl Problem {
    fn new(features: &Array2<f32>, targets: &Targets, device: &Device) -> Result<Self, TrainError> {
        Ok(Self {
            nf: features.ncols(),
            models: targets.models(),
            x: tensor(features, device)?,
            observed: ObservedLoss::new(targets, device)?,
            prior: targets.model_means().into_iter().map(logit).collect(),
        })
    }
}

fn dense(var: &candle_core::Var, bias: Option<&candle_core::Var>) -> Result<Dense, TrainError> {
    let (outputs, inputs) = var.dims2()?;
    let weight = var.flatten_all()?.to_vec1::<f32>()?;
    let bias = match bias {
        Some(b) => b.flatten_all()?.to_vec1::<f32>()?,
        None => vec![0.0; outputs],
    };
    Dense::new(outputs, inputs, weight, bias).ok_or_else(|| TrainError::Fit("a layer has the wrong shape".into()))
}

/// One logistic regression per model, P = σ(w_m·f + b_m), fitted jointly on soft targets and pairwise rows
/// with penalty `lambda`/2·Σ|w_m|² added to the mean loss.
pub fn fit_logistic(features: &Array2<f32>, targets: &Targets, lambda: f64) -> Result<Predictor, TrainError> {
    let device = Device::Cpu;
    let Problem { nf, models, x, observed, prior } = Problem::new(features, targets, &device)?;
    let params = Params::new(vec![(vec![0.0; models * nf], vec![models, nf]), (prior, vec![models])], &device)?;
    params.minimize(Lbfgs::default(), |v| {
        let logits = x.matmul(&v[0].t()?)?.broadcast_add(&v[1])?;
        let penalty =
            (squared(&v[0])?.affine(lambda / 2.0, 0.0)? + squared(&v[1])?.affine(BIAS_PENALTY / 2.0, 0.0)?)?;
        observed.loss(&logits)? + penalty
    })?;
    Ok(Predictor::Logistic(dense(&params.vars[0], Some(&params.vars[1]))?))
}

/// The matrix-factorisation / IRT predictor with a `latent`-dimensional projection, penalty `lambda`/2 on
/// every weight's squares. The loss is not convex in the factors, and both factors at zero is a saddle:
/// the projection starts at random (seeded; rows of norm about √3) and the model vectors at zero, so the
/// first steps fit the model vectors on random features and the projection follows.
pub fn fit_mf(
    features: &Array2<f32>,
    targets: &Targets,
    latent: usize,
    lambda: f64,
    seed: u64,
) -> Result<Predictor, TrainError> {
    let device = Device::Cpu;
    let Problem { nf, models, x, observed, prior } = Problem::new(features, targets, &device)?;
    let mut rng = seed.max(1);
    let params = Params::new(
        vec![
            uniform(&[latent, nf], 3.0 / (nf.max(1) as f64).sqrt(), &mut rng),
            (vec![0.0; models * latent], vec![models, latent]),
            (prior, vec![models]),
            (vec![0.0; nf], vec![1, nf]),
        ],
        &device,
    )?;
    let options = Lbfgs { max_iter: 200, tolerance: 1e-6, ..Lbfgs::default() };
    params.minimize(options, |v| {
        let latent_vectors = x.matmul(&v[0].t()?)?;
        let difficulty = x.matmul(&v[3].t()?)?;
        let logits = latent_vectors.matmul(&v[1].t()?)?.broadcast_add(&v[2])?.broadcast_sub(&difficulty)?;
        let weights = ((squared(&v[0])? + squared(&v[1])?)? + squared(&v[3])?)?;
        let penalty = (weights.affine(lambda / 2.0, 0.0)? + squared(&v[2])?.affine(BIAS_PENALTY / 2.0, 0.0)?)?;
        observed.loss(&logits)? + penalty
    })?;
    Ok(Predictor::Mf(Factorized {
        project: dense(&params.vars[0], None)?,
        models: dense(&params.vars[1], Some(&params.vars[2]))?,
        difficulty: dense(&params.vars[3], None)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictors::predict_rows;
    use crate::targets::PairTarget;

    /// 80 prompts on a quarter circle; model 0 succeeds on the upper fifth only, model 1 on most; model 2 is
    /// model 1 with one worse outcome in seven (correlated, as real models are).
    fn data() -> (Array2<f32>, Targets) {
        let n = 80;
        let angle = |r: usize| r as f32 / n as f32 * std::f32::consts::FRAC_PI_2;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| if c == 0 { angle(r).cos() } else { angle(r).sin() });
        let value = Array2::from_shape_fn((n, 3), |(r, m)| {
            let high = r as f32 / n as f32 > 0.8;
            f32::from(u8::from(match m {
                0 => high,
                1 => r % 7 != 0,
                _ => r % 7 != 0 && r % 5 != 0,
            }))
        });
        (x, Targets { value, weight: Array2::ones((n, 3)), pairs: Vec::new() })
    }

    #[test]
    fn logistic_and_mf_learn_where_each_model_succeeds() {
        let (x, targets) = data();
        for predictor in [fit_logistic(&x, &targets, 1e-4).unwrap(), fit_mf(&x, &targets, 2, 1e-4, 5).unwrap()] {
            let p = predict_rows(&predictor, &x, &x);
            assert!(p[[79, 0]] > 0.5 && p[[5, 0]] < 0.3, "{:?}: {:?}", predictor.kind(), p.column(0));
            assert!(p[[30, 1]] > 0.6, "{:?}", p.column(1));
            assert!(p.column(1).mean() > p.column(2).mean());
        }
    }

    #[test]
    fn pairwise_rows_alone_order_the_models() {
        let (x, _) = data();
        let pairs = (0..80).map(|r| PairTarget { row: r, a: 0, b: 1, y: if r > 60 { 1.0 } else { 0.0 } }).collect();
        let targets = Targets { value: Array2::zeros((80, 2)), weight: Array2::zeros((80, 2)), pairs };
        let p = predict_rows(&fit_logistic(&x, &targets, 1e-3).unwrap(), &x, &x);
        assert!(p[[79, 0]] > p[[79, 1]] && p[[10, 0]] < p[[10, 1]], "{p:?}");
    }
}
