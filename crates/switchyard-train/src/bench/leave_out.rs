//! Leave-one-out evaluation of `switchyard profile add`: does a model added from a small eval set recover
//! what training on all of its outcomes would have bought?
//!
//! In one run, on the same held-out prompts and bootstrap resamples:
//! - `full`: a router trained on every model's training rows;
//! - `without`: the same training without one model (the router cannot choose it);
//! - `added`: `without` with the model added back by `profile add` from a sample of its training rows;
//! - `retrained`: a full retraining that knows the model from the same sample alone (its other outcome
//!   rows and all its pairwise rows dropped): what retraining, the alternative to `profile add`, makes of
//!   the same eval set. Its cost is the full data's, as `added`'s is (the catalog's prices; observed costs
//!   from all its rows).
//!
//! The headline is `added`'s AIQ gain over the zero router as a share of `full`'s gain, with a paired
//! bootstrap interval; `without`'s share shows what adding the model contributed. The interval covers the
//! held-out prompts, not the choice of eval prompts: with `repeats`, the model is added back again from that
//! many more random samples of the same size, and the spread of their shares shows how much that choice
//! matters.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use switchyard_core::{CostSource, KnnMemory, Router};
use switchyard_encoder::Encoder;

use super::bootstrap::{BootstrapOptions, Interval};
use super::resample::gain_shares;
use super::run::{estimates_aiq, router_choices, run_bench, set_estimates, Metrics};
use super::set::BenchSet;
use crate::addition::{embed_eval, fit_profile, representative, strata, EvalRows, Prices, ProfileRequest};
use crate::{train, Dataset, EmbeddingCache, TrainError, TrainOptions};

/// What to leave out and how to add it back.
#[derive(Debug, Clone)]
pub struct LeaveOutOptions {
    /// The model to leave out; `None`: the one whose removal costs the full router the most AIQ on the
    /// training prompts (leaving out a model the router can do without would prove nothing).
    pub model: Option<String>,
    /// With no `model`: leave out the strongest model (the highest mean success in the training rows), the
    /// launch-day case of a new model better than every other.
    pub strongest: bool,
    /// Distinct prompts of the model's training rows that `profile add` gets.
    pub rows: usize,
    /// Seed of the sample of rows and of the profile's folds.
    pub seed: u64,
    /// Give `profile add` representative prompts ([`representative`]) rather than a random sample.
    pub representative: bool,
    /// Where to write the four routers (`full`, `without`, `added`, `retrained` under it), for inspection.
    pub save_to: Option<PathBuf>,
    /// Further random samples (seeds `seed + 1`, `seed + 2`, ...) to add the model back from, each measured
    /// by its share alone.
    pub repeats: usize,
}

/// One router's AIQ with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aiq {
    /// AIQ on the held-out prompts.
    pub aiq: f64,
    /// Bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
}

impl From<&Metrics> for Aiq {
    fn from(m: &Metrics) -> Self {
        Self { aiq: m.aiq, ci: m.aiq_ci }
    }
}

/// A statistic with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The value on the held-out prompts.
    pub value: f64,
    /// Paired bootstrap interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
}

/// What a leave-one-out run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaveOutReport {
    /// The model left out and added back.
    pub model: String,
    /// How it was picked.
    pub picked: String,
    /// Seed of the training runs (folds and initialisations).
    #[serde(default)]
    pub train_seed: u64,
    /// What removing it (without retraining) costs the full router's AIQ on the training prompts.
    pub training_aiq_loss: f64,
    /// Distinct prompts and rows `profile add` got.
    pub profile_prompts: usize,
    /// Rows behind them.
    pub profile_rows: usize,
    /// The model's training rows available (prompts).
    pub available_prompts: usize,
    /// Held-out prompts.
    pub prompts: usize,
    /// AIQ of the full router, the router without the model, the router with it added back, the router
    /// retrained with the same eval sample, the zero router and kNN40 (trained on the full training logs).
    pub aiq: BTreeMap<String, Aiq>,
    /// `added`'s AIQ gain over the zero router as a share of `full`'s.
    pub added_share: Estimate,
    /// The same for `without`.
    pub without_share: Estimate,
    /// The same for `retrained` (every model's rows, but only the eval sample's rows of this one).
    pub retrained_share: Estimate,
    /// `added`'s AIQ minus `full`'s.
    pub added_minus_full: Estimate,
    /// `added`'s AIQ minus `retrained`'s: what `profile add` loses (or gains) against retraining on the same
    /// eval sample.
    pub added_minus_retrained: Estimate,
    /// The share of each further random sample (`repeats`), in seed order (none when `full` gains nothing
    /// over the zero router).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resampled_shares: Vec<f64>,
}

