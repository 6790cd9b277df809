//! The baselines a router is measured against on the same held-out prompts: single models, the zero router,
//! random, the oracle, kNN memories, and on two-model sets APGR and CPT; and the router's own figures.

use std::collections::BTreeMap;

use switchyard_core::{KnnMemory, ModelEstimate, Prediction, Router};

use super::*;

/// Each router's preference for the strong model of a two-model set, per prompt, by router name.
pub(super) type Preferences = Vec<(String, Vec<f64>)>;

/// The oracle's, random's and the zero router's APGR and CPT on a two-model set: the oracle knows every score;
/// mixing the two models at random is the straight line from the weak one to the strong one.
pub(super) fn pair_baselines(set: &BenchSet, strong: usize, baselines: &mut BTreeMap<String, Metrics>) {
    let score = |i: usize, m: usize| set.prompts[i].score[m].unwrap_or(0.0);
    let oracle = baselines.entry("oracle".to_string()).or_default();
    (oracle.apgr, oracle.cpt50, oracle.cpt80) = pair_metrics(set, strong, |i| score(i, strong) - score(i, 1 - strong));
    let line: Vec<f64> = (0..=10).map(|k| f64::from(k) / 10.0).collect();
    for name in ["random", ZERO] {
        let m = baselines.entry(name.to_string()).or_default();
        (m.apgr, m.cpt50, m.cpt80) = (apgr(&line), cpt(&line, 0.5), cpt(&line, 0.8));
    }
}

/// The router against each baseline of [`VERSUS`], in AIQ and (two-model sets) APGR, with paired intervals.
pub(super) fn differences(
    router: &Metrics,
    baselines: &BTreeMap<String, Metrics>,
    ci: &BTreeMap<String, Interval>,
) -> Vec<Difference> {
    let mut differences = Vec::new();
    for baseline in VERSUS {
        let Some(b) = baselines.get(baseline) else {
            continue;
        };
        let pairs = [("aiq", Some(router.aiq), Some(b.aiq)), ("apgr", router.apgr, b.apgr)];
        for (metric, a, b) in pairs.into_iter().filter_map(|(m, a, b)| Some((m, a?, b?))) {
            differences.push(Difference {
                metric: metric.to_string(),
                baseline: baseline.to_string(),
                value: a - b,
                ci: ci.get(&format!("{metric}:{LEARNED}-{baseline}")).copied(),
            });
        }
    }
    differences
}

/// On a two-model set, how much more likely the strong model is to succeed, per prompt.
pub(super) fn preference(est: &[Vec<ModelEstimate>], strong: usize) -> Vec<f64> {
    est.iter().map(|e| e[strong].p_success - e[1 - strong].p_success).collect()
}

/// The single models' operating points (those that answered some prompt), as points, and the dearest's cost.
pub(super) fn single_models(set: &BenchSet) -> (Vec<SingleModel>, Vec<Point>, f64) {
    let singles: Vec<SingleModel> = set
        .single_model_points()
        .into_iter()
        .zip(&set.models)
        .filter(|((_, _, n), _)| *n > 0)
        .map(|((cost, quality, prompts), model)| SingleModel { model: model.clone(), cost, quality, prompts })
        .collect();
    let single_points: Vec<Point> = singles.iter().map(|s| Point { cost: s.cost, quality: s.quality }).collect();
    let c_max = singles.iter().map(|s| s.cost).fold(0.0, f64::max);
    (singles, single_points, c_max)
}

/// The baselines that need no router: each single model, the zero router (their hull), random and the oracle
/// (its point and its curve, with its choices for the intervals).
pub(super) fn point_baselines(
    set: &BenchSet,
    singles: &[SingleModel],
    single_points: &[Point],
    c_max: f64,
) -> (BTreeMap<String, Metrics>, Choices, Vec<CurvePoint>) {
    let point_metrics = |cost: f64, quality: f64| Metrics {
        aiq: aiq(&[Point { cost, quality }], c_max),
        cost: Some(cost),
        quality: Some(quality),
        ..Metrics::default()
    };
    let mut baselines = BTreeMap::new();
    for s in singles {
        baselines.insert(format!("model:{}", s.model), point_metrics(s.cost, s.quality));
    }
    baselines.insert(ZERO.to_string(), Metrics { aiq: aiq(single_points, c_max), ..Metrics::default() });
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
    // The oracle point: per prompt, the cheapest model with the best observed score.
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
    baselines.insert("oracle_point".to_string(), point_metrics(oc / n, oq / n));
    // The oracle curve: what knowing every score would buy at each willingness to pay.
    let oracle = Choices::of_oracle(set);
    let oracle_curve = oracle.curve();
    baselines.insert("oracle".to_string(), Metrics { aiq: aiq(&points(&oracle_curve), c_max), ..Metrics::default() });
    (baselines, oracle, oracle_curve)
}

