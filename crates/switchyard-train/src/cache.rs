//! An on-disk embedding cache keyed by (encoder, text), so retraining does not re-embed.
//!
//! One append-only file per encoder configuration (id and truncation) under the cache folder; each record is
//! the SHA-256 of the text (32 bytes) followed by the embedding (little-endian f32). New embeddings are
//! appended batch by batch, so an interrupted run keeps what it computed; a torn last record is ignored.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use switchyard_encoder::{embed_all, Encoder, Precision};

use crate::dataset::hex;
use crate::TrainError;

/// Texts embedded between two appends to the cache file.
const CHUNK: usize = 256;

/// The default cache folder: `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard/embeddings`,
/// else `~/.cache/switchyard/embeddings`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHYARD_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("switchyard").join("embeddings")
}

/// Embeddings of texts already seen by one encoder configuration.
#[derive(Debug)]
pub struct EmbeddingCache {
    path: PathBuf,
    dim: usize,
    map: HashMap<[u8; 32], Vec<f32>>,
}

impl EmbeddingCache {
    /// Opens (or creates) the cache file for `encoder` in `dir`.
    pub fn open(dir: &Path, encoder: &dyn Encoder) -> Result<Self, TrainError> {
        let io = |path: &Path, source| TrainError::Io { path: path.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut config = format!("{}\nmax_tokens={}", encoder.id(), encoder.max_tokens());
        // f32 keeps the key it always had, so existing caches stay valid.
        if encoder.precision() != Precision::F32 {
            config.push_str(&format!("\nprecision={}", encoder.precision().scheme()));
        }
        let name = format!("{}-d{}.bin", &hex(&Sha256::digest(config.as_bytes()))[..16], encoder.dim());
        let path = dir.join(name);
        let dim = encoder.dim();
        let mut map = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                for record in bytes.chunks_exact(32 + 4 * dim) {
                    let mut key = [0u8; 32];
                    key.copy_from_slice(&record[..32]);
                    let vector =
                        record[32..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                    map.insert(key, vector);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        Ok(Self { path, dim, map })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of cached embeddings.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Embeddings of `texts` in order: cached ones are read, the rest embedded (in batches of `batch_size`)
    /// and appended to the cache. `progress` is called with the number of texts newly embedded so far.
    pub fn embed(
        &mut self,
        encoder: &dyn Encoder,
        texts: &[&str],
        batch_size: usize,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<f32>>, TrainError> {
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(t.as_bytes()).into()).collect();
        let mut missing: Vec<usize> = Vec::new();
        let mut queued = std::collections::HashSet::new();
        for (i, key) in keys.iter().enumerate() {
            if !self.map.contains_key(key) && queued.insert(*key) {
                missing.push(i);
            }
        }
        if !missing.is_empty() {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|source| TrainError::Io { path: self.path.clone(), source })?;
            let total = missing.len();
            // Shortest first across every missing text, not only within a chunk: each forward pass then holds
            // texts of nearly one length, and little of it is padding.
            missing.sort_by_key(|&i| (texts[i].len(), i));
            for (done, chunk) in missing.chunks(CHUNK).enumerate() {
                let batch: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
                let embeddings = embed_all(encoder, &batch, batch_size)?;
                self.append(&mut file, chunk.iter().map(|&i| keys[i]).zip(embeddings.into_iter().map(|e| e.vector)))?;
                progress((done * CHUNK + chunk.len()).min(total), total);
            }
        }
        Ok(keys.iter().map(|k| self.map.get(k).cloned().unwrap_or_else(|| vec![0.0; self.dim])).collect())
    }

    fn append(
        &mut self,
        file: &mut File,
        records: impl Iterator<Item = ([u8; 32], Vec<f32>)>,
    ) -> Result<(), TrainError> {
        let mut buf = Vec::new();
        for (key, vector) in records {
            buf.extend_from_slice(&key);
            for v in &vector {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            self.map.insert(key, vector);
        }
        file.write_all(&buf).map_err(|source| TrainError::Io { path: self.path.clone(), source })
    }
}
