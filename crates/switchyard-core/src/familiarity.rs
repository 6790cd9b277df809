//! Knowing what a router does not know: how far a prompt lies from the training prompts (`ood`), and what
//! its estimates fall back on there.
//!
//! The training prompts are summarised by a bounded set of centroids (so a decision's cost does not grow
//! with the training set). A prompt's familiarity is its cosine to the nearest centroid; `ood` puts that on
//! a calibrated scale: the share of held-out training prompts that were closer to the training data than
//! this prompt (0.5 is a typical training prompt; 1 is farther than any). Beyond [`OOD_START`], each model's
//! P(success) shrinks toward that model's prior for the prompt's likely domains and the complexity toward
//! the training base rate, fully at `ood` = 1: far from the data, the router does not extrapolate.

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
            (Some(&lo), _) if !(s > lo) => 1.0,
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
    /// when there are none).
    pub fn prior(&self, model: usize, domain_probs: &[f32]) -> f32 {
        let row = &self.priors[model * self.domains..(model + 1) * self.domains];
        if domain_probs.len() != self.domains {
            return row.iter().sum::<f32>() / row.len().max(1) as f32;
        }
        row.iter().zip(domain_probs).map(|(p, w)| p * w).sum()
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
        assert!((f.prior(0, &[0.5, 0.5]) - 0.7).abs() < 1e-6);
        assert!((f.prior(1, &[1.0, 0.0]) - 0.3).abs() < 1e-6);
        assert!((f.prior(1, &[]) - 0.5).abs() < 1e-6);
    }
}
