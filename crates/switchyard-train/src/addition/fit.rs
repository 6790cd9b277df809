//! The fits behind [`super::fit_profile`]: a predictor row per leaf (penalised toward the existing models'
//! mean row, the penalty chosen by grouped cross-validation), a kNN column by per-region accuracy, the
//! per-domain priors by a difficulty-adjusted Bernoulli fit, and the output-length row.

use ndarray::Array2;
use switchyard_core::{logit, sigmoid, Dense, KnnMemory, ModelCost, ModelHead, Predictor, Router};

use super::{EvalRows, ProfileRequest};
use crate::folds::Folds;
use crate::lbfgs::Lbfgs;
use crate::TrainError;

/// Penalties tried, as λ/2·|w − w̄|² on the mean loss.
const LAMBDAS: [f64; 5] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0];
/// Cross-validation folds over the eval prompts.
const FOLDS: usize = 5;
/// Pseudo-observations pulling a domain's prior toward the model's overall rate (as training's priors are).
const PRIOR_STRENGTH: f64 = 10.0;

/// What fitting measured and the per-prompt inputs the priors and lengths reuse.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFit {
    /// Cross-validated log loss of the chosen predictor row on the eval prompts (logistic, MLP or MF leaf).
    pub cv_log_loss: Option<f64>,
    /// The same for the eval set's mean on the same folds.
    pub constant_log_loss: Option<f64>,
    /// The penalty chosen.
    pub lambda: Option<f64>,
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
        .map(|(i, p)| (i, p.output_tokens.iter().map(|t| t.max(0.0).ln_1p()).sum::<f32>() / p.output_tokens.len() as f32))
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
    let head = leaf(&router.predictor, &mut fit, &folds)?;
    Ok((head, fit))
}

fn leaf(predictor: &Predictor, fit: &mut ProfileFit, folds: &Folds) -> Result<ModelHead, TrainError> {
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
        Predictor::Knn(memory) => return Ok(knn_column(memory, &fit.embeddings, &fit.targets)),
        Predictor::Ensemble(members) => {
            return members.iter().map(|m| leaf(m, fit, folds)).collect::<Result<_, _>>().map(ModelHead::Ensemble)
        }
    };
    let centre = mean_row(layer);
    let problem = RowProblem { reps: &reps, offsets: &offsets, targets: &fit.targets, centre: &centre.0 };
    // Grouped cross-validation over the penalties; the constant (the training folds' mean) on the same folds.
    let mut best: Option<(f64, f64)> = None;
    let mut constant = Vec::new();
    for &lambda in &LAMBDAS {
        let mut pairs = Vec::new();
        for f in 0..folds.k {
            let (train, held) = folds.split(f);
            let (w, b) = problem.fit(&train, lambda)?;
            for &i in &held {
                pairs.push((problem.predict(&w, b, i), fit.targets[i]));
            }
            if lambda == LAMBDAS[0] {
                let mean = weighted_mean(train.iter().map(|&i| fit.targets[i]));
                constant.extend(held.iter().map(|&i| (mean, fit.targets[i])));
            }
        }
        let loss = weighted_log_loss(&pairs);
        if best.is_none_or(|(_, l)| loss < l) {
            best = Some((lambda, loss));
        }
    }
    let (lambda, loss) = best.unwrap_or((LAMBDAS[LAMBDAS.len() - 1], f64::NAN));
    if fit.lambda.is_none() {
        fit.lambda = Some(lambda);
        fit.cv_log_loss = Some(loss);
        fit.constant_log_loss = Some(weighted_log_loss(&constant));
    }
    let all: Vec<usize> = (0..reps.len()).collect();
    let (weight, bias) = problem.fit(&all, lambda)?;
    Ok(ModelHead::Row { weight, bias })
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
            Predictor::Knn(memory) => ModelHead::Knn { scores: vec![mean; memory.len()], prior: mean },
            Predictor::Ensemble(members) => ModelHead::Ensemble(members.iter().map(|m| head(m, mean)).collect()),
        }
    }
    head(&router.predictor, mean.clamp(0.0, 1.0))
}

