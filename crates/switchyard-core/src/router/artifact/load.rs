//! Reading a router folder written by [`Router::save`]: the manifest first (another format version is refused
//! before anything else is parsed), then the weights, checked against the manifest's digest of them and read
//! into a [`Router`]. A folder replaced while it was read fails that check and is read again, a few times.

use std::path::Path;

use candle_core::Device;

use crate::router::manifest::{Manifest, RouterError, FORMAT_VERSION, MANIFEST_FILE, WEIGHTS_FILE};
use crate::router::Router;

use super::sha256_hex;
use super::tensors::Weights;

impl Router {
    /// Reads a router folder written by [`Router::save`], checking the format version, that the weights are
    /// the ones the manifest was saved with, and every tensor's size. A folder replaced while it was read (a
    /// save elsewhere) is read again, a few times.
    pub fn load(dir: &Path) -> Result<Self, RouterError> {
        let mut attempt = 0;
        loop {
            match Self::load_once(dir) {
                Err(RouterError::Torn { .. }) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// One reading of the folder; [`RouterError::Torn`] when the weights do not match the manifest.
    fn load_once(dir: &Path) -> Result<Self, RouterError> {
        let manifest = read_manifest(dir)?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let bytes =
            std::fs::read(&weights_path).map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        if manifest.weights_sha256.as_ref().is_some_and(|want| *want != sha256_hex(&bytes)) {
            return Err(RouterError::Torn { path: dir.to_path_buf() });
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| RouterError::Weights { path: weights_path.clone(), message: e.to_string() })?;
        Weights { tensors, path: &weights_path }.router(manifest)
    }
}

/// Reads `manifest.json`, telling an artifact of another format version apart before parsing the rest.
fn read_manifest(dir: &Path) -> Result<Manifest, RouterError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|source| RouterError::Io { path: manifest_path.clone(), source })?;
    let version = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("format_version").and_then(serde_json::Value::as_u64));
    if let Some(found) = version.filter(|v| *v != u64::from(FORMAT_VERSION)) {
        return Err(RouterError::Version { path: dir.to_path_buf(), found: found as u32 });
    }
    serde_json::from_str(&text).map_err(|e| RouterError::Manifest { path: manifest_path, message: e.to_string() })
}
