//! Online learning from outcomes: a Beta posterior per (model, domain) around the router's own predictions.
//!
//! Each observation of a model on a prompt (a feedback score, or an upstream outcome that signals quality) is
//! counted in the cells of the prompt's domains, weighted by the domain probabilities: its score, and what the
//! router predicted for it. A cell's posterior success rate is the Beta posterior whose prior has the
//! router's mean prediction there as its mean and `prior_strength` pseudo-observations as its weight:
//!
//! ```text
//! p̄ = predicted / n            (the router's mean prediction for these observations)
//! post = (κ·p̄ + successes) / (κ + n)
//! shift = logit(post) − logit(p̄)
//! ```
//!
//! A new prediction for the model moves by the shifts of the prompt's domains (weighted by their
//! probabilities) on the logit scale: where the model does as the router predicted, nothing changes; where it
//! does worse, its P drops in that domain only. Older observations fade: every new observation in a cell
//! discounts the cell's earlier ones by 2^(−1/half_life), so a model that recovers is believed again.
//!
//! Everything here is plain data and arithmetic; where the cells are kept (memory, a file, Redis) is the
//! server's business.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::predictor::{logit, sigmoid};

/// How fast the posteriors move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OnlineSettings {
    /// Pseudo-observations behind the router's prediction (κ): how many outcomes it takes to move a cell
    /// halfway to what was observed.
    pub prior_strength: f64,
    /// Observations of a cell after which an earlier one counts half.
    pub half_life: f64,
}

impl Default for OnlineSettings {
    fn default() -> Self {
        Self { prior_strength: 20.0, half_life: 200.0 }
    }
}

/// One (model, domain) cell: discounted sums over its observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Observations (weighted by domain probability).
    pub n: f64,
    /// Their scores.
    pub successes: f64,
    /// The router's predictions for them.
    pub predicted: f64,
}

impl Cell {
    /// Adds an observation of weight `w`, discounting the earlier ones.
    pub fn observe(&mut self, w: f64, score: f64, predicted: f64, half_life: f64) {
        let keep = if half_life > 0.0 { 0.5f64.powf(w / half_life) } else { 1.0 };
        self.n = self.n * keep + w;
        self.successes = self.successes * keep + w * score;
        self.predicted = self.predicted * keep + w * predicted;
    }

    /// The logit shift of this cell's posterior from the router's mean prediction (0 without observations).
    pub fn shift(&self, prior_strength: f64) -> f64 {
        if self.n < 1e-9 {
            return 0.0;
        }
        let mean = (self.predicted / self.n).clamp(1e-4, 1.0 - 1e-4);
        let post = ((prior_strength * mean + self.successes) / (prior_strength + self.n)).clamp(1e-4, 1.0 - 1e-4);
        f64::from(logit(post as f32)) - f64::from(logit(mean as f32))
    }

    /// The weight of the observations in the posterior, n / (n + κ).
    pub fn weight(&self, prior_strength: f64) -> f64 {
        self.n / (self.n + prior_strength)
    }
}

/// Every model's cells, by model then domain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Posteriors {
    /// Cells by model, then domain.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
    /// Per model, the fingerprint of the router's estimates its cells were learned against
    /// ([`crate::Router::model_fingerprint`]); a model whose estimates change starts afresh.
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
}

/// A model's online state in one number set, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelSummary {
    /// Observations over every domain (discounted).
    pub observations: f64,
    /// The router's mean prediction for them.
    pub predicted: f64,
    /// Their mean observed score.
    pub observed: f64,
    /// The observations' weight in the posterior, n / (n + κ), over every domain.
    pub weight: f64,
}

impl Posteriors {
    /// Records an outcome of `model` on a prompt with these `domains` (label, probability): its `score` in
    /// [0, 1] and the router's `predicted` P(success) for it (before any online shift).
    pub fn observe(&mut self, model: &str, domains: &[(String, f64)], score: f64, predicted: f64, s: &OnlineSettings) {
        let cells = self.cells.entry(model.to_string()).or_default();
        for (domain, w) in domains.iter().filter(|(_, w)| *w > 0.0) {
            cells.entry(domain.clone()).or_default().observe(*w, score, predicted, s.half_life);
        }
    }

    /// The logit shift for `model` on a prompt with these domain probabilities, and the observations' weight.
    pub fn shift(&self, model: &str, domains: &[(String, f64)], s: &OnlineSettings) -> (f64, f64) {
        let Some(cells) = self.cells.get(model) else {
            return (0.0, 0.0);
        };
        let (mut shift, mut weight) = (0.0, 0.0);
        for (domain, p) in domains {
            if let Some(cell) = cells.get(domain) {
                shift += p * cell.shift(s.prior_strength);
                weight += p * cell.weight(s.prior_strength);
            }
        }
        (shift, weight)
    }

