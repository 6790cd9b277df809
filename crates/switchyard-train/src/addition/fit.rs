//! The fits behind [`super::fit_profile`]: a predictor row per leaf (penalised toward the existing models'
//! mean row, the penalty chosen by grouped cross-validation), a kNN column by per-region accuracy, the
//! per-domain priors by a difficulty-adjusted Bernoulli fit, and the output-length row.

use ndarray::Array2;
use switchyard_core::{sigmoid, Dense, KnnMemory, ModelHead, Platt, Predictor, Router};

use super::row::{weighted_log_loss, weighted_mean, RowFit};
use super::EvalRows;
use crate::folds::Folds;
use crate::TrainError;

/// Penalties tried on the full row, as λ/2·|w − w̄|² on the mean loss (the largest keeps the mixture's row).
const LAMBDAS: [f64; 6] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 100.0];
/// Penalties tried on the mixture weights, toward equal weights.
const MIX_LAMBDAS: [f64; 4] = [1e-3, 1e-2, 1e-1, 1.0];
/// Cross-validation folds over the eval prompts.
const FOLDS: usize = 5;

/// What fitting measured and the per-prompt inputs the priors and lengths reuse.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFit {
    /// Cross-validated log loss of the new model's calibrated output on the eval prompts.
    pub cv_log_loss: Option<f64>,
    /// The same for the eval set's mean on the same folds.
    pub constant_log_loss: Option<f64>,
    /// The penalty chosen for the first parametric member.
    pub lambda: Option<f64>,
    /// Platt scaling of the new model's out-of-fold predictions (identity when it does not help).
    pub calibration: Platt,
    /// Each eval prompt's router features.
    pub(crate) features: Vec<Vec<f32>>,
    /// Each eval prompt's embedding.
    pub(crate) embeddings: Vec<Vec<f32>>,
    /// Mean score and rows per eval prompt.
    pub(crate) targets: Vec<(f32, f32)>,
    /// Mean ln(1 + output tokens) per eval prompt that reports tokens.
    pub(crate) log_tokens: Vec<(usize, f32)>,
    /// Domain labels of the eval prompts.
    pub(crate) labels: Vec<Option<String>>,
}

/// The new model's output in every leaf of the router's predictor.
pub(super) fn fit_heads(
    router: &Router,
    eval: &EvalRows,
    embeddings: &Array2<f32>,
    seed: u64,
) -> Result<(ModelHead, ProfileFit), TrainError> {
    let embeddings: Vec<Vec<f32>> = embeddings.rows().into_iter().map(|r| r.to_vec()).collect();
    let features: Vec<Vec<f32>> = embeddings.iter().map(|e| router.heads.features(e)).collect();
    let targets: Vec<(f32, f32)> = eval.prompts.iter().map(|p| (p.score(), p.rows)).collect();
    let log_tokens = eval
        .prompts
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.output_tokens.is_empty())
        .map(|(i, p)| {
            (i, p.output_tokens.iter().map(|t| t.max(0.0).ln_1p()).sum::<f32>() / p.output_tokens.len() as f32)
        })
        .collect();
    let hashes: Vec<u64> = eval.prompts.iter().map(|p| p.text_hash).collect();
    let folds = Folds::grouped(&hashes, FOLDS, seed)?;
    let mut fit = ProfileFit {
        features,
        embeddings,
        targets,
        log_tokens,
        labels: eval.prompts.iter().map(|p| p.domain.clone()).collect(),
        ..ProfileFit::default()
    };
    let (head, oof) = leaf(router, &router.predictor, &mut fit, &folds)?;
    fit.calibration = calibrate(&oof, &fit.targets);
    // What the whole new output (every member, calibrated) and a constant (the training folds' mean) score
    // out of fold.
    let calibrated: Vec<(f32, (f32, f32))> =
        oof.iter().zip(&fit.targets).map(|(&p, &t)| (fit.calibration.apply(p), t)).collect();
    fit.cv_log_loss = Some(weighted_log_loss(&calibrated));
    let mut constant = Vec::new();
    for f in 0..folds.k {
        let (train, held) = folds.split(f);
        let mean = weighted_mean(train.iter().map(|&i| fit.targets[i]));
        constant.extend(held.iter().map(|&i| (mean, fit.targets[i])));
    }
    fit.constant_log_loss = Some(weighted_log_loss(&constant));
    Ok((head, fit))
}

