//! A real PostgreSQL server for tests: a cluster made by `initdb` in a temporary folder and run with `pg_ctl`,
//! as the `postgres` user when the tests run as root (initdb refuses root). Stopped when dropped. Without the
//! server binaries the tests fail with a message saying how to install them; they never skip.
//!
//! [`Postgres::start`] listens on a unix socket in the cluster's own folder only, so no port is taken and none
//! can be taken from it between a stop and a start. [`Postgres::start_tls`] must listen on TCP (PostgreSQL
//! does not speak TLS on unix sockets): it tries loopback ports until one binds, and is never restarted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The socket's port number: it only names the socket file (`.s.PGSQL.5432`) in the cluster's own folder.
const SOCKET_PORT: u16 = 5432;

/// A running PostgreSQL cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// Its TCP port on 127.0.0.1 ([`Postgres::start_tls`] only; 0 for a unix-socket cluster).
    pub port: u16,
    /// `postgres://switchyard:PASSWORD@/postgres?host=DIR` (the socket's folder), or with TLS
    /// `postgres://switchyard:PASSWORD@127.0.0.1:PORT/postgres`.
    pub url: String,
    /// The superuser's password (every connection must give it: scram-sha-256).
    pub password: &'static str,
    as_postgres: bool,
    /// Server options (`-c name=value ...`).
    options: String,
}

/// The folder holding `initdb` and `pg_ctl`: `SWITCHYARD_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`,
/// else the folder of `pg_ctl` on the PATH.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHYARD_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").is_file()).collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    if let Some(newest) = versions.pop() {
        return newest;
    }
    let which = Command::new("sh").args(["-c", "command -v pg_ctl"]).output().ok();
    if let Some(path) =
        which.filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    {
        if let Some(dir) = Path::new(&path).parent() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "these tests need a real PostgreSQL server (initdb, pg_ctl): install it with `apt-get install postgresql` \
         (.ci/run does), or set SWITCHYARD_PG_BIN to the folder holding them"
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// Makes and starts a cluster that listens on a unix socket in its own temporary folder (no TCP).
    pub fn start() -> Self {
        let mut pg = Self::init();
        pg.url = format!("postgres://switchyard:{}@/postgres?host={}", pg.password, pg.dir.path().display());
        pg.options = format!("-k {} -c listen_addresses='' -c fsync=off", pg.dir.path().display());
        pg.start_again();
        pg
    }

    /// Makes and starts a cluster that takes TCP connections on a loopback port over TLS only (`hostssl`; plain
    /// ones are rejected), with `cert` and `key` as its certificate. Ports are tried until one binds.
    pub fn start_tls(cert: &Path, key: &Path) -> Self {
        let mut pg = Self::init();
        let data = pg.dir.path().join("data");
        std::fs::copy(cert, data.join("server.crt")).unwrap();
        std::fs::copy(key, data.join("server.key")).unwrap();
        let hba = "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n\
                   hostnossl all all 127.0.0.1/32 reject\n";
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        if pg.as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&data).status().unwrap();
            assert!(status.success());
        }
        let status = Command::new("chmod").arg("600").arg(data.join("server.key")).status().unwrap();
        assert!(status.success());
        let mut last = String::new();
        for port in crate::loopback_ports() {
            pg.port = port;
            pg.url = format!("postgres://switchyard:{}@127.0.0.1:{port}/postgres", pg.password);
            pg.options = format!(
                "-k {} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on -c ssl_cert_file=server.crt \
                 -c ssl_key_file=server.key",
                pg.dir.path().display()
            );
            let out = pg.pg_ctl_start();
            if out.status.success() {
                return pg;
            }
            last = pg.failure(&out);
            if !last.contains("could not bind") && !last.contains("could not create any TCP/IP sockets") {
                break;
            }
        }
        panic!("pg_ctl start failed: {last}");
    }

    /// Runs `initdb` into a new temporary folder (the cluster is not started).
    fn init() -> Self {
        let bin = binaries();
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(status.success(), "cannot hand {} to the postgres user", dir.path().display());
        }
        let password = "sw1tchyard-test";
        let pg = Self { url: String::new(), password, dir, bin, port: 0, as_postgres, options: String::new() };
        let data = pg.dir.path().join("data");
        let pwfile = pg.dir.path().join("pwfile");
        std::fs::write(&pwfile, password).unwrap();
        if as_postgres {
            Command::new("chown").args(["postgres:postgres"]).arg(&pwfile).status().unwrap();
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-U", "switchyard", "-E", "UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "--no-instructions"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl_start(&self) -> Output {
        let port = if self.port == 0 { SOCKET_PORT } else { self.port };
        let options = format!("-p {port} {}", self.options);
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"])
            .output()
            .unwrap()
    }

    fn failure(&self, out: &Output) -> String {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        )
    }

    /// Starts the server (again, after [`Postgres::stop`]) and waits until it accepts connections.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        assert!(out.status.success(), "pg_ctl start failed: {}", self.failure(&out));
    }

    /// Stops the server at once (connections are cut).
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        let _ = self.command("pg_ctl").arg("-D").arg(&data).args(["-m", "immediate", "-w", "stop"]).output();
    }

    /// Runs SQL as the superuser, with `psql`.
    pub fn sql(&self, statement: &str) -> String {
        self.sql_with(&self.url, statement)
    }

    /// Runs SQL with `psql` through `url` (e.g. with another password).
    pub fn sql_with(&self, url: &str, statement: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", statement, url])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {statement:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}
