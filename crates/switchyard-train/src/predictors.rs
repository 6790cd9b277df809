//! Fitting the three per-model success predictors on a target matrix (prompts × models, with a weight of 0
//! where a model was not observed): per-model logistic regression (linfa), a small MLP (candle-nn) trained on
//! all models at once with a masked loss, and k nearest neighbours.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use switchyard_core::{logit, Dense, KnnMemory, Predictor};

use crate::heads::soft_bce_elements;
use crate::TrainError;

/// Per-prompt, per-model targets in [0, 1] and observation weights (0 = not observed).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// `[prompts, models]` targets (0 where unobserved).
    pub value: Array2<f32>,
    /// `[prompts, models]` observation counts (0 where unobserved).
    pub weight: Array2<f32>,
}

impl Targets {
    /// Each model's weighted mean target (0.5 for a model never observed).
    pub fn model_means(&self) -> Vec<f32> {
        (0..self.value.ncols())
            .map(|m| {
                let w = self.weight.column(m).sum();
                if w > 0.0 {
                    (&self.value.column(m) * &self.weight.column(m)).sum() / w
                } else {
                    0.5
                }
            })
            .collect()
    }

    /// (predicted, target) pairs over every observed cell, for metrics.
    pub fn pairs(&self, predicted: &Array2<f32>) -> Vec<(f32, f32)> {
        let mut out = Vec::new();
        for ((idx, &w), &t) in self.weight.indexed_iter().zip(self.value.iter()) {
            if w > 0.0 {
                out.push((predicted[idx], t));
            }
        }
        out
    }

    /// The observed (predicted, target) pairs of one model.
    pub fn model_pairs(&self, predicted: &Array2<f32>, model: usize) -> Vec<(f32, f32)> {
        (0..self.value.nrows())
            .filter(|&r| self.weight[[r, model]] > 0.0)
            .map(|r| (predicted[[r, model]], self.value[[r, model]]))
            .collect()
    }
}

/// One binary logistic regression per model (labels: target >= 0.5) with L2 penalty `alpha`/2·|w|² on the
/// summed log loss. A model with fewer than 10 observations, or only one class, gets a constant predictor at
/// its smoothed mean.
pub fn fit_logistic(
    features: &Array2<f32>,
    targets: &Targets,
    alpha: f64,
    mut progress: impl FnMut(usize),
) -> Result<Predictor, TrainError> {
    let (_, nf) = features.dim();
    let models = targets.value.ncols();
    let mut weight = vec![0f32; models * nf];
    let mut bias = vec![0f32; models];
    for m in 0..models {
        let rows: Vec<usize> = (0..features.nrows()).filter(|&r| targets.weight[[r, m]] > 0.0).collect();
        let labels: Array1<bool> = rows.iter().map(|&r| targets.value[[r, m]] >= 0.5).collect();
        let positives = labels.iter().filter(|l| **l).count();
        if rows.len() < 10 || positives == 0 || positives == rows.len() {
            bias[m] = logit((positives as f32 + 1.0) / (rows.len() as f32 + 2.0));
        } else {
            let records = Array2::from_shape_fn((rows.len(), nf), |(r, c)| f64::from(features[[rows[r], c]]));
            let fitted = LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(100)
                .fit(&Dataset::new(records, labels))
                .map_err(|e| TrainError::Fit(format!("logistic regression for model #{m}: {e}")))?;
            // linfa's "positive" class is the more frequent one, not `true`: orient the model so that it
            // always gives P(success).
            let sign = if fitted.labels().pos.class { 1.0 } else { -1.0 };
            for (c, w) in fitted.params().iter().enumerate() {
                weight[m * nf + c] = (sign * *w) as f32;
            }
            bias[m] = (sign * fitted.intercept()) as f32;
        }
        progress(m + 1);
    }
    Dense::new(models, nf, weight, bias)
        .map(Predictor::Logistic)
        .ok_or_else(|| TrainError::Fit("logistic weights have the wrong shape".into()))
}

/// Settings of the MLP predictor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MlpConfig {
    /// Hidden units.
    pub hidden: usize,
    /// Most passes over the training prompts.
    pub max_epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Learning rate (AdamW).
    pub lr: f64,
    /// Weight decay (AdamW).
    pub weight_decay: f64,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: 128, max_epochs: 80, batch: 128, lr: 2e-3, weight_decay: 1e-2, patience: 6 }
    }
}