/// The mean of a layer's rows and biases.
fn mean_row(layer: &Dense) -> (Vec<f32>, f32) {
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

    fn predict(&self, w: &[f32], b: f32, i: usize) -> f32 {
        sigmoid(self.z(w, b, i) as f32)
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
fn weighted_mean(targets: impl Iterator<Item = (f32, f32)>) -> f32 {
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

/// The new model's prior P(success) and evidence per familiarity column. From eval rows: per domain, the
/// logit θ_d that best explains the model's outcomes there once each prompt's difficulty (the router's shared
/// difficulty slope times its complexity above the domain's typical one) is taken into account, pulled toward
/// the model's overall rate by [`PRIOR_STRENGTH`] pseudo-observations; evidence is the rows per domain
/// (weighted by domain membership). Published priors replace the fitted ones for the domains they name
/// ("all": every domain); a prior-only model's other domains get the mean of the given figures.
pub(super) fn priors_and_evidence(
    router: &Router,
    request: &ProfileRequest<'_>,
    fit: &ProfileFit,
) -> Result<(Vec<f32>, Vec<f32>), TrainError> {
    let Some(f) = &router.familiarity else {
        return Ok((Vec::new(), Vec::new()));
    };
    if request.eval.is_none() && f.evidence.is_empty() {
        return Err(TrainError::Profile(
            "this router records no per-domain evidence, so a prior-only model's estimates could not lean on its \
             prior; add the model from eval rows, or retrain the router with this version"
                .into(),
        ));
    }
    let width = f.domains;
    let domains = &router.manifest.domains;
    let mut priors = vec![f32::NAN; width];
    let mut evidence = vec![0f32; width];
    if request.eval.is_some() {
        // Domain membership: the label when the router knows it, else the domain head's probabilities.
        let membership: Vec<Vec<f32>> = fit
            .embeddings
            .iter()
            .zip(&fit.labels)
            .map(|(e, label)| {
                if width == 1 || domains.len() != width {
                    return vec![1.0; width];
                }
                match label.as_ref().and_then(|l| domains.iter().position(|d| d == l)) {
                    Some(d) => (0..width).map(|c| f32::from(u8::from(c == d))).collect(),
                    None => router.heads.domain_probs(e),
                }
            })
            .collect();
        let shift: Vec<f32> = fit
            .embeddings
            .iter()
            .zip(&membership)
            .map(|(e, m)| {
                let complexity = f.place(e, router.heads.complexity(e)).complexity;
                f.difficulty_slope * (complexity - f.typical_complexity(m))
            })
            .collect();
        let all: Vec<f64> = vec![1.0; fit.targets.len()];
        let overall = bernoulli_logit(&fit.targets, &all, &shift, None);
        for d in 0..width {
            let weights: Vec<f64> = membership.iter().map(|m| f64::from(m[d])).collect();
            evidence[d] = weights.iter().zip(&fit.targets).map(|(w, t)| *w as f32 * t.1).sum();
            priors[d] = sigmoid(bernoulli_logit(&fit.targets, &weights, &shift, Some(overall)) as f32).clamp(0.02, 0.98);
        }
    }
    let given = |d: usize| -> Option<f64> {
        let name = domains.get(d).map_or("all", String::as_str);
        let exact = request.priors.iter().find(|(n, _)| n == name);
        exact.or_else(|| request.priors.iter().find(|(n, _)| n == "all")).map(|(_, p)| *p)
    };
    let mean_given = request.priors.iter().map(|(_, p)| *p).sum::<f64>() / request.priors.len().max(1) as f64;
    for (d, prior) in priors.iter_mut().enumerate() {
        if let Some(p) = given(d) {
            *prior = p as f32;
        } else if prior.is_nan() {
            *prior = mean_given as f32;
        }
    }
    Ok((priors, evidence))
}

/// The logit θ maximising Σ_i w_i·c_i·[y_i(θ + s_i) − softplus(θ + s_i)] (c_i: rows, s_i: the prompt's
/// difficulty shift), plus, with `toward`, [`PRIOR_STRENGTH`] pseudo-rows at σ(toward); by Newton's method.
fn bernoulli_logit(targets: &[(f32, f32)], weights: &[f64], shift: &[f32], toward: Option<f64>) -> f64 {
    let mut theta = toward.unwrap_or(0.0);
    for _ in 0..50 {
        let (mut grad, mut hess) = (0f64, 1e-9);
        for ((&(y, c), &w), &s) in targets.iter().zip(weights).zip(shift) {
            let p = 1.0 / (1.0 + (-(theta + f64::from(s))).exp());
            let n = w * f64::from(c);
            grad += n * (f64::from(y) - p);
            hess += n * p * (1.0 - p);
        }
        if let Some(t) = toward {
            let p = 1.0 / (1.0 + (-theta).exp());
            grad += PRIOR_STRENGTH * (1.0 / (1.0 + (-t).exp()) - p);
            hess += PRIOR_STRENGTH * p * (1.0 - p);
        }
        let step = (grad / hess).clamp(-2.0, 2.0);
        theta = (theta + step).clamp(-8.0, 8.0);
        if step.abs() < 1e-7 {
            break;
        }
    }
    theta
}

/// The new model's output-length row: the existing rows' mean, shifted so that its mean over the eval
/// prompts matches their mean ln(1 + output tokens) (or the model's mean output length without counts).
pub(super) fn length_row(layer: &Dense, fit: &ProfileFit, cost: &ModelCost) -> (Vec<f32>, f32) {
    let (weight, bias) = mean_row(layer);
    let predicted = |i: usize| switchyard_core::dot(&weight, &fit.features[i]) + bias;
    if !fit.log_tokens.is_empty() {
        let n = fit.log_tokens.len() as f32;
        let shift = fit.log_tokens.iter().map(|&(i, t)| t - predicted(i)).sum::<f32>() / n;
        return (weight, bias + shift);
    }
    let target = (cost.mean_output_tokens.max(0.0) as f32).ln_1p();
    if fit.features.is_empty() {
        return (vec![0.0; layer.inputs], target);
    }
    let n = fit.features.len() as f32;
    let shift = (0..fit.features.len()).map(|i| target - predicted(i)).sum::<f32>() / n;
    (weight, bias + shift)
}
