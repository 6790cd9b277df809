//! Routing utility of predictions on labelled prompts: what cross-validation maximises. On many-model logs
//! it is RouterBench's AIQ of the policy's cost–quality sweep; on two-model logs RouteLLM's APGR. Only
//! prompts with at least two observed models count (on the others every router makes the same choice), and
//! on each prompt the router chooses among the models observed there, as `bench` does.

use ndarray::Array2;
use switchyard_core::{Utility, TIE_EPSILON};

use crate::bench::bootstrap::{bootstrap_intervals, counts, BootstrapOptions, Interval};
use crate::bench::curve::{aiq, apgr, share_curve, Point};
use crate::targets::Targets;

/// Fewest prompts with two or more observed models for a utility to be measured.
pub const MIN_ROUTABLE_PROMPTS: usize = 20;

/// The labelled prompts a utility is measured on.
pub struct UtilityData<'a> {
    /// Observed scores.
    pub targets: &'a Targets,
    /// `[prompts, models]` expected cost of each call, USD.
    pub cost: &'a Array2<f64>,
}

/// Knob values swept for AIQ: willingness to pay 0 and 61 values from 1e-7 to 1e4 USD, and min-quality
/// 0 to 1 in steps of 0.04.
fn knobs() -> Vec<Knob> {
    let wtp = std::iter::once(0.0).chain((0..=60).map(|k| 10f64.powf(-7.0 + 11.0 * f64::from(k) / 60.0)));
    wtp.map(Knob::Pay).chain((0..=25).map(|k| Knob::Bar(f64::from(k) / 25.0))).collect()
}

#[derive(Clone, Copy)]
enum Knob {
    Pay(f64),
    Bar(f64),
}

/// The policy's choice among `observed` models for one prompt, as `switchyard_core::Policy` decides:
/// the highest λ·P − cost (ties to the cheaper), or the cheapest model with P >= q (else the cheapest model
/// within [`switchyard_core::TIE_EPSILON`] of the highest P).
fn choose(knob: Knob, p: &[f32], cost: &[f64], observed: &[usize]) -> usize {
    let better = |a: usize, b: usize, va: f64, vb: f64| va > vb || (va == vb && cost[a] < cost[b]);
    let mut best = observed[0];
    match knob {
        Knob::Pay(lambda) => {
            let value = |m: usize| lambda * f64::from(p[m]) - cost[m];
            for &m in &observed[1..] {
                if better(m, best, value(m), value(best)) {
                    best = m;
                }
            }
        }
        Knob::Bar(q) => {
            let meeting: Vec<usize> = observed.iter().copied().filter(|&m| f64::from(p[m]) >= q).collect();
            if meeting.is_empty() {
                for &m in &observed[1..] {
                    if better(m, best, f64::from(p[m]), f64::from(p[best])) {
                        best = m;
                    }
                }
                let top = f64::from(p[best]);
                for &m in observed {
                    if f64::from(p[m]) >= top - TIE_EPSILON && cost[m] < cost[best] {
                        best = m;
                    }
                }
            } else {
                best = meeting[0];
                for &m in &meeting[1..] {
                    if cost[m] < cost[best] {
                        best = m;
                    }
                }
            }
        }
    }
    best
}

/// Per-prompt ingredients of a utility, computed once per set of predictions so resamples only re-sum.
enum Table {
    /// AIQ: per knob, the chosen model's cost and score on each routable prompt; per model, its cost on each
    /// routable prompt and whether it was observed there (1 or 0). Columns, so a resample is a weighted sum.
    Aiq { cost: Vec<Vec<f64>>, score: Vec<Vec<f64>>, single_cost: Vec<Vec<f64>>, observed: Vec<Vec<f64>> },
    /// APGR: per prompt with both models observed, (preference for the strong model, strong, weak score).
    Apgr { rows: Vec<(f64, f64, f64)> },
}