/// The model of `set` with the highest mean score over the prompts it answered.
fn strongest(set: &BenchSet) -> Option<String> {
    let mean = |m: usize| {
        let scores: Vec<f64> = set.prompts.iter().filter_map(|p| p.score.get(m).copied().flatten()).collect();
        scores.iter().sum::<f64>() / scores.len().max(1) as f64
    };
    (0..set.models.len()).max_by(|&a, &b| mean(a).total_cmp(&mean(b)).then(b.cmp(&a))).map(|m| set.models[m].clone())
}

/// Runs the leave-one-out comparison (see the module docs). `dataset` is the training data, `train_paths`
/// its files (the model's rows are sampled from them), `set` the held-out prompts with `embeddings`.
// Long: one run's steps in the order the module docs give them (train full and without, add back, retrain,
// measure the four on the same resamples), each a call; splitting it would only pass its dozen inputs around.
#[allow(clippy::too_many_arguments)]
pub fn leave_one_out(
    dataset: &Dataset,
    train_paths: &[PathBuf],
    set: &BenchSet,
    embeddings: &[Vec<f32>],
    knn: &[(String, KnnMemory)],
    training: (&BenchSet, &[Vec<f32>]),
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    train_options: &TrainOptions,
    options: &LeaveOutOptions,
    bootstrap: &BootstrapOptions,
) -> Result<LeaveOutReport, TrainError> {
    let no_model = |model: &str| {
        TrainError::Profile(format!("the training logs have no model {model:?}; models: {}", dataset.models.join(", ")))
    };
    if let Some(model) = options.model.as_deref().filter(|m| !dataset.models.iter().any(|x| x == m)) {
        return Err(no_model(model));
    }
    let full = train(dataset, encoder, cache, train_options)?;
    let (train_set, train_embeddings) = training;
    let weights = importance(&full, train_set, train_embeddings);
    let (model, picked) = pick(options, train_set, &weights)?;
    let training_aiq_loss = weights.iter().find(|(m, _)| *m == model).map_or(0.0, |s| s.1);
    let loo_data = dataset.without_model(&model).ok_or_else(|| no_model(&model))?;
    if loo_data.models.is_empty() {
        return Err(TrainError::Profile(format!("{model:?} is the only model: nothing is left to train on")));
    }
    // The model's training prompts, checked before the routers without it are trained.
    let read = EvalRows::read(train_paths, &model, true)?;
    let available_prompts = read.prompts.len();
    read.check_enough()?;
    if options.repeats > 0 && options.rows >= available_prompts {
        return Err(TrainError::Profile(format!(
            "{model} has {available_prompts} training prompts and each sample takes {}: every repeat would add it \
             back from the same prompts; give --profile-rows below {available_prompts}, or no --profile-repeats",
            options.rows
        )));
    }
    tracing::info!("leave-one-out: training without {model}");
    let without = train(&loo_data, encoder, cache, train_options)?;

    let mut eval = read.clone();
    let eval_embeddings = profile_sample(&mut eval, &without, encoder, cache, options)?;
    let cost = full.manifest.models.iter().find(|c| c.model == model).cloned();
    let added = add_back(&without, &model, cost.as_ref(), &eval, &eval_embeddings, options.seed)?;
    let sampled: HashSet<u64> = eval.prompts.iter().map(|p| p.text_hash).collect();
    let sampled_data = dataset.with_model_only_on(&model, &sampled).ok_or_else(|| no_model(&model))?;
    tracing::info!("leave-one-out: retraining with {} prompts of {model}", sampled.len());
    let retrained = train(&sampled_data, encoder, cache, train_options)?;
    if let Some(dir) = &options.save_to {
        for (name, router) in [("full", &full), ("without", &without), ("added", &added), ("retrained", &retrained)] {
            router.save(&dir.join(name)).map_err(|e| TrainError::Fit(format!("cannot save the {name} router: {e}")))?;
        }
    }
    let aiq = routers_aiq(set, embeddings, knn, bootstrap, [&full, &without, &added, &retrained]);
    let full_choices = router_choices(set, embeddings, &full);
    let others = [
        ("without", &router_choices(set, embeddings, &without)),
        ("added", &router_choices(set, embeddings, &added)),
        ("retrained", &router_choices(set, embeddings, &retrained)),
    ];
    let ci = gain_shares(set, &full_choices, &others, &[("added", "retrained")], bootstrap);
    let zero = aiq.get("zero_router").map_or(0.0, |a| a.aiq);
    let gain = aiq["full"].aiq - zero;
    let share = |name: &str| Estimate {
        value: if gain > 0.0 { (aiq[name].aiq - zero) / gain } else { f64::NAN },
        ci: ci.get(&format!("share:{name}")).copied(),
    };
    // Without a gain there is no share to measure.
    let resampled_shares = if gain > 0.0 {
        let base = Baseline { without: &without, model: &model, cost: cost.as_ref(), zero, gain };
        resampled_shares(&read, set, embeddings, encoder, cache, options, &base)?
    } else {
        Vec::new()
    };
    Ok(LeaveOutReport {
        resampled_shares,
        picked,
        train_seed: train_options.seed,
        training_aiq_loss,
        profile_prompts: eval.prompts.len(),
        profile_rows: eval.rows,
        available_prompts,
        prompts: set.prompts.len(),
        added_share: share("added"),
        without_share: share("without"),
        retrained_share: share("retrained"),
        added_minus_full: Estimate {
            value: aiq["added"].aiq - aiq["full"].aiq,
            ci: ci.get("minus_full:added").copied(),
        },
        added_minus_retrained: Estimate {
            value: aiq["added"].aiq - aiq["retrained"].aiq,
            ci: ci.get("added-retrained").copied(),
        },
        aiq,
        model,
    })
}

