//! Knowing what a router does not know: how far a prompt lies from the training prompts (`ood`), and what
//! its estimates fall back on there.
//!
//! The training prompts are summarised by a bounded set of centroids (so a decision's cost does not grow
//! with the training set). A prompt's familiarity is its cosine to the nearest centroid; `ood` puts that on
//! a calibrated scale: the share of held-out training prompts that were closer to the training data than
//! this prompt (0.5 is a typical training prompt; 1 is farther than any). Beyond [`OOD_START`], each model's
//! P(success) shrinks toward that model's prior for the prompt's likely domains and the complexity toward
//! the length-adjusted training base rate, fully at `ood` = 1: far from the data, the router does not
//! extrapolate from the embedding; it keeps only what carries across data sets (domain, prompt length,
//! complexity).
//!
//! Two more kinds of not knowing are handled here:
//! - A model may have few logged outcomes in a prompt's domain even when the prompt itself is familiar
//!   (logs often test strong models on math only). Its P(success) then leans on its prior for that domain
//!   in proportion to the missing evidence ([`Familiarity::coverage`]).
//! - Complexity can be taught by prompts that carry a difficulty label but no outcomes
//!   (`--complexity-labels`). Near those prompts their labels speak for the prompt's complexity (a
//!   similarity-weighted vote of the nearest), and complexity is trusted even when no outcome is (both in
//!   [`Familiarity::place`]).

use crate::predictor::{dot, logit, sigmoid};

/// `ood` above which estimates start to shrink toward the priors.
pub const OOD_START: f32 = 0.9;
/// Logged observations of a model in a domain at which its learned P(success) there gets half the weight
/// (the other half going to its prior).
pub const EVIDENCE_HALF: f32 = 20.0;
/// Labelled prompts that vote on a prompt's complexity.
pub const LABEL_NEIGHBOURS: usize = 10;
/// Scale of the similarity margin that hands complexity from the head to the labelled prompts' vote: at a
/// margin of 0 each gets half, at ±2 scales nearly all or none.
pub const LABEL_MARGIN_SCALE: f32 = 0.03;

/// Where one prompt stands relative to what a router learned from (see [`Familiarity::place`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// The calibrated distance from the training prompts.
    pub ood: f32,
    /// The calibrated distance from every prompt that taught complexity.
    pub complexity_ood: f32,
    /// The complexity, with the labelled prompts' vote where they are closer than the training prompts.
    pub complexity: f32,
}

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
    /// Change of every model's logit P(success) per unit of complexity above `base_complexity` (an IRT-style
    /// difficulty term shared by the models; 0 leaves the priors blind to complexity).
    pub difficulty_slope: f32,
    /// Each model's logged observations per domain, row-major `[models, domains]`. Empty: every model
    /// counts as fully covered.
    pub evidence: Vec<f32>,
    /// Unit-length embeddings of prompts that carry a complexity label but no outcomes, row-major (may be
    /// empty; bounded by training, which replaces a large set by centroids).
    pub labelled: Vec<f32>,
    /// Their complexity, one per row of `labelled`.
    pub labelled_complexity: Vec<f32>,
    /// The training prompts' mean complexity per domain (empty: `base_complexity` for every domain). A
    /// domain prior describes a typical prompt of its domain, so the difficulty term is centred here.
    pub domain_complexity: Vec<f32>,
}

impl Familiarity {
    /// Cosine of `embedding` to the nearest centroid.
    pub fn similarity(&self, embedding: &[f32]) -> f32 {
        nearest(&self.centroids, self.dim, embedding)
    }

    /// The calibrated distance from the training data, in [0, 1] (see the module docs).
    pub fn ood(&self, embedding: &[f32]) -> f32 {
        self.calibrated(self.similarity(embedding))
    }

