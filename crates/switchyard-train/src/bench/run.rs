//! Running a benchmark: sweep a router's knobs over the held-out prompts, compute the curve metrics, and do
//! the same for the baselines (single models, zero router, random, oracle, kNN routers) in the same run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_core::{estimate_input_tokens, KnnMemory, Knob, ModelEstimate, Policy, Router};

use super::curve::{aiq, apgr, cost_to_reach, cpt, hull_quality, share_curve, upper_hull, Point};
use super::set::BenchSet;
use crate::metrics;

/// Metrics of one router (the learned one or a baseline) on the benchmark set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// RouterBench's average improvement in quality (see [`super::curve`]).
    pub aiq: f64,
    /// RouteLLM's average performance gap recovered (two-model sets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub apgr: Option<f64>,
    /// Share of calls to the strong model needed for 50% of the quality gap (two-model sets only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpt50: Option<f64>,
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

/// One point of the router's sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// "willingness_to_pay" or "min_quality".
    pub knob_name: String,
    /// The knob's value.
    pub knob: f64,
    /// Mean realised cost per prompt (USD).
    pub cost: f64,
    /// Mean score.
    pub quality: f64,
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

/// Everything a benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The learned router's metrics.
    pub metrics: RouterMetrics,
    /// Baselines by name: `zero_router`, `random`, `oracle`, `knn10`, `knn40`, `model:<name>`.
    pub baselines: BTreeMap<String, Metrics>,
    /// The learned router's sweep.
    pub curve: Vec<CurvePoint>,
    /// Each kNN baseline's sweep, for plotting.
    pub baseline_curves: BTreeMap<String, Vec<CurvePoint>>,
    /// Single models' points.
    pub single_models: Vec<SingleModel>,
    /// The highest single-model mean cost (AIQ's upper integration bound).
    pub c_max: f64,
    /// Held-out prompts evaluated.
    pub prompts: usize,
}

/// Knob values swept: λ = 0 and 121 values from 1e-7 to 1e4 USD; q from 0 to 1 in steps of 0.02.
fn knob_grid() -> Vec<Knob> {
    let wtp = std::iter::once(0.0).chain((0..=120).map(|k| 10f64.powf(-7.0 + 11.0 * f64::from(k) / 120.0)));
    let mq = (0..=50).map(|k| f64::from(k) / 50.0);
    wtp.map(Knob::WillingnessToPay).chain(mq.map(Knob::MinQuality)).collect()
}

/// Per prompt, a router's estimates restricted to the models that answered it.
fn answered_estimates(set: &BenchSet, all: Vec<Vec<ModelEstimate>>) -> Vec<Vec<ModelEstimate>> {
    all.into_iter()
        .zip(&set.prompts)
        .map(|(estimates, prompt)| {
            estimates.into_iter().enumerate().filter(|(m, _)| prompt.score[*m].is_some()).map(|(_, e)| e).collect()
        })
        .collect()
}

