//! A trained router and what it predicts: the [`Router`] (heads, success predictor, calibration, familiarity
//! and output lengths) turning one prompt embedding into a [`Prediction`] and, under a policy, a decision
//! ([`RouteReport`]). Its parts live in submodules: the manifest's plain data (`manifest`), the artifact on
//! disk (`artifact`), and the models it routes between, added and removed without retraining (`roster`).

mod artifact;
mod manifest;
mod roster;
#[cfg(test)]
pub(crate) mod test_support;

use serde::{Deserialize, Serialize};

use crate::familiarity::Familiarity;
use crate::policy::{Decision, ModelEstimate, Policy, PolicyError};
use crate::predictor::{logit, sigmoid, Dense, Heads, Platt, Predictor};

pub use manifest::{
    AddedProfile, CandidateMetrics, EncoderInfo, FileFingerprint, LengthReport, Manifest, ProfileBasis, RouterError,
    TrainingInfo, Utility, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE,
};
pub use roster::{ModelHead, ModelProfile, NewModel, RosterError};

/// A domain label with its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainScore {
    /// The label.
    pub domain: String,
    /// Its probability.
    pub p: f64,
}

/// What a router predicts for one prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Difficulty in [0, 1].
    pub complexity: f64,
    /// How far the prompt lies from the training prompts, calibrated to [0, 1] (see
    /// [`crate::Familiarity`]): the share of held-out training prompts closer to the training data.
    #[serde(default)]
    pub ood: f64,
    /// How far the estimates were shrunk toward the models' priors because of `ood` (0: not at all).
    #[serde(default)]
    pub shrink: f64,
    /// Domain probabilities, most likely first.
    pub domains: Vec<DomainScore>,
    /// Per-model P(success) and expected cost, in the router's model order.
    pub models: Vec<ModelEstimate>,
}

/// A trained router: heads, success predictor, per-model calibration and costs.
#[derive(Debug, Clone, PartialEq)]
pub struct Router {
    /// Everything that is not a weight.
    pub manifest: Manifest,
    /// Domain and complexity heads.
    pub heads: Heads,
    /// The success predictor.
    pub predictor: Predictor,
    /// Per-model Platt scaling, in model order.
    pub calibration: Vec<Platt>,
    /// Where the training prompts lie and the priors used far from them (absent: no shrinkage).
    pub familiarity: Option<Familiarity>,
    /// Features → each model's ln(1 + output tokens) for the prompt (absent: the models' mean output
    /// lengths are used).
    pub lengths: Option<Dense>,
}

impl Router {
    /// Predicts domains, complexity and each model's P(success) and expected cost for one embedding.
    /// `input_tokens` is the prompt's (estimated) LLM input tokens, for price-based costs.
    /// Far from the training data (see [`Familiarity`]), P(success) and complexity are shrunk toward the
    /// priors.
    pub fn predict(&self, embedding: &[f32], input_tokens: f64) -> Prediction {
        let features = self.heads.features(embedding);
        let raw = self.predictor.predict(&features, embedding);
        let lengths = self.lengths.as_ref().map(|l| l.forward(&features));
        let domain_probs = self.heads.domain_probs(embedding);
        let mut complexity = self.heads.complexity(embedding);
        let (mut ood, mut shrink, mut label_shift) = (0.0, 0.0, 0.0);
        if let Some(f) = &self.familiarity {
            let place = f.place(embedding, complexity);
            (ood, shrink) = (place.ood, Familiarity::shrink(place.ood));
            label_shift = place.complexity - complexity;
            let toward = Familiarity::shrink(place.complexity_ood);
            complexity = (1.0 - toward) * place.complexity + toward * f.fallback_complexity(input_tokens);
        }
        // An IRT router's trained models share one scale, fitted with every source and published aggregate at
        // once: their P does not lean on per-domain priors where their own evidence is thin (the joint fit
        // already placed them there). Models added later (`profile add`) do, as in every other router.
        let joint = matches!(self.predictor, Predictor::Irt(_));
        let models = self
            .manifest
            .models
            .iter()
            .zip(raw)
            .zip(&self.calibration)
            .enumerate()
            .map(|(m, ((cost, p), platt))| {
                let mut p = platt.apply(p);
                let mut prior_weight = 0.0;
                if let Some(f) = &self.familiarity {
                    // Where complexity-labelled prompts moved the complexity away from what the predictor
                    // saw, every model's P moves with it along the shared difficulty slope.
                    p = sigmoid(logit(p) + f.difficulty_slope * label_shift);
                    // Far from the data, or with little evidence of this model in the prompt's domains, the
                    // learned P leans on the model's prior.
                    let coverage = if joint && self.added_profile(&cost.model).is_none() {
                        1.0
                    } else {
                        f.coverage(m, &domain_probs)
                    };
                    prior_weight = 1.0 - (1.0 - shrink) * coverage;
                    if prior_weight > 0.0 {
                        let prior = f.prior(m, &domain_probs, input_tokens, complexity);
                        p = (1.0 - prior_weight) * p + prior_weight * prior;
                    }
                }
                let output_tokens =
                    lengths.as_ref().map_or(cost.mean_output_tokens, |l| f64::from(l[m].clamp(0.0, 12.0)).exp_m1());
                ModelEstimate {
                    model: cost.model.clone(),
                    p_success: f64::from(p),
                    expected_cost_usd: cost.cost_for(input_tokens, output_tokens),
                    input_tokens,
                    output_tokens,
                    prior_weight: f64::from(prior_weight),
                    prior_only: self.added_profile(&cost.model).is_some_and(|a| a.basis == ProfileBasis::Prior),
                }
            })
            .collect();
        let mut domains: Vec<DomainScore> = self
            .heads
            .domains
            .iter()
            .zip(domain_probs)
            .map(|(d, p)| DomainScore { domain: d.clone(), p: f64::from(p) })
            .collect();
        domains.sort_by(|a, b| b.p.total_cmp(&a.p));
        Prediction {
            complexity: f64::from(complexity),
            ood: f64::from(ood),
            shrink: f64::from(shrink),
            domains,
            models,
        }
    }

