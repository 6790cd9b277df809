//! A real Redis server for tests: `redis-server --port <free> --save ""` on loopback, killed when dropped and
//! restartable on the same port (its data is gone then, as after a crash of a Redis that does not persist).
//! Without the binary the tests fail with a message saying how to install it; they never skip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running Redis server.
pub struct Redis {
    bin: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
    child: Mutex<Option<Child>>,
    password: Option<String>,
    /// TLS only: the certificate, key and CA files.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// `redis-server`: `SWITCHYARD_REDIS_BIN`, else on the PATH, else `/usr/bin/redis-server`.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_REDIS_BIN") {
        return PathBuf::from(path);
    }
    let which = Command::new("sh").args(["-c", "command -v redis-server || command -v valkey-server"]).output().ok();
    if let Some(path) =
        which.filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    {
        if !path.is_empty() {
            return PathBuf::from(path);
        }
    }
    for candidate in ["/usr/bin/redis-server", "/usr/local/bin/redis-server"] {
        if std::path::Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "these tests need a real Redis server (redis-server): install it with `apt-get install redis-server` \
         (.ci/run does), or set SWITCHYARD_REDIS_BIN to its path"
    );
}

impl Redis {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that requires `password` (`--requirepass`); `url` carries it.
    pub fn start_with(password: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port, password)
    }

    /// Starts a server on `port` (one a test chose while nothing listened on it).
    pub fn start_on(port: u16, password: Option<&str>) -> Self {
        let url = match password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{port}"),
            None => format!("redis://127.0.0.1:{port}"),
        };
        let redis = Self {
            bin: binary(),
            port,
            url,
            child: Mutex::new(None),
            password: password.map(str::to_string),
            tls: None,
        };
        redis.start_again();
        redis
    }

    /// Starts a server that takes TLS connections only (`rediss://`), with `cert`/`key` signed by `ca`.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path, ca: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let redis = Self {
            bin: binary(),
            port,
            url: format!("rediss://127.0.0.1:{port}"),
            child: Mutex::new(None),
            password: None,
            tls: Some((cert.to_path_buf(), key.to_path_buf(), ca.to_path_buf())),
        };
        redis.start_again();
        redis
    }

    fn client(&self) -> redis::Client {
        match &self.tls {
            None => redis::Client::open(self.url.as_str()).unwrap(),
            Some((_, _, ca)) => {
                let root_cert = Some(std::fs::read(ca).unwrap());
                let certs = redis::TlsCertificates { client_tls: None, root_cert };
                redis::Client::build_with_tls(self.url.as_str(), certs).unwrap()
            }
        }
    }

    /// Starts the server (again, after [`Redis::kill`]), empty, and waits until it answers PING.
    pub fn start_again(&self) {
        let mut command = Command::new(&self.bin);
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some((cert, key, ca)) => {
                command.args(["--port", "0", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"]);
                command
                    .arg("--tls-cert-file")
                    .arg(cert)
                    .arg("--tls-key-file")
                    .arg(key)
                    .arg("--tls-ca-cert-file")
                    .arg(ca);
            }
        }
        if let Some(p) = &self.password {
            command.args(["--requirepass", p]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ping().is_err() {
            assert!(Instant::now() < deadline, "redis-server on port {} did not answer within 20 s", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> redis::RedisResult<String> {
        let client = self.client();
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        redis::cmd("PING").query(&mut conn)
    }

    /// Kills the server at once (SIGKILL) and waits for it to exit.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs a command and returns its reply as text.
    pub fn query(&self, args: &[&str]) -> String {
        let client = self.client();
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let value: redis::Value = cmd.query(&mut conn).unwrap();
        format!("{value:?}")
    }
}

impl Redis {
    /// The value of a string key, if it is set.
    pub fn get(&self, key: &str) -> Option<String> {
        let client = self.client();
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
        redis::cmd("GET").arg(key).query(&mut conn).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
