//! Writing a router folder: the weights, then the manifest with their digest, each synced to disk, into a new
//! folder that takes the old one's place by rename (with whatever else the old folder held), so that a reader
//! sees the old router or the new one, never half of each.

use std::path::Path;

use crate::router::manifest::{RouterError, MANIFEST_FILE, WEIGHTS_FILE};
use crate::router::Router;

use super::sha256_hex;
use super::tensors::Tensors;

impl Router {
    /// Writes the router into `dir` atomically: `manifest.json` and `router.safetensors` go into a new folder
    /// beside `dir` (with any other files `dir` holds), which then takes `dir`'s place by rename. A server
    /// reloading `dir` meanwhile reads the old router or the new one, never half of each (for an instant
    /// there may be no folder: that reload fails, and a server keeps the router it has).
    pub fn save(&self, dir: &Path) -> Result<(), RouterError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RouterError::Io { path, source }
        };
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io(parent))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "router".into());
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let stamp = format!("{}-{nanos}", std::process::id());
        let fresh = parent.join(format!(".{name}.writing-{stamp}"));
        std::fs::create_dir(&fresh).map_err(io(&fresh))?;
        let written = self.write_files(&fresh).and_then(|()| carry_other_files(dir, &fresh));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&fresh);
            return Err(e);
        }
        if dir.exists() {
            let old = parent.join(format!(".{name}.old-{stamp}"));
            std::fs::rename(dir, &old).map_err(io(dir))?;
            if let Err(source) = std::fs::rename(&fresh, dir) {
                let _ = std::fs::rename(&old, dir);
                let _ = std::fs::remove_dir_all(&fresh);
                return Err(RouterError::Io { path: dir.to_path_buf(), source });
            }
            let _ = std::fs::remove_dir_all(&old);
        } else {
            std::fs::rename(&fresh, dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Writes `manifest.json` and `router.safetensors` into an existing folder, each synced to disk.
    fn write_files(&self, dir: &Path) -> Result<(), RouterError> {
        let weights_path = dir.join(WEIGHTS_FILE);
        let weights_err =
            |e: candle_core::Error| RouterError::Weights { path: weights_path.clone(), message: e.to_string() };
        let tensors = Tensors::of(self).map_err(weights_err)?;
        candle_core::safetensors::save(&tensors, &weights_path).map_err(weights_err)?;

        let weights =
            std::fs::read(&weights_path).map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        let mut manifest = self.manifest.clone();
        manifest.weights_sha256 = Some(sha256_hex(&weights));
        let manifest_path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_string_pretty(&manifest)
            .map_err(|e| RouterError::Manifest { path: manifest_path.clone(), message: e.to_string() })?;
        std::fs::write(&manifest_path, json + "\n")
            .map_err(|source| RouterError::Io { path: manifest_path.clone(), source })?;
        // The safetensors writer makes its file readable by its owner only; the weights get the manifest's
        // permissions (the umask's), so a service user can read a router another user trained.
        std::fs::metadata(&manifest_path)
            .and_then(|m| std::fs::set_permissions(&weights_path, m.permissions()))
            .map_err(|source| RouterError::Io { path: weights_path.clone(), source })?;
        for path in [&manifest_path, &weights_path] {
            std::fs::File::open(path)
                .and_then(|f| f.sync_all())
                .map_err(|source| RouterError::Io { path: path.clone(), source })?;
        }
        Ok(())
    }
}

/// Copies what `from` holds besides the router's own two files into `to` (folders too), so that a save
/// does not lose a user's notes beside the router. A missing `from` holds nothing.
fn carry_other_files(from: &Path, to: &Path) -> Result<(), RouterError> {
    copy_tree(from, to, true)
}

/// Copies folder `from` into `to`, leaving out the router's own files at the top (`top`).
fn copy_tree(from: &Path, to: &Path, top: bool) -> Result<(), RouterError> {
    let io = |path: &Path, source| RouterError::Io { path: path.to_path_buf(), source };
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        if top && (name == MANIFEST_FILE || name == WEIGHTS_FILE) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().map_err(|e| io(&source, e))?.is_dir() {
            std::fs::create_dir(&target).map_err(|e| io(&target, e))?;
            copy_tree(&source, &target, false)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| io(&source, e))?;
        }
    }
    Ok(())
}
