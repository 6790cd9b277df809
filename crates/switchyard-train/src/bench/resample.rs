//! The benchmark's intervals: every router's metrics, and the learned router's differences from the
//! baselines, on the same bootstrap resamples of the held-out prompts (see [`super::bootstrap`]).
//!
//! On each resample the single models' points, and so `c_max` (the dearest single model's mean cost) and the
//! zero router, are recomputed; each router's curve is re-summed from its precomputed choices.

use std::collections::BTreeMap;

use super::bootstrap::{bootstrap_intervals, counts, BootstrapOptions, Interval};
use super::curve::{aiq, apgr, cpt, share_curve, Point};
use super::set::BenchSet;
use super::sweep::{single_points, Choices};

/// A two-model router's preference for the strong model, per prompt (higher = more in need of it).
pub(super) struct PairInput<'a> {
    /// The strong model's index in the set.
    pub strong: usize,
    /// Routers by name with their per-prompt preferences.
    pub preferences: Vec<(&'a str, &'a [f64])>,
}

/// Everything the resampled statistics are computed from.
pub(super) struct Inputs<'a> {
    /// The held-out set.
    pub set: &'a BenchSet,
    /// Routers by name (`learned`, `knn10`, `knn40`, `oracle`) with their choices.
    pub routers: Vec<(&'a str, &'a Choices)>,
    /// Two-model sets: the routers' preferences.
    pub pair: Option<PairInput<'a>>,
}

/// Name of the learned router in statistics' keys.
pub(super) const LEARNED: &str = "learned";
/// Name of the zero router in statistics' keys.
pub(super) const ZERO: &str = "zero_router";
/// The baselines the learned router's differences are measured against.
pub(super) const VERSUS: [&str; 2] = ["knn40", ZERO];

/// Two-model metrics (APGR, CPT50) of a preference on prompts weighted by `w`: each prompt answered by both
/// models counts `w[i]` times, ranked by preference (ties in prompt order, as in the plain run).
fn pair_stats(set: &BenchSet, strong: usize, order: &[usize], w: &[f64]) -> (f64, f64) {
    let (mut pref, mut s, mut weak) = (Vec::new(), Vec::new(), Vec::new());
    for (rank, &i) in order.iter().enumerate() {
        let p = &set.prompts[i];
        let (Some(si), Some(wi)) = (p.score[strong], p.score[1 - strong]) else {
            continue;
        };
        for _ in 0..w[i] as usize {
            // Already in preference order: a falling rank keeps share_curve's stable sort as it is.
            pref.push(-(rank as f64));
            s.push(si);
            weak.push(wi);
        }
    }
    let curve = share_curve(&pref, &s, &weak);
    (apgr(&curve).unwrap_or(f64::NAN), cpt(&curve, 0.5).unwrap_or(f64::NAN))
}

/// Prompts by preference, highest first, ties in prompt order.
fn preference_order(preference: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..preference.len()).collect();
    order.sort_by(|&a, &b| preference[b].total_cmp(&preference[a]));
    order
}