/// Platt scaling of the new model's out-of-fold predictions (the other models' calibration was fitted the
/// same way, on their out-of-fold predictions in training), kept only when it lowers their log loss.
fn calibrate(oof: &[f32], targets: &[(f32, f32)]) -> Platt {
    let pairs: Vec<(f32, f32)> = oof.iter().zip(targets).map(|(&p, &(y, _))| (p, y)).collect();
    let platt = crate::metrics::fit_platt(&pairs);
    let scaled: Vec<(f32, (f32, f32))> = oof.iter().zip(targets).map(|(&p, &t)| (platt.apply(p), t)).collect();
    let raw: Vec<(f32, (f32, f32))> = oof.iter().copied().zip(targets.iter().copied()).collect();
    if weighted_log_loss(&scaled) < weighted_log_loss(&raw) {
        platt
    } else {
        Platt::default()
    }
}

/// The new model's output in one predictor, with its out-of-fold predictions on the eval prompts.
fn leaf(
    router: &Router,
    predictor: &Predictor,
    fit: &mut ProfileFit,
    folds: &Folds,
) -> Result<(ModelHead, Vec<f32>), TrainError> {
    let (reps, offsets, layer): (Vec<Vec<f32>>, Vec<f32>, &Dense) = match predictor {
        Predictor::Logistic(layer) => (fit.features.clone(), vec![0.0; fit.features.len()], layer),
        Predictor::Mlp { hidden, output } => (
            fit.features.iter().map(|f| hidden.forward(f).into_iter().map(|v| v.max(0.0)).collect()).collect(),
            vec![0.0; fit.features.len()],
            output,
        ),
        Predictor::Mf(mf) => (
            fit.features.iter().map(|f| mf.project.forward(f)).collect(),
            fit.features.iter().map(|f| -mf.difficulty.forward(f)[0]).collect(),
            &mf.models,
        ),
        // The new model's abilities over the prompts' fixed skill mix, discrimination and difficulty.
        Predictor::Irt(irt) => (
            fit.features.iter().map(|f| irt.representation(f)).collect(),
            fit.features.iter().map(|f| -irt.difficulty.forward(f)[0]).collect(),
            &irt.models,
        ),
        Predictor::Knn(memory) => return Ok(knn_leaf(memory, fit, folds)),
        Predictor::Ensemble(members) => return ensemble(router, members, fit, folds),
    };
    let rows = RowFit { reps: &reps, offsets: &offsets, targets: &fit.targets, layer };
    let mix_lambda = rows.choose(folds, &MIX_LAMBDAS, |train, lambda| rows.mixture(train, lambda))?.0;
    let (lambda, oof) = rows.choose(folds, &LAMBDAS, |train, lambda| rows.refine(train, mix_lambda, lambda))?;
    fit.lambda.get_or_insert(lambda);
    // A factorised or MLP predictor's representation was learned without the new model; a direction of its
    // own over the features is kept where it predicts the eval rows better out of fold.
    if matches!(predictor, Predictor::Mf(_) | Predictor::Mlp { .. }) {
        let widened = super::widen::Widening { rows: &rows, features: &fit.features, mix_lambda, lambda };
        if let Some(found) = widened.fit(folds, &oof)? {
            return Ok(found);
        }
    }
    let all: Vec<usize> = (0..reps.len()).collect();
    let (weight, bias) = rows.refine(&all, mix_lambda, lambda)?;
    Ok((ModelHead::Row { weight, bias }, oof))
}

