//! What the predictors learn from: per-prompt, per-model soft targets with observation weights, and pairwise
//! preferences kept as such (a Bradley–Terry likelihood), never binarised.

use ndarray::Array2;
use switchyard_core::{logit, Winner};

use crate::dataset::PromptRecord;

/// One pairwise preference: on prompt `row`, model `a` beat model `b` with probability `y` (1 = a won,
/// 0 = b won, 0.5 = a tie).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairTarget {
    /// Row of the prompt in the target matrix.
    pub row: usize,
    /// The first model.
    pub a: usize,
    /// The second model.
    pub b: usize,
    /// Probability that `a` is preferred.
    pub y: f32,
}

/// Per-prompt, per-model targets in [0, 1], observation weights (0 = not observed) and pairwise rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// `[prompts, models]` mean outcome score (0 where unobserved); fractional scores stay fractional.
    pub value: Array2<f32>,
    /// `[prompts, models]` outcome rows behind each target (0 where unobserved).
    pub weight: Array2<f32>,
    /// Pairwise preferences.
    pub pairs: Vec<PairTarget>,
}

impl Targets {
    /// The targets of `prompts`, over `models` models.
    pub fn from_prompts(prompts: &[&PromptRecord], models: usize) -> Self {
        let mut value = Array2::zeros((prompts.len(), models));
        let mut weight = Array2::zeros((prompts.len(), models));
        let mut pairs = Vec::new();
        for (r, p) in prompts.iter().enumerate() {
            for (m, t, w) in p.targets() {
                value[[r, m]] = t;
                weight[[r, m]] = w;
            }
            for &(a, b, winner) in &p.pairs {
                let y = match winner {
                    Winner::A => 1.0,
                    Winner::B => 0.0,
                    Winner::Tie => 0.5,
                };
                pairs.push(PairTarget { row: r, a, b, y });
            }
        }
        Self { value, weight, pairs }
    }

    /// The targets of some rows, in that order (pairs follow their rows).
    pub fn rows(&self, idx: &[usize]) -> Self {
        let models = self.value.ncols();
        let value = Array2::from_shape_fn((idx.len(), models), |(r, m)| self.value[[idx[r], m]]);
        let weight = Array2::from_shape_fn((idx.len(), models), |(r, m)| self.weight[[idx[r], m]]);
        let mut position = vec![usize::MAX; self.value.nrows()];
        for (new, &old) in idx.iter().enumerate() {
            position[old] = new;
        }
        let pairs = self
            .pairs
            .iter()
            .filter(|p| position[p.row] != usize::MAX)
            .map(|p| PairTarget { row: position[p.row], ..*p })
            .collect();
        Self { value, weight, pairs }
    }

    /// Number of models.
    pub fn models(&self) -> usize {
        self.value.ncols()
    }

    /// Each model's weighted mean target; 0.5 for a model with no outcome rows.
    pub fn model_means(&self) -> Vec<f32> {
        column_means(&self.value, &self.weight, 0.5)
    }

    /// Each model's mean target per domain, adjusted for the difficulty of the prompts it happened to see,
    /// and the weight behind each mean; both `[models, domains]`. `membership` (`[prompts, domains]`)
    /// weighs each prompt into the domains; `difficulty` holds the prompts' difficulty (see
    /// [`crate::difficulty_targets`]). A row's target counts as target + (its difficulty − the domain's mean
    /// difficulty), so a model logged only on a domain's hard prompts is not judged weak there. Means
    /// without weight are 0.
    pub fn domain_means(&self, membership: &Array2<f32>, difficulty: &[f32]) -> (Array2<f32>, Array2<f32>) {
        let (prompts, models) = self.value.dim();
        let domains = membership.ncols();
        let typical = domain_average(membership, difficulty);
        let mut sum = Array2::<f32>::zeros((models, domains));
        let mut weight = Array2::<f32>::zeros((models, domains));
        for r in 0..prompts {
            for m in 0..models {
                let w = self.weight[[r, m]];
                if w <= 0.0 {
                    continue;
                }
                for d in 0..domains {
                    let wd = w * membership[[r, d]];
                    sum[[m, d]] += wd * (self.value[[r, m]] + difficulty[r] - typical[d]);
                    weight[[m, d]] += wd;
                }
            }
        }
        let means = Array2::from_shape_fn((models, domains), |(m, d)| {
            if weight[[m, d]] > 0.0 {
                (sum[[m, d]] / weight[[m, d]]).clamp(0.0, 1.0)
            } else {
                0.0
            }
        });
        (means, weight)
    }

