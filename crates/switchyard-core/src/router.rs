//! A trained router: its artifact on disk (`manifest.json` + `router.safetensors`) and what it predicts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::addition::{AddedProfile, ProfileBasis};
use crate::cost::ModelCost;
use crate::familiarity::Familiarity;
use crate::policy::{Decision, ModelEstimate, Policy, PolicyError};
use crate::predictor::{logit, sigmoid, Dense, Heads, Platt, Predictor, PredictorKind};

/// The artifact format this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;
/// The manifest's file name inside a router folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The weights' file name inside a router folder.
pub const WEIGHTS_FILE: &str = "router.safetensors";

/// The encoder a router was trained with; embeddings from any other encoder are meaningless to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderInfo {
    /// The encoder's id (model and weights digest).
    pub id: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Truncation used when embedding training prompts.
    pub max_tokens: usize,
    /// SHA-256 of the encoder's tokenizer and config files (canonical JSON), when known; routers written
    /// before it was recorded have none and are not checked on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_sha256: Option<String>,
}

impl std::fmt::Display for EncoderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (dim {}, max_tokens {}", self.id, self.dim, self.max_tokens)?;
        if let Some(files) = &self.files_sha256 {
            write!(f, ", tokenizer/config sha256 {}", &files[..files.len().min(12)])?;
        }
        f.write_str(")")
    }
}

/// One input file of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// The path as given.
    pub path: String,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Where a router's knowledge comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The log files.
    pub files: Vec<FileFingerprint>,
    /// SHA-256 over the files' digests: one value naming the training data.
    pub fingerprint: String,
    /// Rows used (training and validation).
    pub rows: usize,
    /// Distinct prompts used.
    pub prompts: usize,
    /// Bad rows skipped.
    pub skipped_rows: usize,
    /// Rows left out because their split is "test".
    pub test_rows_excluded: usize,
    /// When the logs had more prompts than training's cross-validation sample: how many prompts the predictor
    /// was chosen and calibrated on (it was then refitted on all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_sample: Option<usize>,
}

/// A routing utility measured on the validation folds, with its bootstrap 95% interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Utility {
    /// `"aiq"` (RouterBench, many models) or `"apgr"` (RouteLLM, two models).
    pub metric: String,
    /// The value on all validation prompts.
    pub value: f64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
}

/// Cross-validated metrics of one candidate predictor: every training prompt predicted by the candidate
/// fitted on the other folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateMetrics {
    /// The predictor kind.
    pub kind: PredictorKind,
    /// Its hyper-parameters, in words (e.g. `alpha=3`).
    #[serde(default)]
    pub config: String,
    /// Routing utility on the validation folds, the selection criterion; absent when the logs cannot
    /// measure one (fewer than two models observed on the same prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utility: Option<Utility>,
    /// Mean binary cross-entropy against the scores (and the Bradley–Terry loss of pairwise rows); lower is
    /// better; breaks ties in utility.
    pub log_loss: f64,
    /// Mean squared error of P against the scores.
    pub brier: f64,
    /// Expected calibration error over 10 equal-width bins, before Platt scaling.
    pub ece_raw: f64,
    /// Expected calibration error of the router's final probabilities: after Platt scaling (measured by
    /// two-fold cross-fitting on the validation prompts) when scaling helps, else the raw ECE.
    pub ece: f64,
    /// Area under the ROC curve, successes (score >= 0.5) against failures.
    pub auc: f64,
}

/// How well a router predicts output lengths, cross-validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthReport {
    /// Prompts with a token count.
    pub prompts: usize,
    /// Mean absolute error of ln(1 + output tokens), out of fold.
    pub mae_log: f64,
    /// The same for each model's mean output length (what a router without length prediction uses).
    pub mean_only_mae_log: f64,
    /// The ridge penalty chosen.
    pub lambda: f64,
}

/// Everything about a router that is not a weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Artifact format version.
    pub format_version: u32,
    /// The encoder it was trained with.
    pub encoder: EncoderInfo,
    /// The models it routes between, with their costs, in predictor output order.
    pub models: Vec<ModelCost>,
    /// Domain labels of the domain head (empty: no domain head).
    pub domains: Vec<String>,
    /// The predictor in use and its hyper-parameters.
    pub predictor: PredictorKind,
    /// Hidden units of the MLP (the predictor's, or an ensemble member's); 0 without one.
    #[serde(default)]
    pub hidden: usize,
    /// Latent dimension of the matrix-factorisation predictor (the predictor's, or an ensemble member's); 0
    /// without one.
    #[serde(default)]
    pub latent: usize,
    /// The members of an ensemble predictor, in order (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<PredictorKind>,
    /// The policy used when a request names none.
    pub default_policy: Policy,
    /// The training data.
    pub training: TrainingInfo,
    /// Cross-validated metrics of every candidate predictor setting, the chosen one first.
    pub validation: Vec<CandidateMetrics>,
    /// Cross-validated accuracy of the per-prompt output-length prediction (absent: mean lengths are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_lengths: Option<LengthReport>,
    /// Models added after training by `switchyard profile add`, with what their estimates rest on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<AddedProfile>,
    /// SHA-256 of `router.safetensors`, written by [`Router::save`] and checked by [`Router::load`], so a
    /// manifest is never read with another save's weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
    /// The switchyard version that wrote it.
    pub created_by: String,
}

/// Why a router cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A file cannot be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid JSON for a manifest.
    #[error("router manifest {path} is not valid: {message}; retrain the router with `switchyard train`")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The artifact was written by an incompatible version.
    #[error("router {path} has format version {found}, this switchyard reads version {FORMAT_VERSION}; retrain it with this version")]
    Version {
        /// The router folder.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// The weights file is unreadable or lacks a tensor of the right size.
    #[error("router weights {path}: {message}; retrain the router with `switchyard train`")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `router.safetensors` is not the file `manifest.json` was saved with: the folder changed while it was
    /// read, or a file was replaced by hand.
    #[error("router {path}: router.safetensors does not match manifest.json (weights_sha256); if a save was under way, load again; else write the router again with `switchyard train`")]
    Torn {
        /// The router folder.
        path: PathBuf,
    },
    /// The router expects a different encoder than the one running.
    #[error("router was trained with encoder {expected} but the running encoder is {found}; retrain the router with this encoder, or run the router's (model files and encoder.max_tokens)")]
    EncoderMismatch {
        /// The router's encoder.
        expected: Box<EncoderInfo>,
        /// The running encoder.
        found: Box<EncoderInfo>,
    },
}

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
        if e.id != running.id || e.dim != running.dim || e.max_tokens != running.max_tokens || files_differ {
            return Err(RouterError::EncoderMismatch {
                expected: Box::new(e.clone()),
                found: Box::new(running.clone()),
            });
        }
        Ok(())
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