/// The new model in every member of an ensemble. The parametric members are fitted first; a kNN member's
/// column is then their mean prediction for the new model on each stored prompt (distilled, so the kNN member
/// agrees with what the eval rows taught the others, rather than a coarse average of 50–200 eval prompts),
/// and its out-of-fold predictions are theirs. An ensemble of kNN members alone falls back on
/// [`knn_column`].
fn ensemble(
    router: &Router,
    members: &[Predictor],
    fit: &mut ProfileFit,
    folds: &Folds,
) -> Result<(ModelHead, Vec<f32>), TrainError> {
    let mut heads: Vec<Option<ModelHead>> = vec![None; members.len()];
    let mut oofs: Vec<Option<Vec<f32>>> = vec![None; members.len()];
    let mut parametric: Vec<(usize, Vec<f32>)> = Vec::new();
    for (i, member) in members.iter().enumerate() {
        if !matches!(member, Predictor::Knn(_)) {
            let (head, oof) = leaf(router, member, fit, folds)?;
            parametric.push((i, oof.clone()));
            (heads[i], oofs[i]) = (Some(head), Some(oof));
        }
    }
    let mean_parametric: Option<Vec<f32>> = (!parametric.is_empty()).then(|| {
        let n = parametric.len() as f32;
        (0..fit.targets.len()).map(|r| parametric.iter().map(|(_, o)| o[r]).sum::<f32>() / n).collect()
    });
    for (i, member) in members.iter().enumerate() {
        let Predictor::Knn(memory) = member else { continue };
        let (head, oof) = match &mean_parametric {
            Some(mean) => {
                let fitted: Vec<(&Predictor, &ModelHead)> =
                    parametric.iter().filter_map(|(j, _)| Some((&members[*j], heads[*j].as_ref()?))).collect();
                (distilled_column(router, memory, &fitted), mean.clone())
            }
            None => knn_leaf(memory, fit, folds),
        };
        (heads[i], oofs[i]) = (Some(head), Some(oof));
    }
    let n = members.len().max(1) as f32;
    let mut sum = vec![0f32; fit.targets.len()];
    for oof in oofs.iter().flatten() {
        sum.iter_mut().zip(oof).for_each(|(s, p)| *s += p);
    }
    let heads = heads.into_iter().flatten().collect();
    Ok((ModelHead::Ensemble(heads), sum.into_iter().map(|s| s / n).collect()))
}

/// A kNN column from fitted parametric members: their mean P for the new model on each stored prompt.
fn distilled_column(router: &Router, memory: &KnnMemory, fitted: &[(&Predictor, &ModelHead)]) -> ModelHead {
    let scores: Vec<f32> = memory
        .embeddings
        .chunks_exact(memory.dim.max(1))
        .map(|e| {
            let features = router.heads.features(e);
            let p: Vec<f32> = fitted.iter().filter_map(|(member, head)| row_predict(member, head, &features)).collect();
            (p.iter().sum::<f32>() / p.len().max(1) as f32).clamp(0.0, 1.0)
        })
        .collect();
    let prior = scores.iter().sum::<f32>() / scores.len().max(1) as f32;
    ModelHead::Knn { scores, prior }
}

/// A parametric member's P for the new model from its fitted row, on one prompt's features.
fn row_predict(member: &Predictor, head: &ModelHead, features: &[f32]) -> Option<f32> {
    let (weight, bias, own) = match head {
        ModelHead::Row { weight, bias } => (weight, bias, 0.0),
        ModelHead::Widened { weight, bias, direction } => (weight, bias, switchyard_core::dot(direction, features)),
        _ => return None,
    };
    let (rep, offset) = match member {
        Predictor::Logistic(_) => (features.to_vec(), 0.0),
        Predictor::Mlp { hidden, .. } => (hidden.forward(features).into_iter().map(|v| v.max(0.0)).collect(), 0.0),
        Predictor::Mf(mf) => (mf.project.forward(features), -mf.difficulty.forward(features)[0]),
        Predictor::Irt(irt) => (irt.representation(features), -irt.difficulty.forward(features)[0]),
        _ => return None,
    };
    Some(sigmoid(switchyard_core::dot(weight, &rep) + bias + offset + own))
}

/// [`knn_column`] with out-of-fold predictions: each fold's column is built from the other folds' eval
/// prompts, and a held-out prompt's prediction is the memory's estimate from its stored neighbours.
fn knn_leaf(memory: &KnnMemory, fit: &ProfileFit, folds: &Folds) -> (ModelHead, Vec<f32>) {
    let head = knn_column(memory, &fit.embeddings, &fit.targets);
    let mut oof = vec![0f32; fit.targets.len()];
    let neighbours: Vec<Vec<(f32, usize)>> = fit.embeddings.iter().map(|e| memory.neighbours(e, memory.k)).collect();
    for f in 0..folds.k {
        let (train, held) = folds.split(f);
        let embeddings: Vec<Vec<f32>> = train.iter().map(|&i| fit.embeddings[i].clone()).collect();
        let targets: Vec<(f32, f32)> = train.iter().map(|&i| fit.targets[i]).collect();
        let ModelHead::Knn { scores, prior } = knn_column(memory, &embeddings, &targets) else {
            continue;
        };
        for &i in &held {
            let (mut sum, mut weight) = (0f32, 0f32);
            for &(sim, j) in &neighbours[i] {
                let w = if memory.power == 0.0 { 1.0 } else { sim.max(0.0).powf(memory.power) };
                sum += w * scores[j];
                weight += w;
            }
            oof[i] = (sum + memory.alpha * prior) / (weight + memory.alpha);
        }
    }
    (head, oof)
}

