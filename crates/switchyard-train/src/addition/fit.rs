//! The fits behind [`super::fit_profile`]: a predictor row per leaf (penalised toward the existing models'
//! mean row, the penalty chosen by grouped cross-validation), a kNN column by per-region accuracy, the
//! per-domain priors by a difficulty-adjusted Bernoulli fit, and the output-length row.

use ndarray::Array2;
use switchyard_core::{logit, sigmoid, Dense, KnnMemory, ModelHead, Platt, Predictor, Router};

use super::EvalRows;
use crate::folds::Folds;
use crate::lbfgs::Lbfgs;
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
    let ModelHead::Row { weight, bias } = head else { return None };
    let (rep, offset) = match member {
        Predictor::Logistic(_) => (features.to_vec(), 0.0),
        Predictor::Mlp { hidden, .. } => (hidden.forward(features).into_iter().map(|v| v.max(0.0)).collect(), 0.0),
        Predictor::Mf(mf) => (mf.project.forward(features), -mf.difficulty.forward(features)[0]),
        Predictor::Irt(irt) => (irt.representation(features), -irt.difficulty.forward(features)[0]),
        _ => return None,
    };
    Some(sigmoid(switchyard_core::dot(weight, &rep) + bias + offset))
}

/// Fitting the new model's row of one layer, in two stages:
/// 1. a mixture of the existing models: logit = Σ_j c_j·z_j(x) + b + o(x), where z_j is model j's logit from
///    this layer, c penalised toward equal weights (the mean row): a handful of parameters, which 50 prompts
///    can pin down, saying which existing models the new one resembles;
/// 2. the full row, penalised toward that mixture's row Σ_j c_j·w_j, so the eval rows can move it where they
///    have something to say.
///
/// Each stage's penalty is chosen by grouped cross-validation (stage 1 refitted inside every fold of stage 2).
struct RowFit<'a> {
    reps: &'a [Vec<f32>],
    offsets: &'a [f32],
    targets: &'a [(f32, f32)],
    layer: &'a Dense,
}

impl RowFit<'_> {
    /// Stage 1 on `rows`: the mixture's row (weights, bias).
    fn mixture(&self, rows: &[usize], lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let logits: Vec<Vec<f32>> = self.reps.iter().map(|r| self.layer.forward(r)).collect();
        let k = self.layer.outputs.max(1);
        let equal = vec![1.0 / k as f32; k];
        let problem = RowProblem { reps: &logits, offsets: self.offsets, targets: self.targets, centre: &equal };
        let (c, b) = problem.fit(rows, lambda)?;
        let mut weight = vec![0f32; self.layer.inputs];
        for (row, cj) in self.layer.weight.chunks_exact(self.layer.inputs.max(1)).zip(&c) {
            weight.iter_mut().zip(row).for_each(|(w, r)| *w += cj * r);
        }
        let bias = b + c.iter().zip(&self.layer.bias).map(|(cj, bj)| cj * bj).sum::<f32>();
        Ok((weight, bias))
    }

    /// Stage 2 on `rows`: the full row, penalised by `lambda` toward the stage-1 row (fitted on the same rows).
    fn refine(&self, rows: &[usize], mix_lambda: f64, lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
        let (centre, _) = self.mixture(rows, mix_lambda)?;
        RowProblem { reps: self.reps, offsets: self.offsets, targets: self.targets, centre: &centre }.fit(rows, lambda)
    }

    /// The penalty of `lambdas` whose fits (by `fit` on the training folds) score the best out-of-fold log
    /// loss, with those out-of-fold predictions.
    fn choose(
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

/// One logistic row over fixed representations: P_i = σ(w·r_i + b + o_i), fitted on soft targets weighted
/// by rows, with λ/2·|w − centre|² added to the weighted mean loss.
struct RowProblem<'a> {
    reps: &'a [Vec<f32>],
    offsets: &'a [f32],
    targets: &'a [(f32, f32)],
    centre: &'a [f32],
}

impl RowProblem<'_> {
    fn fit(&self, rows: &[usize], lambda: f64) -> Result<(Vec<f32>, f32), TrainError> {
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
fn weighted_log_loss(pairs: &[(f32, (f32, f32))]) -> f64 {
    let (mut sum, mut n) = (0f64, 0f64);
    for &(p, (y, c)) in pairs {
        let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
        let y = f64::from(y);
        sum += f64::from(c) * -(y * p.ln() + (1.0 - y) * (1.0 - p).ln());
        n += f64::from(c);
    }
    sum / n.max(1e-9)
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
        let problem = RowProblem { reps: &reps, offsets: &offsets, targets: &targets, centre: &centre };
        let all: Vec<usize> = (0..reps.len()).collect();
        let (w, b) = problem.fit(&all, 1e-5).unwrap();
        assert!((w[0] - 2.0).abs() < 0.4 && (w[1] + 3.0).abs() < 0.5 && (b - 0.5).abs() < 0.3, "{w:?} {b}");
        let centre = [1.0, 1.0];
        let heavy = RowProblem { centre: &centre, ..problem };
        let (w, _) = heavy.fit(&all, 1e3).unwrap();
        assert!(w.iter().all(|v| (v - 1.0).abs() < 0.01), "{w:?}");
    }

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
