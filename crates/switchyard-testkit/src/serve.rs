//! A real `switchyard serve` process for end-to-end tests, configured with every default-router model behind
//! one upstream, and killed when dropped. It listens on port 0 (the system picks a free port, held by the
//! server from the start); the address is read from the line the server logs when it is ready.

use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

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

    /// Waits until the process has exited, for up to `limit`; its exit status, or `None` if it still runs.
    pub async fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `switchyard serve` (the binary at `bin`, a test's `env!("CARGO_BIN_EXE_switchyard")`) with `server`
/// (lines of the `[server]` table) and every model of the default router at `upstream`, and waits until
/// `/healthz` answers.
pub async fn spawn(bin: &str, server: &str, upstream: SocketAddr) -> ServeProcess {
    spawn_with(bin, server, "", upstream).await
}

/// As [`spawn`], with more config tables (e.g. `[router]`, or `[[models]]` of the router's models, which then
/// replace the default ones) after `[server]`. Without a `[router]` table the bundled default router is served.
pub async fn spawn_with(bin: &str, server: &str, tables: &str, upstream: SocketAddr) -> ServeProcess {
    spawn_with_env(bin, server, tables, upstream, &[]).await
}

/// As [`spawn_with`], with environment variables set for the server (e.g. an upstream's API key).
pub async fn spawn_with_env(
    bin: &str,
    server: &str,
    tables: &str,
    upstream: SocketAddr,
    env: &[(&str, &str)],
) -> ServeProcess {
    let router_path = crate::default_router();
    let router = Router::load(&router_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.sqlite");
    let mut config = format!("[log]\npath = {log:?}\n[server]\nlisten = \"127.0.0.1:0\"\n{server}\n{tables}\n");
    if !tables.lines().any(|l| l.trim() == "[router]") {
        config.push_str(&format!("[router]\npath = {:?}\n", router_path.display().to_string()));
    }
    // Every model of the router at the stand-in's OpenAI side, unless `tables` declares it.
    for m in router.manifest.models.iter().filter(|m| !tables.contains(&format!("name = \"{}\"", m.model))) {
        config.push_str(&format!("[[models]]\nname = \"{}\"\nbase_url = \"http://{upstream}/v1\"\n", m.model));
    }
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let child = crate::cli(bin)
        .args(["serve", "--config", config_path.to_str().unwrap()])
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut process = ServeProcess { child, base: String::new(), dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    process.base = loop {
        let log = process.log();
        if let Some(at) = log.find("switchyard listening on http://") {
            let rest = &log[at + "switchyard listening on ".len()..];
            break rest.split_whitespace().next().unwrap_or_default().to_string();
        }
        if let Some(status) = process.child.try_wait().unwrap() {
            panic!("serve exited ({status}) before listening:\n{log}");
        }
        assert!(Instant::now() < deadline, "serve did not log its address within 120 s:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let client = reqwest::Client::new();
    while !client.get(format!("{}/healthz", process.base)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "serve did not become ready:\n{}", process.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    process
}