    /// Predicts and decides under `policy`.
    pub fn route(
        &self,
        embedding: &[f32],
        input_tokens: f64,
        policy: &Policy,
    ) -> Result<(Prediction, Decision), PolicyError> {
        let prediction = self.predict(embedding, input_tokens);
        let decision = policy.decide(&prediction.models)?;
        Ok((prediction, decision))
    }

    /// Fails unless embeddings from `encoder_id` with `dim` dimensions are what this router was trained on.
    pub fn check_encoder(&self, running: &EncoderInfo) -> Result<(), RouterError> {
        let e = &self.manifest.encoder;
        let files_differ = matches!((&e.files_sha256, &running.files_sha256), (Some(a), Some(b)) if a != b);
        let precision_differs = e.precision_name() != running.precision_name();
        if e.id != running.id
            || e.dim != running.dim
            || e.max_tokens != running.max_tokens
            || files_differ
            || precision_differs
        {
            return Err(RouterError::EncoderMismatch {
                expected: Box::new(e.clone()),
                found: Box::new(running.clone()),
            });
        }
        Ok(())
    }

    /// How model `name` was added, when it was added by `profile add` rather than trained.
    pub fn added_profile(&self, name: &str) -> Option<&AddedProfile> {
        self.manifest.profiles.iter().find(|p| p.model == name)
    }
}

/// Domains reported in a routing decision.
pub const TOP_DOMAINS: usize = 3;

/// Time spent on one routing decision, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Tokenizing and embedding the prompt.
    pub encode: f64,
    /// Heads, predictor and policy.
    pub decide: f64,
}

/// A routing decision as `switchyard route` prints it and `/v1/route` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    /// The chosen model.
    pub model: String,
    /// Why, in words.
    pub reason: String,
    /// Whether the chosen model meets the quality bar.
    pub meets_bar: bool,
    /// The policy applied.
    pub policy: Policy,
    /// Every eligible model, best first (the fallback order).
    pub ranking: Vec<String>,
    /// Difficulty in [0, 1].
    pub complexity: f64,
    /// How far the prompt lies from the training prompts, in [0, 1] (see [`Prediction::ood`]).
    pub ood: f64,
    /// The most likely domains.
    pub domains: Vec<DomainScore>,
    /// Per-model P(success) and expected cost.
    pub models: Vec<ModelEstimate>,
    /// Tokens the encoder read (with [CLS] and [SEP]).
    pub tokens: usize,
    /// Whether the prompt was truncated for the encoder.
    pub truncated: bool,
    /// Time spent.
    pub timing_ms: Timing,
}

impl RouteReport {
    /// Assembles the report of one decision.
    pub fn new(
        prediction: Prediction,
        decision: Decision,
        policy: Policy,
        tokens: usize,
        truncated: bool,
        timing_ms: Timing,
    ) -> Self {
        let mut domains = prediction.domains;
        domains.truncate(TOP_DOMAINS);
        let mut reason = decision.reason;
        if prediction.shrink > 0.0 {
            reason.push_str(&format!(
                "; the prompt is far from the training data (ood {:.2}), so each model's P(success) was shrunk \
                 {:.0}% toward its prior for the prompt's likely domains",
                prediction.ood,
                prediction.shrink * 100.0
            ));
        } else if let Some(chosen) = prediction.models.iter().find(|m| m.model == decision.model) {
            if chosen.prior_weight >= 0.5 {
                reason.push_str(&format!(
                    "; the logs hold little evidence of {} in the prompt's likely domains, so its P(success) \
                     rests {:.0}% on its prior there",
                    chosen.model,
                    chosen.prior_weight * 100.0
                ));
            }
        }
        Self {
            model: decision.model,
            reason,
            ood: prediction.ood,
            meets_bar: decision.meets_bar,
            policy,
            ranking: decision.ranking,
            complexity: prediction.complexity,
            domains,
            models: prediction.models,
            tokens,
            truncated,
            timing_ms,
        }
    }
}
