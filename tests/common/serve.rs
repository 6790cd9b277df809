//! A real `switchyard serve` process for end-to-end tests, configured with every default-router model behind
//! one upstream, and killed when dropped.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use switchyard_core::Router;

/// A running server.
pub struct ServeProcess {
    /// The process.
    pub child: Child,
    /// Its base URL, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    /// Holds the config file, the server's log and its decision log (`decisions.sqlite`).
    pub dir: tempfile::TempDir,
}

impl ServeProcess {
    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `switchyard serve` with `server` (lines of the `[server]` table) and every model of the default
/// router at `upstream`, and waits until `/healthz` answers.
pub async fn spawn(server: &str, upstream: SocketAddr) -> ServeProcess {
    spawn_with(server, "", upstream).await
}

/// As [`spawn`], with more config tables (e.g. `[router]`) after `[server]`.
pub async fn spawn_with(server: &str, tables: &str, upstream: SocketAddr) -> ServeProcess {
    super::model_files();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let router = Router::load(&super::workspace_root().join("models/default")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.sqlite");
    let mut config = format!("[log]\npath = {log:?}\n[server]\nlisten = \"127.0.0.1:{port}\"\n{server}\n{tables}\n");
    for m in &router.manifest.models {
        config.push_str(&format!("[[models]]\nname = \"{}\"\nbase_url = \"http://{upstream}/v1\"\n", m.model));
    }
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config", config_path.to_str().unwrap()])
        .current_dir(super::workspace_root())
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let process = ServeProcess { child, base: format!("http://127.0.0.1:{port}"), dir };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if client.get(format!("{}/healthz", process.base)).send().await.is_ok_and(|r| r.status().is_success()) {
            return process;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("serve did not become ready:\n{}", process.log());
}