/// The model to leave out, and how it was picked: given, the strongest, or the one the full router's AIQ on the
/// training prompts depends on most (`weights`, from [`importance`]).
fn pick(
    options: &LeaveOutOptions,
    train_set: &BenchSet,
    weights: &[(String, f64)],
) -> Result<(String, String), TrainError> {
    Ok(match &options.model {
        Some(m) => (m.clone(), "given".to_string()),
        None if options.strongest => {
            let best = strongest(train_set).ok_or_else(|| TrainError::Fit("the training rows have no model".into()))?;
            (best, "the model with the highest mean success in the training rows".to_string())
        }
        None => {
            let best = weights.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|(m, _)| m.clone());
            let best = best.ok_or_else(|| TrainError::Fit("the full router has no model to leave out".into()))?;
            (best, "the model the full router's AIQ on the training prompts depends on most".to_string())
        }
    })
}

/// The prompts `profile add` gets, kept in `eval`: representative ones (as a user would pick them to evaluate a
/// new model on, with [`representative`] over `without`'s domains), or a seeded random sample. Returns their
/// embeddings.
fn profile_sample(
    eval: &mut EvalRows,
    without: &Router,
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &LeaveOutOptions,
) -> Result<ndarray::Array2<f32>, TrainError> {
    // The prompts `profile add` gets: representative ones (as a user would pick them to evaluate a new
    // model on), or a seeded random sample.
    Ok(if options.representative {
        let all = embed_eval(cache, encoder, eval, false)?;
        let rows: Vec<Vec<f32>> = all.rows().into_iter().map(|r| r.to_vec()).collect();
        let chosen = representative(&strata(without, &rows), options.rows, options.seed);
        eval.keep(&chosen);
        all.select(ndarray::Axis(0), &chosen)
    } else {
        eval.sample(options.rows, options.seed);
        embed_eval(cache, encoder, eval, false)?
    })
}