    /// `p` moved by `model`'s shift for these domains.
    pub fn adjust(&self, model: &str, domains: &[(String, f64)], p: f64, s: &OnlineSettings) -> f64 {
        let (shift, _) = self.shift(model, domains, s);
        if shift == 0.0 {
            return p;
        }
        f64::from(sigmoid((f64::from(logit(p as f32)) + shift) as f32))
    }

    /// Keeps only the cells learned against the router's current estimates: a model whose fingerprint
    /// differs from `current`'s (or that the router no longer has) starts afresh. Returns the models reset.
    pub fn align(&mut self, current: &BTreeMap<String, String>) -> Vec<String> {
        let mut reset = Vec::new();
        let known: Vec<String> = self.cells.keys().chain(self.fingerprints.keys()).cloned().collect();
        for model in known {
            if self.fingerprints.get(&model) != current.get(&model) {
                if self.cells.remove(&model).is_some() {
                    reset.push(model.clone());
                }
                self.fingerprints.remove(&model);
            }
        }
        for (model, fp) in current {
            self.fingerprints.insert(model.clone(), fp.clone());
        }
        reset.sort();
        reset.dedup();
        reset
    }

    /// Per model, its observations summed over domains.
    pub fn summary(&self, s: &OnlineSettings) -> BTreeMap<String, ModelSummary> {
        self.cells
            .iter()
            .map(|(model, cells)| {
                let n: f64 = cells.values().map(|c| c.n).sum();
                let predicted: f64 = cells.values().map(|c| c.predicted).sum();
                let successes: f64 = cells.values().map(|c| c.successes).sum();
                let summary = ModelSummary {
                    observations: n,
                    predicted: if n > 0.0 { predicted / n } else { 0.0 },
                    observed: if n > 0.0 { successes / n } else { 0.0 },
                    weight: n / (n + s.prior_strength),
                };
                (model.clone(), summary)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn math() -> Vec<(String, f64)> {
        vec![("math".to_string(), 1.0)]
    }

    #[test]
    fn outcomes_as_predicted_change_nothing_and_failures_lower_one_domain() {
        let s = OnlineSettings { prior_strength: 20.0, half_life: 1e9 };
        let mut post = Posteriors::default();
        // 50 outcomes at the predicted rate 0.8: no shift.
        for i in 0..50 {
            post.observe("m", &math(), f64::from(u8::from(i % 5 != 0)), 0.8, &s);
        }
        assert!(post.shift("m", &math(), &s).0.abs() < 1e-6);
        // 50 failures where 0.8 was predicted: the posterior rate is (20·0.8 + 40) / 120 over 100 observations.
        for _ in 0..50 {
            post.observe("m", &math(), 0.0, 0.8, &s);
        }
        let expected = (20.0 * 0.8 + 40.0) / 120.0;
        let p = post.adjust("m", &math(), 0.8, &s);
        assert!((p - expected).abs() < 1e-4, "{p} vs {expected}");
        // Another domain, and another model, are untouched.
        let writing = vec![("writing".to_string(), 1.0)];
        assert_eq!(post.adjust("m", &writing, 0.8, &s), 0.8);
        assert_eq!(post.adjust("other", &math(), 0.8, &s), 0.8);
        // A prompt half math moves half as far on the logit scale.
        let half = vec![("math".to_string(), 0.5), ("writing".to_string(), 0.5)];
        let (full, _) = post.shift("m", &math(), &s);
        assert!((post.shift("m", &half, &s).0 - full / 2.0).abs() < 1e-9);
    }

    #[test]
    fn old_outcomes_fade_and_a_changed_model_starts_afresh() {
        let s = OnlineSettings { prior_strength: 10.0, half_life: 20.0 };
        let mut post = Posteriors::default();
        for _ in 0..100 {
            post.observe("m", &math(), 0.0, 0.9, &s);
        }
        assert!(post.adjust("m", &math(), 0.9, &s) < 0.3);
        for _ in 0..100 {
            post.observe("m", &math(), 1.0, 0.9, &s);
        }
        assert!(post.adjust("m", &math(), 0.9, &s) > 0.85, "recent successes outweigh the old failures");
        let summary = post.summary(&s)["m"];
        assert!(summary.observed > 0.9 && (summary.predicted - 0.9).abs() < 1e-9, "{summary:?}");

        let fingerprints: BTreeMap<String, String> = [("m".to_string(), "a".to_string())].into();
        assert_eq!(post.align(&fingerprints), vec!["m".to_string()], "cells learned against no fingerprint go");
        post.observe("m", &math(), 0.0, 0.9, &s);
        assert!(post.align(&fingerprints).is_empty(), "the same estimates keep their cells");
        assert!(post.cells.contains_key("m"));
        let changed: BTreeMap<String, String> = [("m".to_string(), "b".to_string())].into();
        assert_eq!(post.align(&changed), vec!["m".to_string()]);
        assert!(post.cells.is_empty());
    }
}
