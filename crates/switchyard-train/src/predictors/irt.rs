//! Multidimensional item response theory fitted over every source at once, so that every model lands on one
//! scale (the shape of IRT-Router's MIRT-BERT; [`switchyard_core::ItemResponse`] holds the formula).
//!
//! Logs stitched from several sources have different models answering prompts of different difficulty. A
//! predictor with an independent output per model judges each model on the prompts it happened to see: a
//! model logged only on easy prompts looks strong. Here each prompt gets one difficulty (and discrimination)
//! shared by every model that answered it, so the sources are linked through the models and prompts they
//! share, and each model's ability is measured against the difficulty of what it answered:
//!
//! - a per-source offset, added to every logit of a source's prompts, absorbs different grading of the
//!   same prompts (it is left out at prediction time: traffic has no source);
//! - a model's ability is its general ability plus a deviation per skill, the deviations shrunk toward zero
//!   far harder than the prompt-side weights: where a model has no evidence in a skill, it keeps its general
//!   ability relative to the others, instead of an extrapolation;
//! - published aggregate accuracies (`--profiles`) are soft constraints on the abilities: the benchmark is
//!   one more "item" per model, whose skill mix is that of the training prompts in the benchmark's domains,
//!   with its own fitted discrimination and difficulty, observed as [`AGGREGATE_WEIGHT`] answers at the
//!   published accuracy. Models with thousands of items barely move; models with none in those skills are
//!   placed by it.

use candle_core::{Device, Tensor, D};
use ndarray::Array2;
use switchyard_core::{logit, Dense, ItemResponse, Predictor};

use super::loss::{soft_bce_elements, squared, tensor, uniform, ObservedLoss, Params};
use crate::lbfgs::Lbfgs;
use crate::targets::Targets;
use crate::TrainError;

/// Pseudo-observations one published aggregate accuracy counts as, per model.
pub const AGGREGATE_WEIGHT: f64 = 200.0;
/// Penalty on the general abilities, the source offsets and the aggregates' links.
const SMALL_PENALTY: f64 = 1e-4;
/// Penalty on the source offsets: offsets that the data does not identify stay at 0.
const SOURCE_PENALTY: f64 = 1e-3;
/// softplus⁻¹(1): the discrimination's and the aggregate links' starting point.
const SOFTPLUS_INV_ONE: f32 = 0.541_324_85;

/// One IRT setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IrtConfig {
    /// Number of skills K.
    pub skills: usize,
    /// L2 penalty on the prompt-side weights (skill mix, discrimination, difficulty).
    pub lambda: f64,
    /// L2 penalty on the models' skill deviations: how hard a model is held to its general ability where
    /// its own evidence is thin.
    pub deviation: f64,
}

/// A published aggregate accuracy per model, tied to the training prompts of the benchmark's domains.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The benchmark's name (for logs).
    pub name: String,
    /// Per prompt, how much it belongs to the benchmark's domains (0 to 1).
    pub anchor: Vec<f32>,
    /// (model, accuracy as a fraction) for the models that have one.
    pub scores: Vec<(usize, f32)>,
}

/// What links the item-level fit across sources and to published aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Linking {
    /// Per prompt, the index of its source; empty: one source.
    pub sources: Vec<u32>,
    /// Number of sources (at least 1).
    pub source_count: usize,
    /// Published aggregate accuracies.
    pub aggregates: Vec<Aggregate>,
}

impl Linking {
    /// The same linking for some prompts, in that order.
    pub fn rows(&self, idx: &[usize]) -> Self {
        let pick = |values: &[u32]| idx.iter().map(|&r| values.get(r).copied().unwrap_or(0)).collect();
        Self {
            sources: if self.sources.is_empty() { Vec::new() } else { pick(&self.sources) },
            source_count: self.source_count,
            aggregates: self
                .aggregates
                .iter()
                .map(|a| Aggregate {
                    anchor: idx.iter().map(|&r| a.anchor.get(r).copied().unwrap_or(0.0)).collect(),
                    ..a.clone()
                })
                .collect(),
        }
    }
}

