//! Running a benchmark: sweep a router's knobs over the held-out prompts, compute the curve metrics, and do
//! the same for the baselines (single models, zero router, random, oracle, kNN routers) in the same run.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchyard_core::{estimate_input_tokens, KnnMemory, ModelEstimate, Prediction, Router};

use super::bootstrap::{BootstrapOptions, Interval};
use super::curve::{aiq, apgr, cost_to_reach, cpt, hull_quality, share_curve, upper_hull, CurvePoint, Point};
use super::resample::{intervals, Inputs, PairInput, LEARNED, VERSUS, ZERO};
use super::set::BenchSet;
use super::sweep::Choices;
use crate::metrics;

mod baselines;
use baselines::{
    differences, knn_baselines, pair_baselines, point_baselines, preference, router_metrics, single_models,
    KnnBaselines, Preferences,
};

/// The cost a router is given for a model it does not know, so that no knob ever chooses it.
const UNKNOWN_MODEL_COST: f64 = 1e6;

/// Metrics of one router (the learned one or a baseline) on the benchmark set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// RouterBench's average improvement in quality (see [`super::curve`]).
    pub aiq: f64,
    /// Bootstrap interval of `aiq` (absent when the bootstrap is off or the metric has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aiq_ci: Option<Interval>,
    /// RouteLLM's average performance gap recovered (two-model sets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apgr: Option<f64>,
    /// Bootstrap interval of `apgr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apgr_ci: Option<Interval>,
    /// Share of calls to the strong model needed for 50% of the quality gap (two-model sets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpt50: Option<f64>,
    /// Bootstrap interval of `cpt50`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpt50_ci: Option<Interval>,
    /// Share of calls to the strong model needed for 80% of the quality gap (two-model sets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpt80: Option<f64>,
    /// For a single operating point: its mean cost per prompt (USD).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    /// For a single operating point: its mean score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<f64>,
}

/// The learned router's metrics, beyond the curve's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterMetrics {
    /// The curve metrics.
    #[serde(flatten)]
    pub curve: Metrics,
    /// The router's hull quality at the best single model's mean cost.
    pub quality_at_best_single_cost: f64,
    /// The cost, as a share of the best single model's, at which the router's hull first reaches that model's
    /// quality; `None` if it never does.
    pub cost_share_to_match_best_single: Option<f64>,
    /// Expected calibration error of P(success) against the held-out scores.
    pub ece: f64,
    /// AUC of P(success) against the held-out outcomes.
    pub auc: f64,
    /// Share of labelled prompts whose top predicted domain is their label (labels the router knows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain_accuracy: Option<f64>,
}

/// A single model's operating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleModel {
    /// The model.
    pub model: String,
    /// Mean cost per prompt it answered (USD).
    pub cost: f64,
    /// Mean score.
    pub quality: f64,
    /// Prompts it answered.
    pub prompts: usize,
}

/// The learned router's metric minus a baseline's, on the same prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// "aiq" or "apgr".
    pub metric: String,
    /// The baseline: `knn40` or `zero_router` (whose APGR is 0.5 by definition).
    pub baseline: String,
    /// learned − baseline.
    pub value: f64,
    /// Paired bootstrap interval of the difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Interval>,
}

/// How the intervals were computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSummary {
    /// Resamples, seed and level.
    #[serde(flatten)]
    pub options: BootstrapOptions,
    /// Wall time of the bootstrap, seconds.
    pub seconds: f64,
}

/// Everything a benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The learned router's metrics.
    pub metrics: RouterMetrics,
    /// Baselines by name: `zero_router`, `random`, `oracle` (the oracle curve's), `oracle_point` (per prompt
    /// the cheapest model with the best observed score), `knn10`, `knn40`, `model:<name>`.
    pub baselines: BTreeMap<String, Metrics>,
    /// The learned router's differences from `knn40` and the zero router (AIQ; APGR on two-model sets).
    pub differences: Vec<Difference>,
    /// The learned router's sweep.
    pub curve: Vec<CurvePoint>,
    /// The oracle's curve: per willingness to pay λ, per prompt the model maximising λ·score − cost.
    pub oracle_curve: Vec<CurvePoint>,
    /// Each kNN baseline's sweep, for plotting.
    pub baseline_curves: BTreeMap<String, Vec<CurvePoint>>,
    /// Single models' points.
    pub single_models: Vec<SingleModel>,
    /// The highest single-model mean cost (AIQ's upper integration bound).
    pub c_max: f64,
    /// Held-out prompts evaluated.
    pub prompts: usize,
    /// Held-out prompts left out because their normalised text also occurs in the training logs (set by the
    /// caller, which knows the training logs; 0 when it does not).
    #[serde(default)]
    pub overlap_dropped: usize,
    /// The bootstrap behind the intervals; absent when it was off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSummary>,
    /// The router's decisions on the prompts embedded at another encoder precision (`bench
    /// --compare-precision`), against these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<super::Agreement>,
}