/// features → ReLU(hidden) → one logit per model, trained with a masked soft cross-entropy (only observed
/// cells count, weighted by observations), early-stopped on the validation loss.
pub fn fit_mlp(
    train: (&Array2<f32>, &Targets),
    val: (&Array2<f32>, &Targets),
    config: MlpConfig,
    seed: u64,
    mut progress: impl FnMut(usize, f64),
) -> Result<Predictor, TrainError> {
    let device = Device::Cpu;
    let (n, nf) = train.0.dim();
    let models = train.1.value.ncols();
    let tensor = |a: &Array2<f32>| -> Result<Tensor, TrainError> {
        let data: Vec<f32> = a.iter().copied().collect();
        Ok(Tensor::from_vec(data, a.dim(), &device)?)
    };
    let (xt, yt, wt) = (tensor(train.0)?, tensor(&train.1.value)?, tensor(&train.1.weight)?);
    let (xv, yv, wv) = (tensor(val.0)?, tensor(&val.1.value)?, tensor(&val.1.weight)?);

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    // Parameters are created here, not by candle's unseeded initialiser, so training is reproducible:
    // uniform(±1/√fan_in) weights from the seed, and each model's output bias at its base rate's logit so the
    // network learns departures from it. The layers below pick these variables up by name.
    let mut rng = seed.max(1);
    let prior: Vec<f32> = train.1.model_means().into_iter().map(logit).collect();
    let params = [
        ("hidden.weight", uniform(&[config.hidden, nf], nf, &mut rng)),
        ("hidden.bias", uniform(&[config.hidden], nf, &mut rng)),
        ("output.weight", uniform(&[models, config.hidden], config.hidden, &mut rng)),
        ("output.bias", (prior, vec![models])),
    ];
    {
        let mut vars = varmap.data().lock().map_err(|_| TrainError::Fit("MLP parameters are poisoned".into()))?;
        for (name, (values, shape)) in params {
            vars.insert(name.to_string(), Var::from_tensor(&Tensor::from_vec(values, shape, &device)?)?);
        }
    }
    let hidden = candle_nn::linear(nf, config.hidden, vb.pp("hidden"))?;
    let output = candle_nn::linear(config.hidden, models, vb.pp("output"))?;
    let forward = |x: &Tensor| -> candle_core::Result<Tensor> { output.forward(&hidden.forward(x)?.relu()?) };
    let loss = |x: &Tensor, y: &Tensor, w: &Tensor| -> candle_core::Result<Tensor> {
        let per = soft_bce_elements(&forward(x)?, y)?;
        per.mul(w)?.sum_all()?.broadcast_div(&w.sum_all()?.clamp(1e-6f32, f32::MAX)?)
    };
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW { lr: config.lr, weight_decay: config.weight_decay, ..Default::default() },
    )?;

    let mut order: Vec<usize> = (0..n).collect();
    let mut best = (f64::INFINITY, snapshot(&hidden, &output)?);
    let mut stale = 0;
    for epoch in 0..config.max_epochs {
        shuffle(&mut order, &mut rng);
        for chunk in order.chunks(config.batch) {
            let idx = Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(), chunk.len(), &device)?;
            let l = loss(&xt.index_select(&idx, 0)?, &yt.index_select(&idx, 0)?, &wt.index_select(&idx, 0)?)?;
            opt.backward_step(&l)?;
        }
        let val_loss = f64::from(loss(&xv, &yv, &wv)?.to_scalar::<f32>()?);
        progress(epoch + 1, val_loss);
        if val_loss < best.0 - 1e-5 {
            best = (val_loss, snapshot(&hidden, &output)?);
            stale = 0;
        } else {
            stale += 1;
            if stale >= config.patience {
                break;
            }
        }
    }
    let (h, o) = best.1;
    Ok(Predictor::Mlp { hidden: h, output: o })
}

fn snapshot(hidden: &candle_nn::Linear, output: &candle_nn::Linear) -> Result<(Dense, Dense), TrainError> {
    let dense = |l: &candle_nn::Linear| -> Result<Dense, TrainError> {
        let (outputs, inputs) = l.weight().dims2()?;
        let weight = l.weight().flatten_all()?.to_vec1::<f32>()?;
        let bias = l.bias().map(|b| b.to_vec1::<f32>()).transpose()?.unwrap_or_else(|| vec![0.0; outputs]);
        Dense::new(outputs, inputs, weight, bias).ok_or_else(|| TrainError::Fit("MLP layer has the wrong shape".into()))
    };
    Ok((dense(hidden)?, dense(output)?))
}

