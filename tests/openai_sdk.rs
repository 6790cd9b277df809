//! The official `openai` Python SDK against a real `switchyard serve` process: a routed call, a streamed
//! call and typed errors, with unchanged client code except `base_url`. The SDK is installed from PyPI into
//! a virtual environment under the target folder the first time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::upstream;
use switchyard_core::Router;

/// A Python with the `openai` package: a virtual environment made (once) under the target folder.
fn python_with_openai() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = venv.join("bin").join("python");
    let ready = || Command::new(&python).args(["-c", "import openai"]).status().is_ok_and(|s| s.success());
    if !ready() {
        let status = Command::new("python3").arg("-m").arg("venv").arg(&venv).status().expect("python3 is needed");
        assert!(status.success(), "cannot create a virtual environment at {}", venv.display());
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "openai>=1.40,<3"])
            .status()
            .unwrap();
        assert!(status.success() && ready(), "cannot install the openai package from PyPI");
    }
    python
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_against_serve() {
    common::model_files();
    let python = tokio::task::spawn_blocking(python_with_openai).await.unwrap();
    let (upstream_addr, _fake) = upstream::start().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let router = Router::load(&common::workspace_root().join("models/default")).unwrap();
    let mut config = format!("[server]\nlisten = \"127.0.0.1:{port}\"\nclient_keys = [\"sk-test\"]\n");
    for m in &router.manifest.models {
        config.push_str(&format!("[[models]]\nname = \"{}\"\nbase_url = \"http://{upstream_addr}/v1\"\n", m.model));
    }
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--config", config_path.to_str().unwrap()])
            .current_dir(common::workspace_root())
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Ready when /healthz answers.
    let client = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..300 {
        if client.get(&health).send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(up, "serve did not become ready:\n{}", server_log());

    let script = common::workspace_root().join("tests/openai_sdk_client.py");
    let base_url = format!("http://127.0.0.1:{port}/v1");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python).arg(script).arg(base_url).arg("sk-test").output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK checks failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server_log()
    );
    for check in ["routed call ok", "streamed call ok", "unknown model ok", "bad key ok", "models ok"] {
        assert!(stdout.contains(check), "{check} missing:\n{stdout}");
    }
}