/// Stable softplus of a tensor: max(z, 0) + ln(1 + e^−|z|).
fn softplus(z: &Tensor) -> candle_core::Result<Tensor> {
    z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// Row-wise softmax.
fn softmax_rows(z: &Tensor) -> candle_core::Result<Tensor> {
    let e = z.broadcast_sub(&z.max_keepdim(D::Minus1)?.detach())?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// The aggregates as tensors: anchor weights normalised per benchmark `[A, prompts]`, the accuracies and a
/// mask `[A, models]`. `None` when no benchmark has anchors and scores.
fn aggregate_tensors(
    aggregates: &[Aggregate],
    prompts: usize,
    models: usize,
    device: &Device,
) -> Result<Option<(Tensor, Tensor, Tensor)>, TrainError> {
    let usable: Vec<&Aggregate> = aggregates
        .iter()
        .filter(|a| a.anchor.len() == prompts && a.anchor.iter().sum::<f32>() > 0.0 && !a.scores.is_empty())
        .collect();
    if usable.is_empty() {
        return Ok(None);
    }
    let n = usable.len();
    let mut anchor = Vec::with_capacity(n * prompts);
    let (mut value, mut mask) = (vec![0f32; n * models], vec![0f32; n * models]);
    for (j, a) in usable.iter().enumerate() {
        let total: f32 = a.anchor.iter().sum();
        anchor.extend(a.anchor.iter().map(|w| w / total));
        for &(m, r) in a.scores.iter().filter(|(m, _)| *m < models) {
            value[j * models + m] = r.clamp(0.01, 0.99);
            mask[j * models + m] = 1.0;
        }
    }
    Ok(Some((
        Tensor::from_vec(anchor, (n, prompts), device)?,
        Tensor::from_vec(value, (n, models), device)?,
        Tensor::from_vec(mask, (n, models), device)?,
    )))
}

/// The tensors the IRT loss reads, prepared once per fit.
struct Problem {
    x: Tensor,
    observed: ObservedLoss,
    /// Per prompt, its source index (absent with one source).
    source_of: Option<Tensor>,
    /// Anchor weights, accuracies and mask of the published aggregates.
    aggregates: Option<(Tensor, Tensor, Tensor)>,
    /// AGGREGATE_WEIGHT over the observations (the outcome loss is a mean).
    aggregate_scale: f64,
}

/// The variables, in order: skill-mix weights and bias, discrimination weights and bias, difficulty weights
/// and bias, the models' skill deviations and general abilities, the source offsets, and each aggregate's
/// link (discrimination before the softplus, difficulty).
const SKILLS_W: usize = 0;
const SKILLS_B: usize = 1;
const DISC_W: usize = 2;
const DISC_B: usize = 3;
const DIFF_W: usize = 4;
const DIFF_B: usize = 5;
const DEVIATIONS: usize = 6;
const GENERAL: usize = 7;
const OFFSETS: usize = 8;
const LINK_DISC: usize = 9;
const LINK_DIFF: usize = 10;

impl Problem {
    /// The penalised loss at the variables `v`.
    fn loss(&self, v: &[candle_core::Var], config: IrtConfig) -> candle_core::Result<Tensor> {
        let x = &self.x;
        let pi = softmax_rows(&x.matmul(&v[SKILLS_W].t()?)?.broadcast_add(&v[SKILLS_B])?)?;
        let alpha = softplus(&x.matmul(&v[DISC_W].t()?)?.broadcast_add(&v[DISC_B])?)?;
        let difficulty = x.matmul(&v[DIFF_W].t()?)?.broadcast_add(&v[DIFF_B])?;
        let theta = pi.matmul(&v[DEVIATIONS].t()?)?.broadcast_add(&v[GENERAL])?;
        let mut logits = theta.broadcast_mul(&alpha)?.broadcast_sub(&difficulty)?;
        if let Some(src) = &self.source_of {
            logits = logits.broadcast_add(&v[OFFSETS].index_select(src, 0)?.unsqueeze(1)?)?;
        }
        let prompt_side = ((squared(&v[SKILLS_W])? + squared(&v[DISC_W])?)? + squared(&v[DIFF_W])?)?;
        let small =
            ((squared(&v[GENERAL])? + squared(&v[SKILLS_B])?)? + (squared(&v[LINK_DISC])? + squared(&v[LINK_DIFF])?)?)?;
        // The scale of α against the abilities is left to the penalties: α may grow where the abilities'
        // spread must, so the deviations' penalty binds relative to the general abilities, not in absolute
        // units. (Holding the mean α at 1 was tried: the abilities then spread four times wider, o1-mini's
        // math-only lead grew, and unseen easy everyday prompts went to the dearest models; see README.)
        let penalty = ((prompt_side.affine(config.lambda / 2.0, 0.0)?
            + squared(&v[DEVIATIONS])?.affine(config.deviation / 2.0, 0.0)?)?
            + (small.affine(SMALL_PENALTY / 2.0, 0.0)? + squared(&v[OFFSETS])?.affine(SOURCE_PENALTY / 2.0, 0.0)?)?)?;
        let mut loss = (self.observed.loss(&logits)? + penalty)?;
        if let Some((anchor, value, mask)) = &self.aggregates {
            // The benchmark's skill mix is that of its anchor prompts, as the item-level data shaped it: the
            // aggregate moves the models' abilities, not the prompts' skills.
            let mix = anchor.matmul(&pi.detach())?;
            let ability = mix.matmul(&v[DEVIATIONS].t()?)?.broadcast_add(&v[GENERAL])?;
            let z = ability.broadcast_mul(&softplus(&v[LINK_DISC])?)?.broadcast_sub(&v[LINK_DIFF])?;
            let bce = soft_bce_elements(&z, value)?.mul(mask)?.sum_all()?;
            loss = (loss + bce.affine(self.aggregate_scale, 0.0)?)?;
        }
        Ok(loss)
    }
}

/// The number of sources (at least 1), once every prompt's source index is checked against it.
fn check_sources(linking: &Linking, n: usize) -> Result<usize, TrainError> {
    let sources = linking.source_count.max(1);
    if !linking.sources.is_empty() && linking.sources.len() != n {
        return Err(TrainError::Fit(format!("{} source indices for {n} prompts", linking.sources.len())));
    }
    if linking.sources.iter().any(|&s| s as usize >= sources) {
        return Err(TrainError::Fit(format!("a source index is not below the {sources} sources")));
    }
    Ok(sources)
}

/// Fits the IRT predictor on soft targets and pairwise rows, with the sources and aggregates of `linking`
/// (one entry per row of `features`, or none).
pub fn fit_irt(
    features: &Array2<f32>,
    targets: &Targets,
    linking: &Linking,
    config: IrtConfig,
    seed: u64,
) -> Result<Predictor, TrainError> {
    let device = Device::Cpu;
    let (n, nf) = features.dim();
    let models = targets.models();
    let k = config.skills.max(1);
    let sources = check_sources(linking, n)?;
    let observations = (f64::from(targets.weight.sum()) + targets.pairs.len() as f64).max(1e-6);
    let problem = Problem {
        x: tensor(features, &device)?,
        observed: ObservedLoss::new(targets, &device)?,
        source_of: (sources > 1 && !linking.sources.is_empty())
            .then(|| Tensor::from_vec(linking.sources.clone(), n, &device))
            .transpose()?,
        aggregates: aggregate_tensors(&linking.aggregates, n, models, &device)?,
        aggregate_scale: AGGREGATE_WEIGHT / observations,
    };
    let benchmarks = problem.aggregates.as_ref().map_or(0, |(a, _, _)| a.dims()[0]).max(1);
    let general: Vec<f32> = targets.model_means().into_iter().map(logit).collect();
    let mut rng = seed.max(1);
    let params = Params::new(
        vec![
            uniform(&[k, nf], 3.0 / (nf.max(1) as f64).sqrt(), &mut rng),
            (vec![0.0; k], vec![k]),
            (vec![0.0; nf], vec![1, nf]),
            (vec![SOFTPLUS_INV_ONE], vec![1]),
            (vec![0.0; nf], vec![1, nf]),
            (vec![0.0], vec![1]),
            (vec![0.0; models * k], vec![models, k]),
            (general, vec![models]),
            (vec![0.0; sources], vec![sources]),
            (vec![SOFTPLUS_INV_ONE; benchmarks], vec![benchmarks, 1]),
            (vec![0.0; benchmarks], vec![benchmarks, 1]),
        ],
        &device,
    )?;
    let options = Lbfgs { max_iter: 300, tolerance: 1e-7, ..Lbfgs::default() };
    params.minimize(options, |v| problem.loss(v, config))?;
    let values = |i: usize| -> Result<Vec<f32>, TrainError> { Ok(params.vars[i].flatten_all()?.to_vec1::<f32>()?) };
    if sources > 1 {
        tracing::debug!("IRT source offsets (logit): {:?}", values(OFFSETS)?);
    }
    // A pass over every prompt for a log line: only when it is printed (a fit runs once per fold and setting).
    if let Some((anchor, value, _)) = problem.aggregates.as_ref().filter(|_| tracing::enabled!(tracing::Level::DEBUG)) {
        let pi = softmax_rows(&problem.x.matmul(&params.vars[SKILLS_W].t()?)?.broadcast_add(&params.vars[SKILLS_B])?)?;
        let ability =
            anchor.matmul(&pi)?.matmul(&params.vars[DEVIATIONS].t()?)?.broadcast_add(&params.vars[GENERAL])?;
        let z = ability.broadcast_mul(&softplus(&params.vars[LINK_DISC])?)?.broadcast_sub(&params.vars[LINK_DIFF])?;
        tracing::debug!(
            "IRT aggregates: published {:?}, fitted {:?}",
            value.to_vec2::<f32>()?,
            (z.neg()?.exp()? + 1.0)?.recip()?.to_vec2::<f32>()?
        );
    }
    let (deviations, general) = (values(DEVIATIONS)?, values(GENERAL)?);
    let mut rows = Vec::with_capacity(models * (k + 1));
    for m in 0..models {
        rows.extend_from_slice(&deviations[m * k..(m + 1) * k]);
        rows.push(general[m]);
    }
    let layer = |outputs: usize, inputs: usize, weight: Vec<f32>, bias: Vec<f32>| {
        Dense::new(outputs, inputs, weight, bias)
            .ok_or_else(|| TrainError::Fit("an IRT layer has the wrong shape".into()))
    };
    Ok(Predictor::Irt(ItemResponse {
        skills: layer(k, nf, values(SKILLS_W)?, values(SKILLS_B)?)?,
        discrimination: layer(1, nf, values(DISC_W)?, values(DISC_B)?)?,
        difficulty: layer(1, nf, values(DIFF_W)?, values(DIFF_B)?)?,
        models: layer(models, k + 1, rows, vec![0.0; models])?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predictors::predict_rows;

    /// Deterministic uniforms in [0, 1).
    fn uniforms(seed: u64) -> impl FnMut() -> f32 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f32 / (1u64 << 53) as f32
        }
    }

    /// Two sources linked by a bridging model. Items have a difficulty readable from their features (feature
    /// 0); source "easy" holds items of difficulty around −1.5, source "hard" around +1.5. Model A (true
    /// ability 0.5) answered only easy items, model B (true ability 1.5, stronger) only hard ones, and model
    /// C (ability 1.0) answered both. Per source, A's success rate (about 0.87) is far above B's (about
    /// 0.5); the joint fit must rank B above A.
    fn linked_sources() -> (Array2<f32>, Targets, Linking, [f32; 3]) {
        let mut next = uniforms(0x5eed);
        let n = 600;
        let ability = [0.5f32, 1.5, 1.0];
        let mut x = Array2::<f32>::zeros((n, 3));
        let mut value = Array2::<f32>::zeros((n, 3));
        let mut weight = Array2::<f32>::zeros((n, 3));
        let mut sources = Vec::with_capacity(n);
        for r in 0..n {
            let hard = r % 2 == 1;
            let difficulty = if hard { 1.5 } else { -1.5 } + (next() - 0.5) * 2.0;
            x[[r, 0]] = difficulty / 2.0;
            x[[r, 1]] = next() - 0.5;
            x[[r, 2]] = 1.0;
            sources.push(u32::from(hard));
            let answered: [usize; 2] = if hard { [1, 2] } else { [0, 2] };
            for m in answered {
                let p = 1.0 / (1.0 + (-(ability[m] - difficulty)).exp());
                value[[r, m]] = f32::from(u8::from(next() < p));
                weight[[r, m]] = 1.0;
            }
        }
        let linking = Linking { sources, source_count: 2, aggregates: Vec::new() };
        (x, Targets { value, weight, pairs: Vec::new() }, linking, ability)
    }

    #[test]
    fn the_joint_fit_ranks_models_seen_on_different_sources_by_true_ability() {
        let (x, targets, linking, ability) = linked_sources();
        let rate = |m: usize| {
            let (mut s, mut w) = (0.0, 0.0);
            for r in 0..x.nrows() {
                s += targets.value[[r, m]] * targets.weight[[r, m]];
                w += targets.weight[[r, m]];
            }
            s / w
        };
        // What per-source success rates say: A (0) far above B (1), the wrong way round.
        assert!(rate(0) > rate(1) + 0.2, "A {} B {}", rate(0), rate(1));
        assert!(ability[1] > ability[0]);
        let config = IrtConfig { skills: 2, lambda: 1e-4, deviation: 1e-3 };
        let predictor = fit_irt(&x, &targets, &linking, config, 3).unwrap();
        let p = predict_rows(&predictor, &x, &x);
        // On every prompt, of either source, B is ahead of A, and C sits between them.
        for r in 0..x.nrows() {
            assert!(p[[r, 1]] > p[[r, 0]], "prompt {r}: {:?}", p.row(r));
        }
        let mean = |m: usize| p.column(m).mean().unwrap_or(0.0);
        assert!(mean(1) > mean(2) && mean(2) > mean(0), "{} {} {}", mean(0), mean(1), mean(2));
        // Harder prompts (feature 0) get lower P for every model.
        let (easy, hard) =
            (x.column(0).iter().position(|&v| v < -0.9).unwrap(), x.column(0).iter().position(|&v| v > 0.9).unwrap());
        assert!((0..3).all(|m| p[[easy, m]] > p[[hard, m]]), "{:?} {:?}", p.row(easy), p.row(hard));
    }

    #[test]
    fn an_aggregate_places_a_model_without_items_in_a_skill() {
        // Skill 1 prompts (feature 1 = 1) answered by models 0 and 1 only; model 2 has items on skill 0 alone,
        // where it matches model 0, and a published accuracy on a skill-1 benchmark far above model 0's.
        let mut next = uniforms(0xa99);
        let n = 400;
        let mut x = Array2::<f32>::zeros((n, 3));
        let (mut value, mut weight) = (Array2::<f32>::zeros((n, 3)), Array2::<f32>::zeros((n, 3)));
        let mut anchor = vec![0f32; n];
        let ability = [[0.0f32, -0.5], [0.0, 1.5], [0.0, 2.0]];
        for r in 0..n {
            let skill = r % 2;
            x[[r, skill]] = 1.0;
            x[[r, 2]] = next() - 0.5;
            anchor[r] = skill as f32;
            for m in 0..3 {
                if m == 2 && skill == 1 {
                    continue;
                }
                let p = 1.0 / (1.0 + (-ability[m][skill]).exp());
                value[[r, m]] = f32::from(u8::from(next() < p));
                weight[[r, m]] = 1.0;
            }
        }
        let targets = Targets { value, weight, pairs: Vec::new() };
        let anchor_copy = anchor.clone();
        let aggregate = Aggregate { name: "bench".into(), anchor, scores: vec![(0, 0.38), (1, 0.82), (2, 0.88)] };
        let config = IrtConfig { skills: 2, lambda: 1e-4, deviation: 1e-3 };
        let without = fit_irt(&x, &targets, &Linking::default(), config, 5).unwrap();
        let with =
            fit_irt(&x, &targets, &Linking { aggregates: vec![aggregate], ..Linking::default() }, config, 5).unwrap();
        let skill_one = [0.0f32, 1.0, 0.0];
        let p_without = without.predict(&skill_one, &skill_one);
        let p_with = with.predict(&skill_one, &skill_one);
        // Its published accuracy (0.88, the highest) places it at or above model 1 on skill 1 with the
        // aggregate; a published accuracy below model 0's places it under model 1.
        eprintln!("without {p_without:?}, with {p_with:?}");
        assert!(p_with[2] > p_with[1] - 0.03 && p_with[2] > p_with[0] + 0.2, "{p_with:?}");
        let low =
            Aggregate { name: "bench".into(), anchor: anchor_copy, scores: vec![(0, 0.38), (1, 0.82), (2, 0.30)] };
        let placed_low =
            fit_irt(&x, &targets, &Linking { aggregates: vec![low], ..Linking::default() }, config, 5).unwrap();
        let p_low = placed_low.predict(&skill_one, &skill_one);
        assert!(p_low[2] < p_low[1] - 0.2 && p_low[2] < p_with[2] - 0.2, "{p_low:?} against {p_with:?}");
    }
}