/// A new output row for a prior-only model: the existing models' mean row (its estimates are its priors
/// anyway, since it has no evidence), or a kNN column at the priors' mean.
pub(super) fn prior_only_head(router: &Router, priors: &[(String, f64)]) -> ModelHead {
    let mean = priors.iter().map(|(_, p)| *p as f32).sum::<f32>() / priors.len().max(1) as f32;
    fn head(predictor: &Predictor, mean: f32) -> ModelHead {
        let row = |layer: &Dense| {
            let (weight, bias) = mean_row(layer);
            ModelHead::Row { weight, bias }
        };
        match predictor {
            Predictor::Logistic(layer) => row(layer),
            Predictor::Mlp { output, .. } => row(output),
            Predictor::Mf(mf) => row(&mf.models),
            Predictor::Irt(irt) => row(&irt.models),
            Predictor::Knn(memory) => ModelHead::Knn { scores: vec![mean; memory.len()], prior: mean },
            Predictor::Ensemble(members) => ModelHead::Ensemble(members.iter().map(|m| head(m, mean)).collect()),
        }
    }
    head(&router.predictor, mean.clamp(0.0, 1.0))
}

/// The mean of a layer's rows and biases.
pub(super) fn mean_row(layer: &Dense) -> (Vec<f32>, f32) {
    let n = layer.outputs.max(1) as f32;
    let mut weight = vec![0f32; layer.inputs];
    for row in layer.weight.chunks_exact(layer.inputs.max(1)) {
        weight.iter_mut().zip(row).for_each(|(w, r)| *w += r / n);
    }
    (weight, layer.bias.iter().sum::<f32>() / n)
}

/// The new model's kNN column: for each stored prompt, its k nearest eval prompts' scores (weighted by
/// similarity as the memory weighs its neighbours), shrunk toward the eval mean with the memory's prior
/// strength.
fn knn_column(memory: &KnnMemory, embeddings: &[Vec<f32>], targets: &[(f32, f32)]) -> ModelHead {
    let prior = weighted_mean(targets.iter().copied()).clamp(0.0, 1.0);
    let k = memory.k.min(embeddings.len()).max(1);
    let scores = memory
        .embeddings
        .chunks_exact(memory.dim.max(1))
        .map(|stored| {
            let mut sims: Vec<(f32, usize)> =
                embeddings.iter().enumerate().map(|(i, e)| (switchyard_core::dot(e, stored), i)).collect();
            sims.sort_by(|a, b| b.0.total_cmp(&a.0));
            let (mut sum, mut weight) = (0f32, 0f32);
            for &(sim, i) in sims.iter().take(k) {
                let w = if memory.power == 0.0 { 1.0 } else { sim.max(0.0).powf(memory.power) };
                sum += w * targets[i].0;
                weight += w;
            }
            ((sum + memory.alpha * prior) / (weight + memory.alpha)).clamp(0.0, 1.0)
        })
        .collect();
    ModelHead::Knn { scores, prior }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_knn_column_is_the_nearest_eval_prompts_rate() {
        let memory = KnnMemory {
            dim: 2,
            embeddings: vec![1., 0., 0., 1.],
            scores: vec![0.5, 0.5],
            prior: vec![0.5],
            k: 2,
            alpha: 1.0,
            power: 0.0,
        };
        // Eval prompts near (1, 0) succeed, near (0, 1) fail.
        let embeddings = vec![vec![1., 0.], vec![0.9, 0.1], vec![0., 1.], vec![0.1, 0.9]];
        let targets = vec![(1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (0.0, 1.0)];
        let ModelHead::Knn { scores, prior } = knn_column(&memory, &embeddings, &targets) else { panic!() };
        assert!((prior - 0.5).abs() < 1e-6);
        assert!((scores[0] - 2.5 / 3.0).abs() < 1e-5 && (scores[1] - 0.5 / 3.0).abs() < 1e-5, "{scores:?}");
    }
}
