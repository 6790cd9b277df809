//! The MLP predictor: one hidden layer over the features, one output per model, trained on all models at
//! once by minibatch AdamW on the observed loss.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, Optimizer, VarBuilder, VarMap};
use ndarray::Array2;
use switchyard_core::{logit, Dense, Predictor};

use super::loss::{next_random, tensor, uniform, ObservedLoss};
use crate::targets::Targets;
use crate::TrainError;

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

/// features → ReLU(hidden) → one logit per model, trained on the observed loss (soft cross-entropy of
/// outcome cells weighted by rows, Bradley–Terry for pairwise rows). With `val`, early-stopped on its loss;
/// without, trained for exactly `config.max_epochs` epochs. Returns the network and the epochs it kept.
pub fn fit_mlp(
    train: (&Array2<f32>, &Targets),
    val: Option<(&Array2<f32>, &Targets)>,
    config: MlpConfig,
    seed: u64,
) -> Result<(Predictor, usize), TrainError> {
    let device = Device::Cpu;
    let (n, nf) = train.0.dim();
    let models = train.1.models();
    let xt = tensor(train.0, &device)?;
    let validation = match val {
        Some((x, t)) => Some((tensor(x, &device)?, ObservedLoss::new(t, &device)?)),
        None => None,
    };

    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
    // Parameters are created here, not by candle's unseeded initialiser, so training is reproducible:
    // uniform(±1/√fan_in) weights from the seed, and each model's output bias at its base rate's logit so the
    // network learns departures from it. The layers below pick these variables up by name.
    let mut rng = seed.max(1);
    let prior: Vec<f32> = train.1.model_means().into_iter().map(logit).collect();
    let bound = |fan_in: usize| 1.0 / (fan_in.max(1) as f64).sqrt();
    let params = [
        ("hidden.weight", uniform(&[config.hidden, nf], bound(nf), &mut rng)),
        ("hidden.bias", uniform(&[config.hidden], bound(nf), &mut rng)),
        ("output.weight", uniform(&[models, config.hidden], bound(config.hidden), &mut rng)),
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
    let mut opt = candle_nn::AdamW::new(
        varmap.all_vars(),
        candle_nn::ParamsAdamW { lr: config.lr, weight_decay: config.weight_decay, ..Default::default() },
    )?;

    let mut order: Vec<usize> = (0..n).collect();
    let mut best = (f64::INFINITY, config.max_epochs, snapshot(&hidden, &output)?);
    let mut stale = 0;
    for epoch in 0..config.max_epochs {
        shuffle(&mut order, &mut rng);
        for chunk in order.chunks(config.batch) {
            let idx = Tensor::from_vec(chunk.iter().map(|&i| i as u32).collect::<Vec<_>>(), chunk.len(), &device)?;
            let batch = ObservedLoss::new(&train.1.rows(chunk), &device)?;
            opt.backward_step(&batch.loss(&forward(&xt.index_select(&idx, 0)?)?)?)?;
        }
        let Some((xv, observed)) = &validation else {
            continue;
        };
        let val_loss = f64::from(observed.loss(&forward(xv)?)?.to_scalar::<f32>()?);
        if val_loss < best.0 - 1e-5 {
            best = (val_loss, epoch + 1, snapshot(&hidden, &output)?);
            stale = 0;
        } else {
            stale += 1;
            if stale >= config.patience {
                break;
            }
        }
    }
    if validation.is_none() {
        best = (0.0, config.max_epochs, snapshot(&hidden, &output)?);
    }
    let (_, epochs, (h, o)) = best;
    Ok((Predictor::Mlp { hidden: h, output: o }, epochs))
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

/// Fisher–Yates shuffle.
fn shuffle(items: &mut [usize], state: &mut u64) {
    for i in (1..items.len()).rev() {
        items.swap(i, (next_random(state) % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictors::predict_rows;

    #[test]
    fn mlp_learns_where_each_model_succeeds() {
        // 60 prompts on a quarter circle; model 0 succeeds on the last few only, model 1 on most.
        let n = 60;
        let angle = |r: usize| r as f32 / n as f32 * std::f32::consts::FRAC_PI_2;
        let x = Array2::from_shape_fn((n, 2), |(r, c)| if c == 0 { angle(r).cos() } else { angle(r).sin() });
        let value = Array2::from_shape_fn((n, 2), |(r, m)| {
            let high = r as f32 / n as f32 > 0.8;
            f32::from(u8::from(if m == 0 { high } else { r % 7 != 0 }))
        });
        let targets = Targets { value, weight: Array2::ones((n, 2)), pairs: Vec::new() };
        let config =
            MlpConfig { hidden: 16, max_epochs: 300, batch: 60, lr: 0.05, patience: 300, ..MlpConfig::default() };
        let (mlp, epochs) = fit_mlp((&x, &targets), None, config, 3).unwrap();
        assert_eq!(epochs, 300);
        let p = predict_rows(&mlp, &x, &x);
        assert!(p[[59, 0]] > p[[5, 0]] + 0.3, "{:?}", p.column(0));
        let patient = MlpConfig { patience: 3, ..config };
        let (_, epochs) = fit_mlp((&x, &targets), Some((&x, &targets)), patient, 3).unwrap();
        assert!((1..=300).contains(&epochs), "{epochs}");
    }
}