    /// (predicted, target) pairs over every observed outcome cell, for metrics.
    pub fn pairs(&self, predicted: &Array2<f32>) -> Vec<(f32, f32)> {
        let mut out = Vec::new();
        for ((idx, &w), &t) in self.weight.indexed_iter().zip(self.value.iter()) {
            if w > 0.0 {
                out.push((predicted[idx], t));
            }
        }
        out
    }

    /// The observed (predicted, target) pairs of one model.
    pub fn model_pairs(&self, predicted: &Array2<f32>, model: usize) -> Vec<(f32, f32)> {
        (0..self.value.nrows())
            .filter(|&r| self.weight[[r, model]] > 0.0)
            .map(|r| (predicted[[r, model]], self.value[[r, model]]))
            .collect()
    }

    /// The observed (predicted, target, weight) triples of one model.
    pub fn model_weighted_pairs(&self, predicted: &Array2<f32>, model: usize) -> Vec<(f32, f32, f32)> {
        (0..self.value.nrows())
            .filter(|&r| self.weight[[r, model]] > 0.0)
            .map(|r| (predicted[[r, model]], self.value[[r, model]], self.weight[[r, model]]))
            .collect()
    }

    /// Mean negative log-likelihood of `predicted` over every observation: the soft cross-entropy of each
    /// outcome row, and the Bradley–Terry loss of each pairwise row, P(a preferred) = σ(logit P_a − logit P_b).
    pub fn loss(&self, predicted: &Array2<f32>) -> f64 {
        let (mut sum, mut n) = (0.0, 0.0);
        for ((idx, &w), &t) in self.weight.indexed_iter().zip(self.value.iter()) {
            if w > 0.0 {
                sum += f64::from(w) * soft_nll(predicted[idx], t);
                n += f64::from(w);
            }
        }
        for p in &self.pairs {
            let z = logit(predicted[[p.row, p.a]]) - logit(predicted[[p.row, p.b]]);
            sum += soft_nll(switchyard_core::sigmoid(z), p.y);
            n += 1.0;
        }
        if n > 0.0 {
            sum / n
        } else {
            0.0
        }
    }
}

/// Each column's mean of `value` weighted by `weight`; `empty` for a column with no weight.
pub(crate) fn column_means(value: &Array2<f32>, weight: &Array2<f32>, empty: f32) -> Vec<f32> {
    (0..value.ncols())
        .map(|m| {
            let w = weight.column(m).sum();
            if w > 0.0 {
                (&value.column(m) * &weight.column(m)).sum() / w
            } else {
                empty
            }
        })
        .collect()
}

/// Each domain's mean of a per-prompt value, the prompts weighted by their membership (`[prompts, domains]`);
/// 0 for a domain without members.
pub(crate) fn domain_average(membership: &Array2<f32>, values: &[f32]) -> Vec<f32> {
    let values = ndarray::ArrayView1::from(values);
    membership
        .columns()
        .into_iter()
        .map(|column| {
            let w = column.sum();
            if w > 0.0 {
                column.dot(&values) / w
            } else {
                0.0
            }
        })
        .collect()
}

/// −(y log p + (1 − y) log(1 − p)), p clamped away from 0 and 1.
fn soft_nll(p: f32, y: f32) -> f64 {
    let p = f64::from(p.clamp(1e-6, 1.0 - 1e-6));
    let y = f64::from(y);
    -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn loss_counts_outcomes_by_weight_and_pairs_by_bradley_terry() {
        let targets = Targets {
            value: array![[1.0, 0.0], [0.5, 0.0]],
            weight: array![[2.0, 0.0], [1.0, 0.0]],
            pairs: vec![PairTarget { row: 1, a: 0, b: 1, y: 1.0 }],
        };
        let predicted = array![[0.8, 0.3], [0.5, 0.5]];
        // Outcomes: 2 × −ln 0.8 and −(0.5 ln 0.5 + 0.5 ln 0.5); pair: equal P → σ(0) = 0.5 → ln 2.
        let expected = (2.0 * -(0.8f64.ln()) + 2f64.ln() + 2f64.ln()) / 4.0;
        assert!((targets.loss(&predicted) - expected).abs() < 1e-5, "{}", targets.loss(&predicted));
        let sub = targets.rows(&[1]);
        assert_eq!(sub.pairs, vec![PairTarget { row: 0, a: 0, b: 1, y: 1.0 }]);
        assert_eq!(sub.value, array![[0.5, 0.0]]);
        assert_eq!(targets.model_means(), vec![2.5 / 3.0, 0.5]);
    }
}