impl UtilityData<'_> {
    /// Rows with at least two observed models, and the observed models of each.
    fn routable(&self) -> Vec<(usize, Vec<usize>)> {
        let w = &self.targets.weight;
        (0..w.nrows())
            .map(|r| (r, (0..w.ncols()).filter(|&m| w[[r, m]] > 0.0).collect::<Vec<_>>()))
            .filter(|(_, obs)| obs.len() >= 2)
            .collect()
    }

    fn table(&self, predicted: &Array2<f32>) -> Option<Table> {
        let routable = self.routable();
        if routable.len() < MIN_ROUTABLE_PROMPTS {
            return None;
        }
        let models = self.targets.models();
        let score = |r: usize, m: usize| f64::from(self.targets.value[[r, m]]);
        if models == 2 {
            let means = self.targets.model_means();
            let strong = usize::from(means[1] > means[0]);
            let rows = routable
                .iter()
                .map(|&(r, _)| {
                    let pref = f64::from(predicted[[r, strong]]) - f64::from(predicted[[r, 1 - strong]]);
                    (pref, score(r, strong), score(r, 1 - strong))
                })
                .collect();
            return Some(Table::Apgr { rows });
        }
        // Each routable prompt's predictions and costs, copied once for every knob.
        let rows: Vec<(Vec<f32>, Vec<f64>)> =
            routable.iter().map(|(r, _)| (predicted.row(*r).to_vec(), self.cost.row(*r).to_vec())).collect();
        let (mut cost, mut score_of) = (Vec::new(), Vec::new());
        for knob in knobs() {
            let (c, q): (Vec<f64>, Vec<f64>) = routable
                .iter()
                .zip(&rows)
                .map(|((r, obs), (p, cost))| {
                    let m = choose(knob, p, cost, obs);
                    (cost[m], score(*r, m))
                })
                .unzip();
            cost.push(c);
            score_of.push(q);
        }
        let single_cost = (0..models)
            .map(|m| routable.iter().map(|(r, obs)| if obs.contains(&m) { self.cost[[*r, m]] } else { 0.0 }).collect())
            .collect();
        let observed = (0..models)
            .map(|m| routable.iter().map(|(_, obs)| f64::from(u8::from(obs.contains(&m)))).collect())
            .collect();
        Some(Table::Aiq { cost, score: score_of, single_cost, observed })
    }

    /// The utility of `predicted` with a percentile bootstrap 95% interval over `resamples` resamples of the
    /// routable prompts (seeded); `None` when the logs have too few prompts with two observed models.
    pub fn measure(&self, predicted: &Array2<f32>, resamples: usize, seed: u64) -> Option<Utility> {
        let table = self.table(predicted)?;
        let n = match &table {
            Table::Aiq { cost, .. } => cost.first().map_or(0, Vec::len),
            Table::Apgr { rows } => rows.len(),
        };
        let all: Vec<usize> = (0..n).collect();
        let value = evaluate(&table, &all)?;
        let options = BootstrapOptions { resamples, seed, level: 0.95 };
        let interval = bootstrap_intervals(n, &options, |idx| vec![evaluate(&table, idx).unwrap_or(f64::NAN)])
            .into_iter()
            .next()
            .flatten()
            .unwrap_or(Interval { lo: value, hi: value });
        let metric = if matches!(table, Table::Apgr { .. }) { "apgr" } else { "aiq" };
        Some(Utility { metric: metric.into(), value, lo: interval.lo, hi: interval.hi })
    }
}

/// The utility over the prompts `idx` (a bootstrap resample: indices may repeat).
fn evaluate(table: &Table, idx: &[usize]) -> Option<f64> {
    match table {
        Table::Aiq { cost, score, single_cost, observed } => {
            // Each prompt's weight is how often the resample drew it: sums run down contiguous columns.
            let weights = counts(idx, cost.first().map_or(0, Vec::len));
            let dot = |column: &[f64]| column.iter().zip(&weights).map(|(v, w)| v * w).sum::<f64>();
            let n = idx.len() as f64;
            let points: Vec<Point> =
                cost.iter().zip(score).map(|(c, q)| Point { cost: dot(c) / n, quality: dot(q) / n }).collect();
            let c_max = single_cost
                .iter()
                .zip(observed)
                .filter_map(|(c, seen)| {
                    let times = dot(seen);
                    (times > 0.0).then(|| dot(c) / times)
                })
                .fold(0.0, f64::max);
            Some(aiq(&points, c_max))
        }
        Table::Apgr { rows } => {
            let pick = |f: fn(&(f64, f64, f64)) -> f64| idx.iter().map(|&i| f(&rows[i])).collect::<Vec<f64>>();
            apgr(&share_curve(&pick(|r| r.0), &pick(|r| r.1), &pick(|r| r.2)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// 200 prompts, three models: cheap succeeds on even prompts, mid on prompts not divisible by 3,
    /// dear on all.
    fn data() -> (Targets, Array2<f64>) {
        let n = 200;
        let value = Array2::from_shape_fn((n, 3), |(r, m)| match m {
            0 => f32::from(u8::from(r % 2 == 0)),
            1 => f32::from(u8::from(r % 3 != 0)),
            _ => 1.0,
        });
        let cost = Array2::from_shape_fn((n, 3), |(_, m)| [0.001, 0.01, 0.1][m]);
        (Targets { value, weight: Array2::ones((n, 3)), pairs: Vec::new() }, cost)
    }

    #[test]
    fn knowing_the_answers_beats_knowing_nothing() {
        let (targets, cost) = data();
        let data = UtilityData { targets: &targets, cost: &cost };
        let oracle = targets.value.clone();
        let blind = Array2::from_elem(oracle.dim(), 0.5f32);
        let good = data.measure(&oracle, 100, 3).unwrap();
        let bad = data.measure(&blind, 100, 3).unwrap();
        assert_eq!(good.metric, "aiq");
        assert!(good.value > bad.value + 0.05, "{good:?} vs {bad:?}");
        assert!(good.lo <= good.value && good.value <= good.hi && good.hi > good.lo, "{good:?}");
        // Deterministic for a seed.
        assert_eq!(data.measure(&oracle, 100, 3), Some(good));
    }

    #[test]
    fn two_models_use_apgr_and_sparse_logs_have_no_utility() {
        let (mut targets, cost) = data();
        let two = Targets {
            value: targets.value.slice(ndarray::s![.., 0..2]).to_owned(),
            weight: Array2::ones((200, 2)),
            pairs: Vec::new(),
        };
        let cost2 = cost.slice(ndarray::s![.., 0..2]).to_owned();
        let data = UtilityData { targets: &two, cost: &cost2 };
        let u = data.measure(&two.value, 50, 1).unwrap();
        assert_eq!(u.metric, "apgr");
        assert!(u.value > 0.6, "{u:?}");
        // One observed model per prompt: nothing to route.
        targets.weight = Array2::from_shape_fn((200, 3), |(r, m)| f32::from(u8::from(r % 3 == m)));
        assert!(UtilityData { targets: &targets, cost: &cost }.measure(&targets.value, 50, 1).is_none());
    }
}
