//! Knowing what a router does not know: how far a prompt lies from the training prompts (`ood`), and what
//! its estimates fall back on there.
//!
//! The training prompts are summarised by a bounded set of centroids (so a decision's cost does not grow
//! with the training set). A prompt's familiarity is its cosine to the nearest centroid; `ood` puts that on
//! a calibrated scale: the share of held-out training prompts that were closer to the training data than
//! this prompt (0.5 is a typical training prompt; 1 is farther than any). Beyond [`OOD_START`], each model's
//! P(success) shrinks toward that model's prior for the prompt's likely domains and the complexity toward
//! the length-adjusted training base rate, fully at `ood` = 1: far from the data, the router does not
//! extrapolate from the embedding; it keeps only what carries across data sets (domain, prompt length).

use crate::predictor::{logit, sigmoid};

/// `ood` above which estimates start to shrink toward the priors.
pub const OOD_START: f32 = 0.9;

/// A summary of where the training prompts lie, and the priors to fall back on.
#[derive(Debug, Clone, PartialEq)]
pub struct Familiarity {
    /// Embedding dimension.
    pub dim: usize,
    /// Unit-length centroids of the training prompts' embeddings, row-major `[centroids, dim]`.
    pub centroids: Vec<f32>,
    /// Cosine of held-out training prompts to their nearest centroid, at evenly spaced quantiles from 0 to
    /// 1 (ascending).
    pub quantiles: Vec<f32>,
    /// Each model's prior P(success) per domain, row-major `[models, domains]` (one column when the router
    /// has no domains).
    pub priors: Vec<f32>,
    /// Columns of `priors`.
    pub domains: usize,
    /// The training prompts' mean complexity.
    pub base_complexity: f32,
    /// Mean of ln(1 + input tokens) over the training prompts.
    pub length_mean: f32,
    /// Change of complexity per unit of ln(1 + input tokens), fitted on the training prompts: prompt length
    /// is a signal that carries across data sets, so far from the data complexity falls back on it.
    pub complexity_slope: f32,
    /// Per model, the change of logit P(success) per unit of ln(1 + input tokens) around its domain prior.
    pub length_slopes: Vec<f32>,
}

impl Familiarity {
    /// Cosine of `embedding` to the nearest centroid.
    pub fn similarity(&self, embedding: &[f32]) -> f32 {
        self.centroids
            .chunks_exact(self.dim.max(1))
            .map(|c| c.iter().zip(embedding).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::NEG_INFINITY, f32::max)
    }

    /// The calibrated distance from the training data, in [0, 1] (see the module docs).
    pub fn ood(&self, embedding: &[f32]) -> f32 {
        let s = self.similarity(embedding);
        let q = &self.quantiles;
        match (q.first(), q.last()) {
            (Some(&lo), _) if s.is_nan() || s <= lo => 1.0,
            (_, Some(&hi)) if s >= hi => 0.0,
            (Some(_), Some(_)) => {
                let i = q.partition_point(|&v| v <= s).clamp(1, q.len() - 1);
                let (a, b) = (q[i - 1], q[i]);
                let t = if b > a { (s - a) / (b - a) } else { 1.0 };
                let below = (i as f32 - 1.0 + t) / (q.len() - 1) as f32;
                1.0 - below
            }
            _ => 0.0,
        }
    }

    /// How far estimates shrink toward the priors at this `ood`: 0 up to [`OOD_START`], rising to 1 at 1.
    pub fn shrink(ood: f32) -> f32 {
        ((ood - OOD_START) / (1.0 - OOD_START)).clamp(0.0, 1.0)
    }

    /// Model `model`'s prior P(success) for a prompt with these domain probabilities (the single column
    /// when there are none), before its length is taken into account.
    pub fn domain_prior(&self, model: usize, domain_probs: &[f32]) -> f32 {
        let row = &self.priors[model * self.domains..(model + 1) * self.domains];
        if domain_probs.len() != self.domains {
            return row.iter().sum::<f32>() / row.len().max(1) as f32;
        }
        row.iter().zip(domain_probs).map(|(p, w)| p * w).sum()
    }

    /// Model `model`'s prior P(success) for a prompt with these domain probabilities and `input_tokens`.
    pub fn prior(&self, model: usize, domain_probs: &[f32], input_tokens: f64) -> f32 {
        let p = self.domain_prior(model, domain_probs);
        let slope = self.length_slopes.get(model).copied().unwrap_or(0.0);
        sigmoid(logit(p) + slope * self.centred_length(input_tokens))
    }

    /// The complexity a prompt of `input_tokens` tokens falls back on.
    pub fn fallback_complexity(&self, input_tokens: f64) -> f32 {
        (self.base_complexity + self.complexity_slope * self.centred_length(input_tokens)).clamp(0.0, 1.0)
    }

    fn centred_length(&self, input_tokens: f64) -> f32 {
        (input_tokens.max(0.0).ln_1p() as f32 - self.length_mean).clamp(-4.0, 4.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn familiarity() -> Familiarity {
        Familiarity {
            dim: 2,
            centroids: vec![1.0, 0.0],
            quantiles: vec![0.5, 0.8, 0.9, 0.95, 1.0],
            priors: vec![0.9, 0.5, 0.3, 0.7],
            domains: 2,
            base_complexity: 0.4,
            length_mean: 3.0,
            complexity_slope: 0.1,
            length_slopes: vec![0.0, -0.5],
        }
    }

    #[test]
    fn ood_follows_the_held_out_quantiles() {
        let f = familiarity();
        assert_eq!(f.ood(&[1.0, 0.0]), 0.0);
        assert_eq!(f.ood(&[0.0, 1.0]), 1.0);
        // Cosine 0.9 is the middle quantile: half the held-out prompts were closer.
        let at = |cos: f32| f.ood(&[cos, (1.0 - cos * cos).sqrt()]);
        assert!((at(0.9) - 0.5).abs() < 1e-5, "{}", at(0.9));
        assert!((at(0.85) - 0.625).abs() < 1e-5, "{}", at(0.85));
        assert!(at(0.6) > 0.9 && at(0.6) < 1.0);
        assert_eq!(Familiarity::shrink(0.5), 0.0);
        assert!((Familiarity::shrink(0.95) - 0.5).abs() < 1e-5);
        assert_eq!(Familiarity::shrink(1.0), 1.0);
    }

    #[test]
    fn priors_mix_by_domain_probability() {
        let f = familiarity();
        let typical = 3f64.exp() - 1.0; // ln(1 + tokens) = length_mean
        assert!((f.prior(0, &[0.5, 0.5], typical) - 0.7).abs() < 1e-5);
        assert!((f.prior(1, &[1.0, 0.0], typical) - 0.3).abs() < 1e-5);
        assert!((f.domain_prior(1, &[]) - 0.5).abs() < 1e-6);
        // Longer prompts: model 1 (negative slope) loses, model 0 (no slope) does not; complexity rises.
        let long = 6f64.exp() - 1.0;
        assert!(f.prior(1, &[1.0, 0.0], long) < 0.3 && (f.prior(0, &[0.5, 0.5], long) - 0.7).abs() < 1e-5);
        assert!((f.fallback_complexity(typical) - 0.4).abs() < 1e-5);
        assert!((f.fallback_complexity(long) - 0.7).abs() < 1e-5);
    }
}