/// Each router's AIQ on the held-out prompts (`routers`: full, without, added, retrained), with the zero
/// router's and kNN40's from the full router's run.
fn routers_aiq(
    set: &BenchSet,
    embeddings: &[Vec<f32>],
    knn: &[(String, KnnMemory)],
    bootstrap: &BootstrapOptions,
    [full, without, added, retrained]: [&Router; 4],
) -> BTreeMap<String, Aiq> {
    let full_report = run_bench(set, embeddings, full, knn, bootstrap);
    let mut aiq = BTreeMap::new();
    aiq.insert("full".to_string(), Aiq::from(&full_report.metrics.curve));
    for (name, router) in [("without", without), ("added", added), ("retrained", retrained)] {
        let report = run_bench(set, embeddings, router, &[], bootstrap);
        aiq.insert(name.to_string(), Aiq::from(&report.metrics.curve));
    }
    for name in ["zero_router", "knn40"] {
        if let Some(m) = full_report.baselines.get(name) {
            aiq.insert(name.to_string(), Aiq::from(m));
        }
    }
    aiq
}

/// What each further sample is added back to and measured against.
struct Baseline<'a> {
    without: &'a Router,
    model: &'a str,
    cost: Option<&'a switchyard_core::ModelCost>,
    zero: f64,
    gain: f64,
}

/// The share of the full router's gain recovered when the model is added back from each further random sample
/// (`options.repeats` of them, seeds `seed + 1`, `seed + 2`, ...).
fn resampled_shares(
    read: &EvalRows,
    set: &BenchSet,
    embeddings: &[Vec<f32>],
    encoder: &dyn Encoder,
    cache: &mut EmbeddingCache,
    options: &LeaveOutOptions,
    base: &Baseline<'_>,
) -> Result<Vec<f64>, TrainError> {
    let mut shares = Vec::with_capacity(options.repeats);
    for r in 1..=options.repeats as u64 {
        let seed = options.seed.wrapping_add(r);
        let mut sample = read.clone();
        sample.sample(options.rows, seed);
        let sample_embeddings = embed_eval(cache, encoder, &sample, false)?;
        let again = add_back(base.without, base.model, base.cost, &sample, &sample_embeddings, seed)?;
        let aiq = estimates_aiq(set, &set_estimates(set, embeddings, &again), None);
        shares.push((aiq - base.zero) / base.gain);
    }
    Ok(shares)
}

/// `without` with `model` added back by `profile add` from `eval` (at the full router's prices, `cost`).
fn add_back(
    without: &Router,
    model: &str,
    cost: Option<&switchyard_core::ModelCost>,
    eval: &EvalRows,
    embeddings: &ndarray::Array2<f32>,
    seed: u64,
) -> Result<Router, TrainError> {
    eval.check_enough()?;
    let prices = cost
        .filter(|c| c.source == CostSource::Prices)
        .map(|c| Prices { input_usd_per_mtok: c.input_usd_per_mtok, output_usd_per_mtok: c.output_usd_per_mtok });
    let request = ProfileRequest {
        model,
        eval: Some((eval, embeddings)),
        priors: &[],
        prices,
        mean_output_tokens: cost.map(|c| c.mean_output_tokens),
        seed,
    };
    let (new, _) = fit_profile(without, &request)?;
    let mut added = without.clone();
    added.add_model(new, false).map_err(|e| TrainError::Profile(e.to_string()))?;
    Ok(added)
}

/// How much of the full router's AIQ on the training prompts each model carries: its AIQ minus the AIQ of
/// the same router with that model removed (the others' estimates unchanged). Only the training data is
/// used, so the held-out prompts play no part in the pick.
fn importance(router: &Router, train: &BenchSet, embeddings: &[Vec<f32>]) -> Vec<(String, f64)> {
    // Removing a model leaves the others' estimates as they were, so one pass of predictions serves all.
    let estimates = set_estimates(train, embeddings, router);
    let base = estimates_aiq(train, &estimates, None);
    train
        .models
        .iter()
        .enumerate()
        .map(|(m, name)| (name.clone(), base - estimates_aiq(train, &estimates, Some(m))))
        .collect()
}
