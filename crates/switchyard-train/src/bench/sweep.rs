//! What a router chooses at each knob setting, prompt by prompt, computed once.
//!
//! A router's choice for a prompt at a knob value does not depend on which other prompts are evaluated, so a
//! sweep is stored as a table of realised (cost, score) per (knob, prompt); a curve on any weighting of the
//! prompts (all ones for the plain run, resample counts for the bootstrap) is then a few weighted sums.

use std::collections::BTreeMap;

use switchyard_core::{Knob, ModelEstimate, Policy};

use super::curve::{CurvePoint, Point};
use super::set::BenchSet;

/// Willingness-to-pay values swept: 0 and 121 values from 1e-7 to 1e4 USD on a log grid.
fn wtp_grid() -> impl Iterator<Item = f64> {
    std::iter::once(0.0).chain((0..=120).map(|k| 10f64.powf(-7.0 + 11.0 * f64::from(k) / 120.0)))
}

/// Knob values swept: the willingness-to-pay grid, then q from 0 to 1 in steps of 0.02.
pub(super) fn knob_grid() -> Vec<Knob> {
    let mq = (0..=50).map(|k| f64::from(k) / 50.0);
    wtp_grid().map(Knob::WillingnessToPay).chain(mq.map(Knob::MinQuality)).collect()
}

/// Per knob setting and prompt, the realised cost and score of the chosen model.
#[derive(Debug, Clone)]
pub(super) struct Choices {
    knobs: Vec<Knob>,
    prompts: usize,
    /// Knob-major: `cost[k * prompts + i]`.
    cost: Vec<f64>,
    score: Vec<f64>,
    /// 1 where a model was chosen, 0 where none could be (the prompt then does not count at that knob).
    chosen: Vec<f64>,
}

impl Choices {
    fn with_knobs(knobs: Vec<Knob>, prompts: usize) -> Self {
        let size = knobs.len() * prompts;
        Self { knobs, prompts, cost: vec![0.0; size], score: vec![0.0; size], chosen: vec![0.0; size] }
    }

    /// A router's choices: its policy replayed at every knob of the grid over its `estimates` (per prompt,
    /// restricted to the models that answered it).
    pub(super) fn of_router(set: &BenchSet, estimates: &[Vec<ModelEstimate>]) -> Self {
        let index: BTreeMap<&str, usize> = set.models.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
        let mut out = Self::with_knobs(knob_grid(), set.prompts.len());
        for (k, knob) in out.knobs.clone().into_iter().enumerate() {
            let policy = Policy::new(knob);
            for (i, (prompt, est)) in set.prompts.iter().zip(estimates).enumerate() {
                let Some(&m) = policy.decide(est).ok().and_then(|d| index.get(d.model.as_str())) else {
                    continue;
                };
                let at = k * out.prompts + i;
                out.cost[at] = prompt.cost[m].unwrap_or(0.0);
                out.score[at] = prompt.score[m].unwrap_or(0.0);
                out.chosen[at] = 1.0;
            }
        }
        out
    }

    /// The oracle's choices: for each willingness to pay λ of the grid, per prompt the model maximising
    /// λ·score − cost on the observed scores and costs (ties to the cheaper model, then the better one).
    pub(super) fn of_oracle(set: &BenchSet) -> Self {
        let mut out = Self::with_knobs(wtp_grid().map(Knob::WillingnessToPay).collect(), set.prompts.len());
        for (k, lambda) in wtp_grid().enumerate() {
            for (i, p) in set.prompts.iter().enumerate() {
                let best = (0..set.models.len()).filter_map(|m| Some((p.score[m]?, p.cost[m].unwrap_or(0.0)))).max_by(
                    |a, b| {
                        (lambda * a.0 - a.1)
                            .total_cmp(&(lambda * b.0 - b.1))
                            .then(b.1.total_cmp(&a.1))
                            .then(a.0.total_cmp(&b.0))
                    },
                );
                if let Some((s, c)) = best {
                    let at = k * out.prompts + i;
                    (out.cost[at], out.score[at], out.chosen[at]) = (c, s, 1.0);
                }
            }
        }
        out
    }

    /// Per knob where some prompt counts: the knob's index and the weighted mean cost and score of the
    /// chosen models.
    fn weighted(&self, weights: &[f64]) -> Vec<(usize, Point)> {
        let dot = |row: &[f64]| row.iter().zip(weights).map(|(a, b)| a * b).sum::<f64>();
        (0..self.knobs.len())
            .filter_map(|k| {
                let range = k * self.prompts..(k + 1) * self.prompts;
                let n = dot(&self.chosen[range.clone()]);
                (n > 0.0).then(|| {
                    (k, Point { cost: dot(&self.cost[range.clone()]) / n, quality: dot(&self.score[range]) / n })
                })
            })
            .collect()
    }

    /// The curve with every prompt counted once; knobs where no prompt has a choice are left out.
    pub(super) fn curve(&self) -> Vec<CurvePoint> {
        self.weighted(&vec![1.0; self.prompts])
            .into_iter()
            .map(|(k, p)| {
                let (knob_name, knob) = match self.knobs[k] {
                    Knob::WillingnessToPay(v) => ("willingness_to_pay", v),
                    Knob::MinQuality(v) => ("min_quality", v),
                };
                CurvePoint { knob_name: knob_name.into(), knob, cost: p.cost, quality: p.quality }
            })
            .collect()
    }

    /// The curve's points on prompts weighted by `weights` (one per prompt, e.g. a resample's counts).
    pub(super) fn points(&self, weights: &[f64]) -> Vec<Point> {
        self.weighted(weights).into_iter().map(|(_, p)| p).collect()
    }
}