/// The next value of a xorshift64 generator: deterministic for a seed, no extra dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Fisher–Yates shuffle.
fn shuffle(items: &mut [usize], state: &mut u64) {
    for i in (1..items.len()).rev() {
        items.swap(i, (next(state) % (i as u64 + 1)) as usize);
    }
}

/// Values uniform in ±1/√fan_in for a tensor of `shape`, with the shape.
fn uniform(shape: &[usize], fan_in: usize, state: &mut u64) -> (Vec<f32>, Vec<usize>) {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let n = shape.iter().product();
    let values = (0..n)
        .map(|_| ((next(state) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
        .map(|v| v as f32)
        .collect();
    (values, shape.to_vec())
}

/// kNN over the training embeddings; k is chosen among `ks` by validation log loss.
pub fn fit_knn(
    train: (&Array2<f32>, &Targets),
    val: (&Array2<f32>, &Targets),
    ks: &[usize],
) -> Result<Predictor, TrainError> {
    let (n, dim) = train.0.dim();
    let models = train.1.value.ncols();
    let mut scores = vec![f32::NAN; n * models];
    for ((r, m), &w) in train.1.weight.indexed_iter() {
        if w > 0.0 {
            scores[r * models + m] = train.1.value[[r, m]];
        }
    }
    let mut memory = KnnMemory {
        dim,
        embeddings: train.0.iter().copied().collect(),
        scores,
        prior: train.1.model_means(),
        k: ks.first().copied().unwrap_or(10),
        alpha: 1.0,
    };
    let mut best = (f64::INFINITY, memory.k);
    for &k in ks {
        memory.k = k;
        let predicted = predict_rows(&Predictor::Knn(memory.clone()), val.0, val.0);
        let ll = crate::metrics::log_loss(&val.1.pairs(&predicted));
        if ll < best.0 {
            best = (ll, k);
        }
    }
    memory.k = best.1;
    Ok(Predictor::Knn(memory))
}

/// Raw predictions for every row: `features` feed logistic/MLP, `embeddings` feed kNN.
pub fn predict_rows(predictor: &Predictor, features: &Array2<f32>, embeddings: &Array2<f32>) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = features
        .rows()
        .into_iter()
        .zip(embeddings.rows())
        .map(|(f, e)| predictor.predict(&f.to_vec(), &e.to_vec()))
        .collect();
    let models = rows.first().map_or(0, Vec::len);
    Array2::from_shape_fn((rows.len(), models), |(r, m)| rows[r][m])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 60 prompts on a quarter circle (unit vectors, like embeddings); model 0 succeeds only on the last
    /// few (success is the minority class), model 1 on most prompts.
    fn data() -> (Array2<f32>, Targets) {
        let n = 60;
        let angle = |r: usize| r as f32 / n as f32 * std::f32::consts::FRAC_PI_2;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| if c == 0 { angle(r).cos() } else { angle(r).sin() });
        let value = Array2::from_shape_fn((n, 2), |(r, m)| {
            let high = r as f32 / n as f32 > 0.8;
            f32::from(u8::from(if m == 0 { high } else { r % 7 != 0 }))
        });
        (x, Targets { value, weight: Array2::ones((n, 2)) })
    }

    #[test]
    fn logistic_predicts_success_whichever_class_is_more_frequent() {
        let (x, targets) = data();
        let p = predict_rows(&fit_logistic(&x, &targets, 0.1, |_| {}).unwrap(), &x, &x);
        assert!(p[[59, 0]] > 0.5 && p[[5, 0]] < 0.5, "minority-success model: {:?}", p.column(0));
        assert!(p[[30, 1]] > 0.5, "majority-success model: {:?}", p.column(1));
    }

    #[test]
    fn mlp_and_knn_learn_the_same_pattern() {
        let (x, targets) = data();
        let config =
            MlpConfig { hidden: 16, max_epochs: 300, batch: 60, lr: 0.05, patience: 300, ..MlpConfig::default() };
        let mlp = fit_mlp((&x, &targets), (&x, &targets), config, 3, |_, _| {}).unwrap();
        let p = predict_rows(&mlp, &x, &x);
        assert!(p[[59, 0]] > p[[5, 0]] + 0.3, "{:?}", p.column(0));
        let knn = fit_knn((&x, &targets), (&x, &targets), &[3]).unwrap();
        let p = predict_rows(&knn, &x, &x);
        assert!(p[[59, 0]] > 0.5 && p[[5, 0]] < 0.3, "{:?}", p.column(0));
    }
}