/// A router's predictions for the set's prompts, the index of each set model among the router's (`None`:
/// the router lacks it), and its estimates in the set's model order.
#[allow(clippy::type_complexity)]
fn estimates_in_set_order(
    set: &BenchSet,
    embeddings: &[Vec<f32>],
    router: &Router,
) -> (Vec<Prediction>, Vec<Option<usize>>, Vec<Vec<ModelEstimate>>) {
    let predictions: Vec<_> =
        set.prompts.iter().zip(embeddings).map(|(p, e)| router.predict(e, estimate_input_tokens(&p.text))).collect();
    // The router's estimates in the set's model order (the set may keep only some of the router's models).
    // A model of the set that the router lacks (a leave-one-out comparison) is one it can never choose: P 0 at
    // a prohibitive cost.
    let order: Vec<Option<usize>> =
        set.models.iter().map(|name| router.manifest.models.iter().position(|c| &c.model == name)).collect();
    let in_set_order: Vec<Vec<ModelEstimate>> = predictions
        .iter()
        .map(|p| {
            order
                .iter()
                .zip(&set.models)
                .map(|(i, name)| match i {
                    Some(i) => p.models[*i].clone(),
                    None => ModelEstimate {
                        model: name.clone(),
                        p_success: 0.0,
                        expected_cost_usd: UNKNOWN_MODEL_COST,
                        input_tokens: 0.0,
                        output_tokens: 0.0,
                        prior_weight: 0.0,
                        prior_only: false,
                    },
                })
                .collect()
        })
        .collect();
    (predictions, order, in_set_order)
}

/// A router's estimates for the set's prompts, in the set's model order.
pub(super) fn set_estimates(set: &BenchSet, embeddings: &[Vec<f32>], router: &Router) -> Vec<Vec<ModelEstimate>> {
    estimates_in_set_order(set, embeddings, router).2
}

/// The AIQ on the set of a router with these estimates (in the set's model order), leaving out the set's
/// model `without` (never chosen), if any.
pub(super) fn estimates_aiq(set: &BenchSet, estimates: &[Vec<ModelEstimate>], without: Option<usize>) -> f64 {
    let c_max = set.single_model_points().iter().filter(|p| p.2 > 0).map(|p| p.0).fold(0.0, f64::max);
    let mut estimates = estimates.to_vec();
    if let Some(m) = without {
        for e in estimates.iter_mut().filter_map(|row| row.get_mut(m)) {
            (e.p_success, e.expected_cost_usd) = (0.0, UNKNOWN_MODEL_COST);
        }
    }
    aiq(&points(&Choices::of_router(set, &answered_estimates(set, estimates)).curve()), c_max)
}

/// A router's choices at every knob over the set (see [`Choices::of_router`]).
pub(super) fn router_choices(set: &BenchSet, embeddings: &[Vec<f32>], router: &Router) -> Choices {
    let (_, _, estimates) = estimates_in_set_order(set, embeddings, router);
    Choices::of_router(set, &answered_estimates(set, estimates))
}

/// Per prompt, a router's estimates restricted to the models that answered it.
pub(super) fn answered_estimates(set: &BenchSet, all: Vec<Vec<ModelEstimate>>) -> Vec<Vec<ModelEstimate>> {
    all.into_iter()
        .zip(&set.prompts)
        .map(|(estimates, prompt)| {
            estimates.into_iter().enumerate().filter(|(m, _)| prompt.score[*m].is_some()).map(|(_, e)| e).collect()
        })
        .collect()
}

/// A curve's (cost, quality) points.
pub(super) fn points(curve: &[CurvePoint]) -> Vec<Point> {
    curve.iter().map(|p| Point { cost: p.cost, quality: p.quality }).collect()
}