/// Each model's mean cost and score over the prompts it answered, on prompts weighted by `weights`; `None`
/// for a model that answered none of them.
pub(super) fn single_points(set: &BenchSet, weights: &[f64]) -> Vec<Option<Point>> {
    (0..set.models.len())
        .map(|m| {
            let (mut c, mut q, mut n) = (0.0, 0.0, 0.0);
            for (p, w) in set.prompts.iter().zip(weights) {
                if let (Some(cost), Some(score)) = (p.cost[m], p.score[m]) {
                    (c, q, n) = (c + w * cost, q + w * score, n + w);
                }
            }
            (n > 0.0).then(|| Point { cost: c / n, quality: q / n })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::curve::{aiq, upper_hull};
    use crate::bench::BenchPrompt;
    use switchyard_core::ReadSummary;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn prompt(score: [f64; 2], cost: [f64; 2]) -> BenchPrompt {
        BenchPrompt {
            text: String::new(),
            score: score.iter().map(|s| Some(*s)).collect(),
            cost: cost.iter().map(|c| Some(*c)).collect(),
            domain: None,
        }
    }

    /// Two models: "cheap" (cost 1e-4) and "dear" (cost 1e-2). The cheap one fails prompt 0 and 1, the dear
    /// one fails prompt 2.
    fn set() -> BenchSet {
        BenchSet {
            models: vec!["cheap".into(), "dear".into()],
            prompts: vec![
                prompt([0.0, 1.0], [1e-4, 1e-2]),
                prompt([0.0, 1.0], [1e-4, 1e-2]),
                prompt([1.0, 0.0], [1e-4, 1e-2]),
                prompt([1.0, 1.0], [1e-4, 1e-2]),
            ],
            summary: ReadSummary::default(),
            unused_rows: 0,
        }
    }

    #[test]
    fn oracle_curve_by_hand() {
        let s = set();
        let oracle = Choices::of_oracle(&s);
        let curve = oracle.curve();
        assert_eq!(curve.len(), 122);
        // λ = 0: always the cheap model (quality 0.5, cost 1e-4).
        assert_eq!((curve[0].cost, curve[0].quality), (1e-4, 0.5));
        // λ below the cost gap 0.0099: still the cheap model; above it, the dear one where only it succeeds.
        let at = |lambda: f64| curve.iter().find(|p| p.knob >= lambda).unwrap();
        assert_eq!(at(0.005).quality, 0.5);
        let high = at(0.02);
        assert_eq!(high.quality, 1.0);
        assert!(close(high.cost, (2.0 * 1e-2 + 2.0 * 1e-4) / 4.0));
        // Ties (prompt 3: both succeed) go to the cheaper model even at the largest λ.
        assert_eq!(curve.last().unwrap().cost, high.cost);
        // Hull: (1e-4, 0.5) → (0.00505, 1.0); AIQ up to c_max = 1e-2 (the dear model's cost).
        let pts: Vec<Point> = curve.iter().map(|p| Point { cost: p.cost, quality: p.quality }).collect();
        assert_eq!(upper_hull(&pts).len(), 2);
        let c1 = 0.00505;
        let expected = ((c1 - 1e-4) * 0.75 + (1e-2 - c1) * 1.0) / 1e-2;
        assert!((aiq(&pts, 1e-2) - expected).abs() < 1e-12);
        // Weighted: only prompts 2 and 3 (which the cheap model gets right) → the oracle never pays.
        let w = [0.0, 0.0, 1.0, 1.0];
        assert!(oracle.points(&w).iter().all(|p| close(p.cost, 1e-4) && p.quality == 1.0));
    }

    #[test]
    fn router_choices_and_single_points_on_weights() {
        let s = set();
        // A router that believes the dear model always succeeds and the cheap one half the time.
        let est: Vec<Vec<ModelEstimate>> = s
            .prompts
            .iter()
            .map(|_| {
                vec![
                    ModelEstimate {
                        model: "cheap".into(),
                        p_success: 0.5,
                        expected_cost_usd: 1e-4,
                        input_tokens: 10.0,
                        output_tokens: 10.0,
                        prior_weight: 0.0,
                        prior_only: false,
                    },
                    ModelEstimate {
                        model: "dear".into(),
                        p_success: 1.0,
                        expected_cost_usd: 1e-2,
                        input_tokens: 10.0,
                        output_tokens: 10.0,
                        prior_weight: 0.0,
                        prior_only: false,
                    },
                ]
            })
            .collect();
        let choices = Choices::of_router(&s, &est);
        let curve = choices.curve();
        // min_quality 1.0 → the dear model everywhere: quality 0.75 at cost 1e-2.
        let last = curve.last().unwrap();
        assert_eq!(last.knob_name, "min_quality");
        assert!(close(last.cost, 1e-2) && close(last.quality, 0.75));
        // λ = 0 → the cheap model everywhere.
        assert!(close(curve[0].cost, 1e-4) && close(curve[0].quality, 0.5));
        let w = [2.0, 0.0, 1.0, 0.0];
        let singles: Vec<Point> = single_points(&s, &w).into_iter().flatten().collect();
        assert!(close(singles[0].cost, 1e-4) && close(singles[0].quality, 1.0 / 3.0));
        assert!(close(singles[1].cost, 1e-2) && close(singles[1].quality, 2.0 / 3.0));
        let last = choices.points(&w).last().copied().unwrap();
        assert!(close(last.cost, 1e-2) && close(last.quality, 2.0 / 3.0));
        assert_eq!(single_points(&s, &[0.0; 4]), vec![None, None]);
    }
}