/// Bootstrap intervals keyed `metric:router` (e.g. `aiq:knn40`, `apgr:learned`) and, for the learned
/// router's differences, `metric:learned-<baseline>` (e.g. `aiq:learned-knn40`). Empty when the bootstrap is
/// off. The zero router's APGR is 0.5 by definition (mixing the two models at random).
pub(super) fn intervals(inputs: &Inputs, options: &BootstrapOptions) -> BTreeMap<String, Interval> {
    let set = inputs.set;
    let mut keys: Vec<String> = inputs.routers.iter().map(|(name, _)| format!("aiq:{name}")).collect();
    keys.push(format!("aiq:{ZERO}"));
    let orders: Vec<(&str, Vec<usize>)> = inputs
        .pair
        .iter()
        .flat_map(|pair| pair.preferences.iter().map(|(name, pref)| (*name, preference_order(pref))))
        .collect();
    for (name, _) in &orders {
        keys.extend([format!("apgr:{name}"), format!("cpt50:{name}")]);
    }
    // Differences: (key, minuend's key, subtrahend's key).
    let mut differences: Vec<(String, String, String)> = Vec::new();
    let has = |router: &str| inputs.routers.iter().any(|(n, _)| *n == router);
    let paired = |router: &str| router == ZERO || orders.iter().any(|(n, _)| *n == router);
    for metric in ["aiq", "apgr"] {
        for b in VERSUS {
            let ok = match metric {
                "aiq" => has(LEARNED) && (b == ZERO || has(b)),
                _ => paired(LEARNED) && paired(b),
            };
            if ok {
                differences.push((
                    format!("{metric}:{LEARNED}-{b}"),
                    format!("{metric}:{LEARNED}"),
                    format!("{metric}:{b}"),
                ));
            }
        }
    }

    let n = set.prompts.len();
    let values = bootstrap_intervals(n, options, |indices| {
        let w = counts(indices, n);
        let singles: Vec<Point> = single_points(set, &w).into_iter().flatten().collect();
        let c_max = singles.iter().map(|p| p.cost).fold(0.0, f64::max);
        let mut stats: BTreeMap<String, f64> = BTreeMap::new();
        for (name, choices) in &inputs.routers {
            stats.insert(format!("aiq:{name}"), aiq(&choices.points(&w), c_max));
        }
        stats.insert(format!("aiq:{ZERO}"), aiq(&singles, c_max));
        if let Some(pair) = &inputs.pair {
            for (name, order) in &orders {
                let (a, c) = pair_stats(set, pair.strong, order, &w);
                stats.insert(format!("apgr:{name}"), a);
                stats.insert(format!("cpt50:{name}"), c);
            }
            stats.insert(format!("apgr:{ZERO}"), 0.5);
        }
        let get = |k: &String| stats.get(k).copied().unwrap_or(f64::NAN);
        keys.iter().map(get).chain(differences.iter().map(|(_, a, b)| get(a) - get(b))).collect()
    });
    keys.into_iter()
        .chain(differences.into_iter().map(|(k, _, _)| k))
        .zip(values)
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

/// Leave-one-out statistics on the same resamples: each router's AIQ gain over the zero router as a share of
/// the `full` router's gain (`share:<name>`), each router's AIQ minus the full router's (`minus_full:<name>`),
/// and for each `(a, b)` of `differences`, a's AIQ minus b's (`<a>-<b>`). A resample where the full router
/// gains nothing gives no share.
pub(super) fn gain_shares(
    set: &BenchSet,
    full: &Choices,
    others: &[(&str, &Choices)],
    differences: &[(&str, &str)],
    options: &BootstrapOptions,
) -> BTreeMap<String, Interval> {
    let n = set.prompts.len();
    let position = |name: &str| others.iter().position(|(o, _)| *o == name);
    let pairs: Vec<(String, usize, usize)> =
        differences.iter().filter_map(|(a, b)| Some((format!("{a}-{b}"), position(a)?, position(b)?))).collect();
    debug_assert_eq!(pairs.len(), differences.len(), "a difference names a router not in `others`");
    let keys: Vec<String> = others
        .iter()
        .flat_map(|(name, _)| [format!("share:{name}"), format!("minus_full:{name}")])
        .chain(pairs.iter().map(|(k, _, _)| k.clone()))
        .collect();
    let values = bootstrap_intervals(n, options, |indices| {
        let w = counts(indices, n);
        let singles: Vec<Point> = single_points(set, &w).into_iter().flatten().collect();
        let c_max = singles.iter().map(|p| p.cost).fold(0.0, f64::max);
        let zero = aiq(&singles, c_max);
        let base = aiq(&full.points(&w), c_max);
        let gain = base - zero;
        let each: Vec<f64> = others.iter().map(|(_, choices)| aiq(&choices.points(&w), c_max)).collect();
        each.iter()
            .flat_map(|&a| [if gain > 0.0 { (a - zero) / gain } else { f64::NAN }, a - base])
            .chain(pairs.iter().map(|&(_, a, b)| each[a] - each[b]))
            .collect()
    });
    keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v?))).collect()
}