/// Two-model metrics for a preference score per prompt (higher = more in need of the strong model).
fn pair_metrics(
    set: &BenchSet,
    strong: usize,
    preference: impl Fn(usize) -> f64,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let weak = 1 - strong;
    let both: Vec<usize> =
        (0..set.prompts.len()).filter(|&i| set.prompts[i].score.iter().all(Option::is_some)).collect();
    let pref: Vec<f64> = both.iter().map(|&i| preference(i)).collect();
    let s: Vec<f64> = both.iter().map(|&i| set.prompts[i].score[strong].unwrap_or(0.0)).collect();
    let w: Vec<f64> = both.iter().map(|&i| set.prompts[i].score[weak].unwrap_or(0.0)).collect();
    let curve = share_curve(&pref, &s, &w);
    (apgr(&curve), cpt(&curve, 0.5), cpt(&curve, 0.8))
}

/// Runs the benchmark. `embeddings` are the set's prompts' embeddings; `knn` holds kNN baselines by name,
/// whose memories use the set's model order. A model of the set that the router lacks is never chosen. Intervals
/// come from a paired bootstrap over the prompts (`bootstrap.resamples` = 0 turns it off).
pub fn run_bench(
    set: &BenchSet,
    embeddings: &[Vec<f32>],
    router: &Router,
    knn: &[(String, KnnMemory)],
    bootstrap: &BootstrapOptions,
) -> BenchReport {
    let (predictions, order, in_set_order) = estimates_in_set_order(set, embeddings, router);
    let learned = Choices::of_router(set, &answered_estimates(set, in_set_order.clone()));
    let curve = learned.curve();

    let (singles, single_points, c_max) = single_models(set);

    let (mut baselines, oracle, oracle_curve) = point_baselines(set, &singles, &single_points, c_max);
    // Two-model sets: APGR and CPT, with the strong model the one of higher mean score.
    let strong =
        (set.models.len() == 2 && singles.len() == 2).then(|| usize::from(singles[1].quality > singles[0].quality));
    let mut preferences: Preferences = Vec::new();
    let mut router_curve_metrics = Metrics { aiq: aiq(&points(&curve), c_max), ..Metrics::default() };
    if let Some(strong) = strong {
        let pref = preference(&in_set_order, strong);
        (router_curve_metrics.apgr, router_curve_metrics.cpt50, router_curve_metrics.cpt80) =
            pair_metrics(set, strong, |i| pref[i]);
        preferences.push((LEARNED.to_string(), pref));
        pair_baselines(set, strong, &mut baselines);
    }

    let KnnBaselines { curves: baseline_curves, choices: knn_choices } =
        knn_baselines((set, embeddings, &in_set_order), knn, c_max, strong, (&mut baselines, &mut preferences));
    // Intervals: every router on the same resamples.
    let started = Instant::now();
    let mut routers: Vec<(&str, &Choices)> = vec![(LEARNED, &learned), ("oracle", &oracle)];
    routers.extend(knn_choices.iter().map(|(n, c)| (n.as_str(), c)));
    let inputs = Inputs {
        set,
        routers,
        pair: strong.map(|strong| PairInput {
            strong,
            preferences: preferences.iter().map(|(n, p)| (n.as_str(), p.as_slice())).collect(),
        }),
    };
    let ci = intervals(&inputs, bootstrap);
    let bootstrap_summary = (bootstrap.resamples > 0)
        .then(|| BootstrapSummary { options: *bootstrap, seconds: started.elapsed().as_secs_f64() });
    let attach = |m: &mut Metrics, name: &str| {
        m.aiq_ci = ci.get(&format!("aiq:{name}")).copied();
        m.apgr_ci = ci.get(&format!("apgr:{name}")).copied();
        m.cpt50_ci = ci.get(&format!("cpt50:{name}")).copied();
    };
    attach(&mut router_curve_metrics, LEARNED);
    for (name, m) in &mut baselines {
        attach(m, name);
    }
    let differences = differences(&router_curve_metrics, &baselines, &ci);

    let metrics =
        router_metrics(set, router, (&predictions, &in_set_order, &order), &singles, &curve, router_curve_metrics);
    BenchReport {
        metrics,
        baselines,
        differences,
        curve,
        oracle_curve,
        baseline_curves,
        single_models: singles,
        c_max,
        prompts: set.prompts.len(),
        overlap_dropped: 0,
        bootstrap: bootstrap_summary,
        agreement: None,
    }
}
