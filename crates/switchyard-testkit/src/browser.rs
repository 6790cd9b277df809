//! A real headless Chromium, driven over WebDriver by chromedriver (Debian's `chromium` and `chromium-driver`,
//! which `scripts/test.sh` installs): chromedriver on a free loopback port, a fresh browser profile in a
//! temporary folder, both gone when the [`Browser`] is closed or dropped. Absent binaries fail the test with
//! what to install; they are never skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::json;

/// A browser session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// The first of `candidates` that exists, or `env`'s value.
fn binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    std::env::var_os(env).map(PathBuf::from).or_else(|| candidates.iter().map(PathBuf::from).find(|p| p.is_file()))
}

/// Starts chromedriver and a headless Chromium with a `width` × `height` window.
pub async fn start(width: u32, height: u32) -> Browser {
    let chromedriver = binary("CHROMEDRIVER", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]).expect(
        "chromedriver is missing: install Debian's chromium and chromium-driver (scripts/test.sh --setup-only does)",
    );
    let chromium = binary("CHROMIUM", &["/usr/bin/chromium", "/usr/lib/chromium/chromium"]).expect(
        "chromium is missing: install Debian's chromium and chromium-driver (scripts/test.sh --setup-only does)",
    );
    let profile = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    for _ in 0..10 {
        // A port the system just gave out and nobody holds (a clash with another process is then unlikely, and
        // caught below: our chromedriver exits, or is not the one answering).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromedriver.display()));
        let url = format!("http://127.0.0.1:{port}");
        // Ready when /status answers; gone at once when the port was taken.
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = loop {
            if driver.try_wait().unwrap().is_some() {
                break false;
            }
            if http.get(format!("{url}/status")).send().await.is_ok_and(|r| r.status().is_success()) {
                break true;
            }
            assert!(Instant::now() < deadline, "chromedriver on port {port} did not answer within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Answering, and still running (a chromedriver that could not bind exits at once).
        if !ready || driver.try_wait().unwrap().is_some() {
            let _ = driver.kill();
            continue;
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start {}: {e}", chromium.display()));
        return Browser { client, driver, _profile: profile };
    }
    panic!("chromedriver did not start on any of 10 free loopback ports");
}

impl Browser {
    /// Ends the session (the browser exits) and stops chromedriver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