    /// Where a prompt stands, in one pass over the centroids and the labelled prompts, given the heads'
    /// complexity estimate `head`:
    /// - `ood` ([`Self::ood`]);
    /// - `complexity_ood`: the calibrated distance from every prompt that taught complexity (the training
    ///   prompts and those with a complexity label only); complexity shrinks toward its fallback by this;
    /// - `complexity`: where the prompt is closer to the labelled prompts than to the training prompts, the
    ///   labels of its [`LABEL_NEIGHBOURS`] nearest labelled prompts (weighted by similarity⁴) take over from
    ///   `head`, smoothly in the similarity margin (see [`LABEL_MARGIN_SCALE`]).
    pub fn place(&self, embedding: &[f32], head: f32) -> Placement {
        let near = self.similarity(embedding);
        let (labelled_near, vote) = self.label_vote(embedding);
        let complexity = match vote {
            Some(vote) => {
                let share = sigmoid((labelled_near - near) / LABEL_MARGIN_SCALE);
                share * vote + (1.0 - share) * head
            }
            None => head,
        };
        Placement { ood: self.calibrated(near), complexity_ood: self.calibrated(near.max(labelled_near)), complexity }
    }

    /// The cosine to the nearest labelled prompt (−∞ without any), and the similarity-weighted vote of the
    /// [`LABEL_NEIGHBOURS`] nearest on complexity (`None` without labels or positive similarity).
    fn label_vote(&self, embedding: &[f32]) -> (f32, Option<f32>) {
        let dim = self.dim.max(1);
        let mut sims: Vec<(f32, f32)> = self
            .labelled
            .chunks_exact(dim)
            .zip(&self.labelled_complexity)
            .map(|(row, &c)| (dot(row, embedding), c))
            .collect();
        sims.sort_by(|a, b| b.0.total_cmp(&a.0));
        sims.truncate(LABEL_NEIGHBOURS);
        let (sum, weight) = sims.iter().fold((0f32, 0f32), |(s, w), &(sim, c)| {
            let v = sim.max(0.0).powi(4);
            (s + v * c, w + v)
        });
        let nearest = sims.first().map_or(f32::NEG_INFINITY, |s| s.0);
        (nearest, (weight > 0.0).then(|| sum / weight))
    }

    /// How much of model `model`'s learned P(success) to keep for a prompt with these domain probabilities:
    /// the domains' evidence weights n / (n + [`EVIDENCE_HALF`]), mixed by probability (1 when the router
    /// has no evidence counts).
    pub fn coverage(&self, model: usize, domain_probs: &[f32]) -> f32 {
        let Some(row) = self.evidence.get(model * self.domains..(model + 1) * self.domains) else {
            return 1.0;
        };
        let trust = |n: f32| n / (n + EVIDENCE_HALF);
        if domain_probs.len() != self.domains {
            return row.iter().map(|&n| trust(n)).sum::<f32>() / row.len().max(1) as f32;
        }
        row.iter().zip(domain_probs).map(|(&n, p)| p * trust(n)).sum::<f32>().clamp(0.0, 1.0)
    }

