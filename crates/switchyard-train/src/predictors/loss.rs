//! The training loss shared by the parametric predictors, as a candle graph: the soft cross-entropy of every
//! observed outcome cell (weighted by its rows) plus the Bradley–Terry loss of every pairwise row, averaged
//! over observations. Also the glue that lets L-BFGS drive candle variables.

use candle_core::{backprop::GradStore, DType, Device, Tensor, Var};
use ndarray::Array2;

use crate::targets::Targets;
use crate::TrainError;

/// Per-element binary cross-entropy between logits and soft targets, numerically stable:
/// max(z, 0) − z·y + log(1 + exp(−|z|)).
pub fn soft_bce_elements(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    (logits.relu()? - logits.mul(targets)?)? + softplus
}

/// A 2-D array as a tensor.
pub fn tensor(a: &Array2<f32>, device: &Device) -> Result<Tensor, TrainError> {
    let data: Vec<f32> = a.iter().copied().collect();
    Ok(Tensor::from_vec(data, a.dim(), device)?)
}

/// Targets as tensors, ready for [`ObservedLoss::loss`].
pub struct ObservedLoss {
    value: Tensor,
    weight: Tensor,
    /// Flat indices (row · models + model) of each pair's two models, and the pairs' targets.
    pairs: Option<(Tensor, Tensor, Tensor)>,
    /// Outcome rows plus pairwise rows: the loss is a mean over them.
    observations: f64,
}

impl ObservedLoss {
    /// Prepares `targets`.
    pub fn new(targets: &Targets, device: &Device) -> Result<Self, TrainError> {
        let models = targets.models();
        let pairs = if targets.pairs.is_empty() {
            None
        } else {
            let flat = |f: fn(&crate::targets::PairTarget) -> usize| -> Vec<u32> {
                targets.pairs.iter().map(|p| (p.row * models + f(p)) as u32).collect()
            };
            let n = targets.pairs.len();
            Some((
                Tensor::from_vec(flat(|p| p.a), n, device)?,
                Tensor::from_vec(flat(|p| p.b), n, device)?,
                Tensor::from_vec(targets.pairs.iter().map(|p| p.y).collect::<Vec<_>>(), n, device)?,
            ))
        };
        let observations = f64::from(targets.weight.sum()) + targets.pairs.len() as f64;
        Ok(Self {
            value: tensor(&targets.value, device)?,
            weight: tensor(&targets.weight, device)?,
            pairs,
            observations: observations.max(1e-6),
        })
    }

    /// Mean loss of `logits` (`[prompts, models]`) over the observations.
    pub fn loss(&self, logits: &Tensor) -> candle_core::Result<Tensor> {
        let mut total = soft_bce_elements(logits, &self.value)?.mul(&self.weight)?.sum_all()?;
        if let Some((a, b, y)) = &self.pairs {
            let flat = logits.flatten_all()?;
            let diff = (flat.index_select(a, 0)? - flat.index_select(b, 0)?)?;
            total = (total + soft_bce_elements(&diff, y)?.sum_all()?)?;
        }
        total.affine(1.0 / self.observations, 0.0)
    }
}

/// Candle variables driven by a flat parameter vector (for L-BFGS).
pub struct Params {
    /// The variables, in order.
    pub vars: Vec<Var>,
}

impl Params {
    /// Variables with these initial values and shapes.
    pub fn new(init: Vec<(Vec<f32>, Vec<usize>)>, device: &Device) -> Result<Self, TrainError> {
        let vars = init
            .into_iter()
            .map(|(values, shape)| Var::from_tensor(&Tensor::from_vec(values, shape, device)?))
            .collect::<Result<Vec<_>, candle_core::Error>>()?;
        Ok(Self { vars })
    }

    /// The current values, concatenated.
    pub fn flat(&self) -> Result<Vec<f64>, TrainError> {
        let mut out = Vec::new();
        for v in &self.vars {
            out.extend(v.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f64::from));
        }
        Ok(out)
    }

    /// Sets every variable from a flat vector.
    pub fn set(&self, flat: &[f64]) -> Result<(), TrainError> {
        let mut at = 0;
        for v in &self.vars {
            let n = v.elem_count();
            let values: Vec<f32> = flat[at..at + n].iter().map(|&x| x as f32).collect();
            v.set(&Tensor::from_vec(values, v.shape(), v.device())?)?;
            at += n;
        }
        Ok(())
    }

    /// The gradients of every variable, concatenated (zeros where a variable got none).
    pub fn grads(&self, store: &GradStore) -> Result<Vec<f64>, TrainError> {
        let mut out = Vec::new();
        for v in &self.vars {
            match store.get(v.as_tensor()) {
                Some(g) => out.extend(g.flatten_all()?.to_vec1::<f32>()?.into_iter().map(f64::from)),
                None => out.extend(std::iter::repeat_n(0.0, v.elem_count())),
            }
        }
        Ok(out)
    }

    /// Minimises `objective` of the variables with L-BFGS, leaving the best values in them.
    pub fn minimize(
        &self,
        options: crate::lbfgs::Lbfgs,
        objective: impl Fn(&[Var]) -> candle_core::Result<Tensor>,
    ) -> Result<(), TrainError> {
        let best = options.minimize(self.flat()?, |x| -> Result<(f64, Vec<f64>), TrainError> {
            self.set(x)?;
            let loss = objective(&self.vars)?;
            let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            let grads = self.grads(&loss.backward()?)?;
            Ok((value, grads))
        })?;
        self.set(&best)
    }
}

/// Sum of squares of a tensor.
pub fn squared(t: &Tensor) -> candle_core::Result<Tensor> {
    t.sqr()?.sum_all()
}

/// The next value of a xorshift64 generator: deterministic for a seed, no extra dependency.
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Values uniform in ±`bound` for a tensor of `shape`, with the shape.
pub fn uniform(shape: &[usize], bound: f64, state: &mut u64) -> (Vec<f32>, Vec<usize>) {
    let n = shape.iter().product();
    let values = (0..n)
        .map(|_| ((next_random(state) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
        .map(|v| v as f32)
        .collect();
    (values, shape.to_vec())
}