/// The kNN baselines' curves and choices.
pub(super) struct KnnBaselines {
    pub curves: BTreeMap<String, Vec<CurvePoint>>,
    pub choices: Vec<(String, Choices)>,
}

/// Each kNN memory as a router on the set (its metrics into `baselines`, its preferences on a two-model set).
pub(super) fn knn_baselines(
    (set, embeddings, in_set_order): (&BenchSet, &[Vec<f32>], &[Vec<ModelEstimate>]),
    knn: &[(String, KnnMemory)],
    c_max: f64,
    strong: Option<usize>,
    (baselines, preferences): (&mut BTreeMap<String, Metrics>, &mut Preferences),
) -> KnnBaselines {
    let mut baseline_curves = BTreeMap::new();
    let mut knn_choices = Vec::new();
    for (name, memory) in knn {
        let all: Vec<Vec<ModelEstimate>> = embeddings
            .iter()
            .zip(in_set_order)
            .map(|(e, pred)| {
                memory
                    .predict(e)
                    .into_iter()
                    .zip(pred)
                    .map(|(p, r)| ModelEstimate { p_success: f64::from(p), ..r.clone() })
                    .collect()
            })
            .collect();
        let choices = Choices::of_router(set, &answered_estimates(set, all.clone()));
        let knn_curve = choices.curve();
        let mut m = Metrics { aiq: aiq(&points(&knn_curve), c_max), ..Metrics::default() };
        if let Some(strong) = strong {
            let pref = preference(&all, strong);
            (m.apgr, m.cpt50, m.cpt80) = pair_metrics(set, strong, |i| pref[i]);
            preferences.push((name.clone(), pref));
        }
        baselines.insert(name.clone(), m);
        baseline_curves.insert(name.clone(), knn_curve);
        knn_choices.push((name.clone(), choices));
    }
    KnnBaselines { curves: baseline_curves, choices: knn_choices }
}

/// The router's own figures: its curve's metrics, quality at the best single model's cost, the cost share to
/// match it, calibration (ECE, AUC) and domain accuracy.
pub(super) fn router_metrics(
    set: &BenchSet,
    router: &Router,
    (predictions, in_set_order, order): (&[Prediction], &[Vec<ModelEstimate>], &[Option<usize>]),
    singles: &[SingleModel],
    curve: &[CurvePoint],
    curve_metrics: Metrics,
) -> RouterMetrics {
    let hull = upper_hull(&points(curve));
    let best = singles.iter().max_by(|a, b| a.quality.total_cmp(&b.quality).then(b.cost.total_cmp(&a.cost)));
    let (quality_at_best, match_share) = match best {
        Some(b) => {
            (hull_quality(&hull, b.cost), cost_to_reach(&hull, b.quality).filter(|_| b.cost > 0.0).map(|c| c / b.cost))
        }
        None => (0.0, None),
    };
    let mut pairs = Vec::new();
    for (prompt, pred) in set.prompts.iter().zip(in_set_order) {
        for (m, e) in pred.iter().enumerate().filter(|(m, _)| order[*m].is_some()) {
            if let Some(s) = prompt.score[m] {
                pairs.push((e.p_success as f32, s as f32));
            }
        }
    }
    let labelled: Vec<bool> = set
        .prompts
        .iter()
        .zip(predictions)
        .filter(|(p, _)| p.domain.as_ref().is_some_and(|d| router.manifest.domains.contains(d)))
        .map(|(p, pred)| pred.domains.first().map(|d| &d.domain) == p.domain.as_ref())
        .collect();
    RouterMetrics {
        curve: curve_metrics,
        quality_at_best_single_cost: quality_at_best,
        cost_share_to_match_best_single: match_share,
        ece: metrics::ece(&pairs),
        auc: metrics::auc(&pairs),
        domain_accuracy: (!labelled.is_empty())
            .then(|| labelled.iter().filter(|x| **x).count() as f64 / labelled.len() as f64),
    }
}
