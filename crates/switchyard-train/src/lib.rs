//! Training and offline evaluation for switchyard.
//!
//! This crate owns reading labelled logs at scale into a [`Dataset`], the on-disk [`EmbeddingCache`], fitting
//! the domain and complexity heads and the per-model success predictors (logistic regression with linfa, an
//! MLP with candle-nn, kNN), their validation metrics and calibration, and knob calibration against a
//! target share or spend. It knows nothing of HTTP.

pub mod bench;
mod cache;
mod calibrate;
mod dataset;
mod heads;
pub mod metrics;
mod predictors;
mod train;

use std::path::PathBuf;

pub use cache::{default_cache_dir, EmbeddingCache};
pub use calibrate::{calibrate, outcome, Calibration, CalibrationTarget, KnobKind};
pub use dataset::{fingerprint, read_prompts, Dataset, PromptRecord, RowFilter};
pub use heads::{difficulty_targets, fit_complexity_head, fit_domain_head};
pub use predictors::{fit_knn, fit_logistic, fit_mlp, predict_rows, MlpConfig, Targets};
pub use train::{embed_texts, train, TrainOptions, MIN_PROMPTS};

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
    /// Too little data.
    #[error("only {found} distinct prompts to learn from; at least {needed} are needed (and some must be left for validation)")]
    TooFewPrompts {
        /// Prompts found.
        found: usize,
        /// Prompts needed.
        needed: usize,
    },
}
