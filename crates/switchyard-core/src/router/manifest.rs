//! A router's manifest (`manifest.json`): everything about a trained router that is not a weight (its
//! encoder, models and costs, predictor kind, default policy, training data and validation metrics, and the
//! records of models added after training), the artifact's format constants, and [`RouterError`], why a
//! router cannot be loaded or saved. Plain data: it names no other part of the router.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cost::ModelCost;
use crate::policy::Policy;
use crate::predictor::PredictorKind;

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
    /// The encoder's arithmetic when it is not f32 (`"int8"`): int8 embeddings route differently from f32
    /// ones for a few percent of prompts (`bench --compare-precision`), so a router is served at the precision
    /// it was trained at. Absent: f32, as every router before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

impl EncoderInfo {
    /// The precision's name, `"f32"` when none is recorded.
    pub fn precision_name(&self) -> &str {
        self.precision.as_deref().unwrap_or("f32")
    }
}

impl std::fmt::Display for EncoderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (dim {}, max_tokens {}, precision {}",
            self.id,
            self.dim,
            self.max_tokens,
            self.precision_name()
        )?;
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
    /// SHA-256 of `router.safetensors`, written by [`Router::save`](crate::Router::save) and checked by
    /// [`Router::load`](crate::Router::load), so a manifest is never read with another save's weights.
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
    #[error("router was trained with encoder {expected} but the running encoder is {found}; retrain the router with this encoder, or run the router's (model files, encoder.max_tokens and encoder.precision / --precision; a running server takes a new encoder only on restart)")]
    EncoderMismatch {
        /// The router's encoder.
        expected: Box<EncoderInfo>,
        /// The running encoder.
        found: Box<EncoderInfo>,
    },
}

/// What an added model's estimates rest on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileBasis {
    /// Outcomes of the model on a labelled eval set.
    Eval,
    /// Published per-domain accuracies only: every estimate is the model's prior.
    Prior,
    /// An eval set, with published priors for the domains it says little about.
    EvalAndPrior,
}

impl std::fmt::Display for ProfileBasis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eval => "eval",
            Self::Prior => "prior",
            Self::EvalAndPrior => "eval+prior",
        })
    }
}

/// The manifest's record of a model added by `switchyard profile add` (or merged by `profile update`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedProfile {
    /// The model.
    pub model: String,
    /// What its estimates rest on.
    pub basis: ProfileBasis,
    /// Eval rows (outcomes of this model) it was fitted on.
    pub rows: usize,
    /// Distinct prompts among them.
    pub prompts: usize,
    /// The eval files, with their digests (what `profile update` merges new rows into).
    #[serde(default)]
    pub files: Vec<FileFingerprint>,
    /// Published P(success) per domain given as priors (`--prior`), in the order given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priors: Vec<(String, f64)>,
    /// Cross-validated log loss of the fitted predictor output on the eval prompts (absent without eval rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cv_log_loss: Option<f64>,
    /// Log loss of a constant (the eval set's mean) on the same folds, for comparison.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant_log_loss: Option<f64>,
    /// Predictor members (0 for a single predictor) in which the model has a direction of its own over the
    /// features, because the shared representation missed what its eval rows say (see `ModelHead::Widened`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub widened: Vec<usize>,
    /// Seconds since the Unix epoch when it was added.
    pub added_unix: u64,
}
