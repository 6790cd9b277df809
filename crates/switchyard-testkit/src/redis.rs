//! A real Redis server for tests: `redis-server --port 0 --unixsocket DIR/redis.sock --save ""`, on a unix
//! socket in its own temporary folder (no TCP port, so none can be taken from it between a kill and a
//! restart), killed when dropped and restartable on the same socket (its data is gone then, as after a crash
//! of a Redis that does not persist). A TLS server ([`Redis::start_tls`]) must listen on TCP: it tries loopback
//! ports until one binds. Without the binary the tests fail with a message saying how to install it; they
//! never skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A Redis server (running, unless made with [`Redis::stopped`] or [`Redis::kill`]ed).
pub struct Redis {
    bin: PathBuf,
    /// Holds the socket, the log and nothing else (nothing is saved).
    dir: tempfile::TempDir,
    /// TLS only: its port on 127.0.0.1 (0 for a unix-socket server).
    pub port: u16,
    /// `redis+unix:///DIR/redis.sock` (with `?pass=PASSWORD` when it wants one), or `rediss://127.0.0.1:PORT`.
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
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "these tests need a real Redis server (redis-server): install it with `apt-get install redis-server` \
         (.ci/run does), or set SWITCHYARD_REDIS_BIN to its path"
    );
}

/// How one start ended.
enum Started {
    Answers,
    /// The process exited; its log says why.
    Exited(String),
}

impl Redis {
    /// Starts a server on a unix socket and waits until it answers.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that requires `password` (`--requirepass`); `url` carries it.
    pub fn start_with(password: Option<&str>) -> Self {
        let redis = Self::stopped(password);
        redis.start_again();
        redis
    }

    /// A server not started yet: nobody listens at its `url` until [`Redis::start_again`].
    pub fn stopped(password: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let url = match password {
            Some(p) => format!("redis+unix://{}?pass={p}", socket.display()),
            None => format!("redis+unix://{}", socket.display()),
        };
        Self {
            bin: binary(),
            dir,
            port: 0,
            url,
            child: Mutex::new(None),
            password: password.map(str::to_string),
            tls: None,
        }
    }

    /// Starts a server that takes TLS connections only (`rediss://`), with `cert`/`key` signed by `ca`, on the
    /// first loopback port that binds.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path) -> Self {
        let mut redis = Self::stopped(None);
        redis.tls = Some((cert.to_path_buf(), key.to_path_buf(), ca.to_path_buf()));
        let mut last = String::new();
        for port in crate::loopback_ports() {
            redis.port = port;
            redis.url = format!("rediss://127.0.0.1:{port}");
            match redis.launch() {
                Started::Answers => return redis,
                Started::Exited(log) if log.contains("already in use") => last = log,
                Started::Exited(log) => panic!("redis-server (TLS) exited at start:\n{log}"),
            }
        }
        panic!("redis-server (TLS) found no free loopback port:\n{last}");
    }

    /// The unix socket (unused by a TLS server).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
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
        match self.launch() {
            Started::Answers => {}
            Started::Exited(log) => panic!("redis-server exited at start:\n{log}"),
        }
    }

    fn launch(&self) -> Started {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new(&self.bin);
        command.args(["--port", "0", "--save", "", "--appendonly", "no", "--dir"]).arg(self.dir.path());
        command.arg("--logfile").arg(&log);
        match &self.tls {
            None => {
                command.arg("--unixsocket").arg(self.socket()).args(["--unixsocketperm", "700"]);
            }
            Some((cert, key, ca)) => {
                command.args(["--bind", "127.0.0.1", "--tls-port", &self.port.to_string(), "--tls-auth-clients", "no"]);
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
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ping().is_err() {
            let exited = self.child.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() {
                self.child.lock().unwrap().take();
                return Started::Exited(std::fs::read_to_string(&log).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "redis-server at {} did not answer within 60 s", self.url);
            std::thread::sleep(Duration::from_millis(20));
        }
        Started::Answers
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
