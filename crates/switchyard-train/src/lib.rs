//! Training and offline evaluation for switchyard.
//!
//! This crate owns reading labelled logs at scale into a [`Dataset`], the on-disk [`EmbeddingCache`],
//! grouped K-fold cross-validation by normalised prompt text, fitting the domain and complexity heads
//! (cross-fitted, so their outputs never leak a prompt's own labels) and the per-model success predictors
//! (logistic regression, matrix factorisation / IRT, an MLP, similarity-weighted kNN, their ensemble), the
//! choice among them by routing utility, calibration, knob calibration against a target share or spend, and
//! offline benchmarking (`bench`). It knows nothing of HTTP.

mod addition;
pub mod bench;
mod cache;
mod calibrate;
mod complexity_labels;
mod dataset;
mod failures;
mod familiarity;
mod folds;
mod heads;
mod lbfgs;
mod lengths;
pub mod metrics;
mod predictors;
mod profiles;
mod scaling;
mod select;
mod targets;
mod train;
mod utility;

use std::path::PathBuf;

pub use addition::{
    embed_eval, fit_profile, representative, strata, EvalPrompt, EvalRows, Prices, ProfileFit, ProfileRequest, Stratum,
    MIN_PROFILE_PROMPTS,
};
pub use cache::{default_cache_dir, EmbeddingCache};
pub use calibrate::{calibrate, outcome, Calibration, CalibrationTarget, KnobKind};
pub use complexity_labels::{ComplexityLabels, LabelError};
pub use dataset::{fingerprint, read_prompts, text_hash, Dataset, PromptRecord, RowFilter, MAX_IPS_WEIGHT};
pub use failures::{
    failure_report, Band, FailureGroup, FailureOptions, FailureReport, GroupKey, Interval, LoggedOutcome,
};
pub use familiarity::{fit_familiarity, FamiliarityInputs, MAX_CENTROIDS};
pub use folds::Folds;
pub use heads::{cross_fit_heads, difficulty_targets, fit_complexity_head, fit_domain_head};
pub use lengths::{fit_lengths, LengthTargets, OutputLengths, MIN_LENGTH_PROMPTS};
pub use predictors::{
    fit_knn, fit_logistic, fit_mf, fit_mlp, knn_memory, predict_rows, Config, KnnConfig, MlpConfig, MAX_KNN_MEMORY,
};
pub use profiles::{baselines, Profile, Profiles};
pub use targets::{PairTarget, Targets};
pub use train::{embed_texts, train, TrainOptions, MIN_PROMPTS, SELECTION_PROMPTS};
pub use utility::UtilityData;

/// Why training (or reading its inputs) failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The labelled logs are unreadable or have a bad row.
    #[error(transparent)]
    Logs(#[from] switchyard_core::LogError),
    /// The catalog is invalid or does not cover the logs.
    #[error(transparent)]
    Catalog(#[from] switchyard_core::CatalogError),
    /// The encoder failed.
    #[error(transparent)]
    Encoder(#[from] switchyard_encoder::EncoderError),
    /// A tensor operation failed.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// A model could not be fitted.
    #[error("fitting failed: {0}")]
    Fit(String),
    /// A model has neither prices nor observed costs.
    #[error("no cost known for model {model:?}: give a catalog with its prices (--catalog) or logs with cost_usd")]
    NoCost {
        /// The model.
        model: String,
    },
    /// Output-length prediction was asked for but the logs have no token counts.
    #[error("output-length prediction needs logs with output_tokens, and none of the rows has them: add output_tokens to the logs or use --output-tokens mean")]
    NoTokenCounts,
    /// A complexity-labels file is malformed.
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// A profiles file is malformed.
    #[error("model profiles {path}: {message}")]
    Profiles {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A model cannot be added or updated as asked (`switchyard profile`).
    #[error("{0}")]
    Profile(String),
    /// More folds asked for than there are distinct prompts.
    #[error("cannot split {prompts} distinct prompts into {folds} folds: lower --folds (at least 2) or add prompts")]
    TooFewFolds {
        /// Folds asked for.
        folds: usize,
        /// Distinct prompt texts.
        prompts: usize,
    },
    /// Too little data.
    #[error("only {found} distinct prompts to learn from; at least {needed} are needed")]
    TooFewPrompts {
        /// Prompts found.
        found: usize,
        /// Prompts needed.
        needed: usize,
    },
}