    fn calibrated(&self, s: f32) -> f32 {
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

    /// Model `model`'s prior P(success) for a prompt with these domain probabilities, `input_tokens` and
    /// `complexity`.
    pub fn prior(&self, model: usize, domain_probs: &[f32], input_tokens: f64, complexity: f32) -> f32 {
        let p = self.domain_prior(model, domain_probs);
        let slope = self.length_slopes.get(model).copied().unwrap_or(0.0);
        sigmoid(
            logit(p)
                + slope * self.centred_length(input_tokens)
                + self.difficulty_slope * (complexity - self.typical_complexity(domain_probs)),
        )
    }

    /// The mean complexity of training prompts with these domain probabilities.
    pub fn typical_complexity(&self, domain_probs: &[f32]) -> f32 {
        if self.domain_complexity.len() != self.domains || domain_probs.len() != self.domains {
            return self.base_complexity;
        }
        self.domain_complexity.iter().zip(domain_probs).map(|(c, p)| c * p).sum()
    }

    /// The complexity a prompt of `input_tokens` tokens falls back on.
    pub fn fallback_complexity(&self, input_tokens: f64) -> f32 {
        (self.base_complexity + self.complexity_slope * self.centred_length(input_tokens)).clamp(0.0, 1.0)
    }

    fn centred_length(&self, input_tokens: f64) -> f32 {
        (input_tokens.max(0.0).ln_1p() as f32 - self.length_mean).clamp(-4.0, 4.0)
    }
}

/// Cosine of `embedding` to the nearest of `centroids` (row-major, `dim` wide); −∞ without centroids.
fn nearest(centroids: &[f32], dim: usize, embedding: &[f32]) -> f32 {
    centroids.chunks_exact(dim.max(1)).map(|c| dot(c, embedding)).fold(f32::NEG_INFINITY, f32::max)
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
            difficulty_slope: -4.0,
            evidence: vec![100.0, 0.0, 20.0, 20.0],
            labelled: vec![0.0, 1.0, 0.6, 0.8],
            labelled_complexity: vec![0.9, 0.1],
            domain_complexity: Vec::new(),
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
        assert!((f.prior(0, &[0.5, 0.5], typical, 0.4) - 0.7).abs() < 1e-5);
        assert!((f.prior(1, &[1.0, 0.0], typical, 0.4) - 0.3).abs() < 1e-5);
        // A harder prompt than the base rate lowers every model's prior, an easier one raises it.
        assert!(f.prior(0, &[0.5, 0.5], typical, 0.8) < 0.5 && f.prior(0, &[0.5, 0.5], typical, 0.1) > 0.85);
        // Centred on the domain's typical complexity: a typical prompt of a hard domain keeps the domain prior.
        let by_domain = Familiarity { domain_complexity: vec![0.2, 0.8], ..familiarity() };
        assert!((by_domain.prior(1, &[0.0, 1.0], typical, 0.8) - 0.7).abs() < 1e-5);
        assert!(by_domain.prior(1, &[0.0, 1.0], typical, 0.4) > 0.9);
        assert!((f.domain_prior(1, &[]) - 0.5).abs() < 1e-6);
        // Longer prompts: model 1 (negative slope) loses, model 0 (no slope) does not; complexity rises.
        let long = 6f64.exp() - 1.0;
        assert!(f.prior(1, &[1.0, 0.0], long, 0.4) < 0.3 && (f.prior(0, &[0.5, 0.5], long, 0.4) - 0.7).abs() < 1e-5);
        assert!((f.fallback_complexity(typical) - 0.4).abs() < 1e-5);
        assert!((f.fallback_complexity(long) - 0.7).abs() < 1e-5);
    }

    #[test]
    fn coverage_follows_the_evidence_in_the_prompts_domains() {
        let f = familiarity();
        // Model 0: 100 observations in domain 0, none in domain 1.
        assert!((f.coverage(0, &[1.0, 0.0]) - 100.0 / 120.0).abs() < 1e-6);
        assert_eq!(f.coverage(0, &[0.0, 1.0]), 0.0);
        assert!((f.coverage(1, &[0.5, 0.5]) - 0.5).abs() < 1e-6);
        let none = Familiarity { evidence: Vec::new(), ..familiarity() };
        assert_eq!(none.coverage(0, &[0.0, 1.0]), 1.0);
    }

    #[test]
    fn labelled_prompts_make_complexity_familiar_but_not_outcomes() {
        let f = familiarity();
        // Along the second axis: far from every training centroid, on a complexity-label centroid.
        assert_eq!(f.ood(&[0.0, 1.0]), 1.0);
        assert_eq!(f.place(&[0.0, 1.0], 0.3).complexity_ood, 0.0);
        let none = Familiarity { labelled: Vec::new(), labelled_complexity: Vec::new(), ..familiarity() };
        assert_eq!(none.place(&[0.0, 1.0], 0.3).complexity_ood, 1.0);
        assert_eq!(none.place(&[0.0, 1.0], 0.3).complexity, 0.3);
    }

    #[test]
    fn labels_speak_for_complexity_where_they_are_closer_than_the_training_prompts() {
        let f = familiarity();
        // On the first labelled prompt (cosine 1; the training centroid is at cosine 0): its neighbours' vote,
        // 0.9 weighted 1 against 0.1 weighted 0.8^4.
        let vote = (0.9 + 0.1 * 0.8f32.powi(4)) / (1.0 + 0.8f32.powi(4));
        let on_label = f.place(&[0.0, 1.0], 0.3).complexity;
        assert!((on_label - vote).abs() < 1e-4, "{on_label}");
        // On the training centroid, far closer to it than to any label: the head's estimate.
        assert!((f.place(&[1.0, 0.0], 0.3).complexity - 0.3).abs() < 1e-3);
    }
}