/// Sweeps the knobs; each setting's point is the mean realised (cost, score) of the chosen models.
fn sweep(set: &BenchSet, estimates: &[Vec<ModelEstimate>]) -> Vec<CurvePoint> {
    let index: BTreeMap<&str, usize> = set.models.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    knob_grid()
        .into_iter()
        .filter_map(|knob| {
            let policy = Policy::new(knob);
            let (mut cost, mut quality, mut n) = (0.0, 0.0, 0.0);
            for (prompt, est) in set.prompts.iter().zip(estimates) {
                let Ok(decision) = policy.decide(est) else {
                    continue;
                };
                let m = index[decision.model.as_str()];
                cost += prompt.cost[m].unwrap_or(0.0);
                quality += prompt.score[m].unwrap_or(0.0);
                n += 1.0;
            }
            let (knob_name, value) = match knob {
                Knob::WillingnessToPay(v) => ("willingness_to_pay", v),
                Knob::MinQuality(v) => ("min_quality", v),
            };
            (n > 0.0).then(|| CurvePoint {
                knob_name: knob_name.into(),
                knob: value,
                cost: cost / n,
                quality: quality / n,
            })
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
/// whose memories use the set's model order. Every model of the set must be one of the router's.
pub fn run_bench(set: &BenchSet, embeddings: &[Vec<f32>], router: &Router, knn: &[(String, KnnMemory)]) -> BenchReport {
    let predictions: Vec<_> =
        set.prompts.iter().zip(embeddings).map(|(p, e)| router.predict(e, estimate_input_tokens(&p.text))).collect();
    // The router's estimates in the set's model order (the set may keep only some of the router's models).
    let order: Vec<usize> = set
        .models
        .iter()
        .map(|name| router.manifest.models.iter().position(|c| &c.model == name).unwrap_or(0))
        .collect();
    let in_set_order: Vec<Vec<ModelEstimate>> =
        predictions.iter().map(|p| order.iter().map(|&i| p.models[i].clone()).collect()).collect();
    let estimates = answered_estimates(set, in_set_order.clone());
    let curve = sweep(set, &estimates);

    let singles: Vec<SingleModel> = set
        .single_model_points()
        .into_iter()
        .zip(&set.models)
        .filter(|((_, _, n), _)| *n > 0)
        .map(|((cost, quality, prompts), model)| SingleModel { model: model.clone(), cost, quality, prompts })
        .collect();
    let single_points: Vec<Point> = singles.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let c_max = singles.iter().map(|s| s.cost).fold(0.0, f64::max);
    let point_metrics = |cost: f64, quality: f64| Metrics {
        aiq: aiq(&[Point { cost, quality }], c_max),
        cost: Some(cost),
        quality: Some(quality),
        ..Metrics::default()
    };

    let mut baselines = BTreeMap::new();
    for s in &singles {
        baselines.insert(format!("model:{}", s.model), point_metrics(s.cost, s.quality));
    }
    baselines.insert("zero_router".to_string(), Metrics { aiq: aiq(&single_points, c_max), ..Metrics::default() });
    // Random: each prompt goes to a uniformly random model among those that answered it (expected values).
    let n = set.prompts.len().max(1) as f64;
    let mean_over_answered = |v: &dyn Fn(usize, usize) -> Option<f64>| {
        set.prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let vals: Vec<f64> =
                    (0..set.models.len()).filter_map(|m| if p.score[m].is_some() { v(i, m) } else { None }).collect();
                vals.iter().sum::<f64>() / vals.len().max(1) as f64
            })
            .sum::<f64>()
            / n
    };
    let random = point_metrics(
        mean_over_answered(&|i, m| set.prompts[i].cost[m]),
        mean_over_answered(&|i, m| set.prompts[i].score[m]),
    );
    baselines.insert("random".to_string(), random);
    // Oracle: per prompt, the cheapest model with the best observed score.
    let (mut oc, mut oq) = (0.0, 0.0);
    for p in &set.prompts {
        let best = (0..set.models.len())
            .filter_map(|m| Some((p.score[m]?, p.cost[m].unwrap_or(0.0))))
            .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        if let Some((s, c)) = best {
            oq += s;
            oc += c;
        }
    }
    baselines.insert("oracle".to_string(), point_metrics(oc / n, oq / n));

    // Two-model sets: APGR and CPT, with the strong model the one of higher mean score.
    let strong =
        (set.models.len() == 2 && singles.len() == 2).then(|| usize::from(singles[1].quality > singles[0].quality));
    let mut router_curve_metrics = Metrics { aiq: aiq(&points(&curve), c_max), ..Metrics::default() };
    if let Some(strong) = strong {
        let weak = 1 - strong;
        let p = |i: usize, m: usize| in_set_order[i][m].p_success;
        (router_curve_metrics.apgr, router_curve_metrics.cpt50, router_curve_metrics.cpt80) =
            pair_metrics(set, strong, |i| p(i, strong) - p(i, weak));
        let score = |i: usize, m: usize| set.prompts[i].score[m].unwrap_or(0.0);
        let oracle = baselines.entry("oracle".to_string()).or_default();
        (oracle.apgr, oracle.cpt50, oracle.cpt80) = pair_metrics(set, strong, |i| score(i, strong) - score(i, weak));
        let line: Vec<f64> = (0..=10).map(|k| f64::from(k) / 10.0).collect();
        let random = baselines.entry("random".to_string()).or_default();
        (random.apgr, random.cpt50, random.cpt80) = (apgr(&line), cpt(&line, 0.5), cpt(&line, 0.8));
    }

    let mut baseline_curves = BTreeMap::new();
    for (name, memory) in knn {
        let all: Vec<Vec<ModelEstimate>> = set
            .prompts
            .iter()
            .zip(embeddings)
            .zip(&in_set_order)
            .map(|((_, e), pred)| {
                memory
                    .predict(e)
                    .into_iter()
                    .zip(pred)
                    .map(|(p, r)| ModelEstimate { p_success: f64::from(p), ..r.clone() })
                    .collect()
            })
            .collect();
        let knn_estimates = answered_estimates(set, all.clone());
        let knn_curve = sweep(set, &knn_estimates);
        let mut m = Metrics { aiq: aiq(&points(&knn_curve), c_max), ..Metrics::default() };
        if let Some(strong) = strong {
            (m.apgr, m.cpt50, m.cpt80) =
                pair_metrics(set, strong, |i| all[i][strong].p_success - all[i][1 - strong].p_success);
        }
        baselines.insert(name.clone(), m);
        baseline_curves.insert(name.clone(), knn_curve);
    }

    let hull = upper_hull(&points(&curve));
    let best = singles.iter().max_by(|a, b| a.quality.total_cmp(&b.quality).then(b.cost.total_cmp(&a.cost)));
    let (quality_at_best, match_share) = match best {
        Some(b) => {
            (hull_quality(&hull, b.cost), cost_to_reach(&hull, b.quality).filter(|_| b.cost > 0.0).map(|c| c / b.cost))
        }
        None => (0.0, None),
    };
    let mut pairs = Vec::new();
    for (prompt, pred) in set.prompts.iter().zip(&in_set_order) {
        for (m, e) in pred.iter().enumerate() {
            if let Some(s) = prompt.score[m] {
                pairs.push((e.p_success as f32, s as f32));
            }
        }
    }
    let labelled: Vec<bool> = set
        .prompts
        .iter()
        .zip(&predictions)
        .filter(|(p, _)| p.domain.as_ref().is_some_and(|d| router.manifest.domains.contains(d)))
        .map(|(p, pred)| pred.domains.first().map(|d| &d.domain) == p.domain.as_ref())
        .collect();
    let metrics = RouterMetrics {
        curve: router_curve_metrics,
        quality_at_best_single_cost: quality_at_best,
        cost_share_to_match_best_single: match_share,
        ece: metrics::ece(&pairs),
        auc: metrics::auc(&pairs),
        domain_accuracy: (!labelled.is_empty())
            .then(|| labelled.iter().filter(|x| **x).count() as f64 / labelled.len() as f64),
    };
    BenchReport {
        metrics,
        baselines,
        curve,
        baseline_curves,
        single_models: singles,
        c_max,
        prompts: set.prompts.len(),
    }
}
