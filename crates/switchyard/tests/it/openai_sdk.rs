//! The official `openai` Python SDK against a real `switchyard serve` process: a routed call, a streamed
//! call (with and without usage), typed errors and a key's rate limit, with unchanged client code except
//! `base_url` (`tests/openai_sdk_client.py`). The SDK is installed from PyPI into a virtual environment under
//! the target folder the first time.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;
use switchyard_testkit::upstream;

/// A Python with the package `spec` (importable as `import`): a virtual environment `venv` made (once) under
/// the target folder and the package installed from PyPI.
pub(crate) fn python_with(venv: &str, import: &str, spec: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(venv);
    let python = venv.join("bin").join("python");
    let ready = || Command::new(&python).args(["-c", &format!("import {import}")]).status().is_ok_and(|s| s.success());
    if !ready() {
        let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 is needed");
        assert!(status.success(), "cannot create a virtual environment at {}", venv.display());
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec])
            .status()
            .unwrap();
        assert!(status.success() && ready(), "cannot install {spec} from PyPI");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_against_serve() {
    switchyard_testkit::model_files();
    let python = tokio::task::spawn_blocking(|| python_with("openai-venv", "openai", "openai>=1.40,<3")).await.unwrap();
    let (upstream_addr, _fake) = upstream::start().await;
    // A second key, limited to two requests a minute: the SDK sees the third refused as a typed error.
    let limited: String = sha2::Sha256::digest(b"sk-limited").iter().map(|b| format!("{b:02x}")).collect();
    let keys = format!("[[keys]]\nname = \"sdk-limited\"\nkey_sha256 = \"{limited}\"\nrpm = 2\n");
    let server =
        switchyard_testkit::serve::spawn_with(crate::BIN, "client_keys = [\"sk-test\"]", &keys, upstream_addr).await;

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_sdk_client.py");
    let base_url = format!("{}/v1", server.base);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(base_url).arg("sk-test").arg("sk-limited").output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    for check in [
        "routed call ok",
        "streamed call ok",
        "streamed usage ok",
        "unknown model ok",
        "bad key ok",
        "rate limit ok",
        "models ok",
    ] {
        assert!(stdout.contains(check), "{check} missing:\n{stdout}");
    }
}
