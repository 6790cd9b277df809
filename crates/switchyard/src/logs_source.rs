//! Where `switchyard logs` reads from: the decision log (a SQLite file or PostgreSQL), the --since window, and
//! what the server's config says about the router and refusals.

use std::path::{Path, PathBuf};

use clap::Args;
use switchyard_server::{Config, LogConfig};
use switchyard_store::{now_ms, parse_since, Database, Location};

/// Which decision log, and from when.
#[derive(Debug, Args)]
pub struct Source {
    /// The decision log: a SQLite file or a postgres://user:pass@host:port/db URL. Default: log.url or
    /// log.path of --config, else of ./switchyard.toml, else logs/decisions.sqlite.
    #[arg(long, value_name = "FILE|URL")]
    db: Option<String>,

    /// The server's config, to find log.path.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Only requests since then: a duration back from now (30m, 24h, 7d), a date (2026-11-01) or a UTC time
    /// (2026-11-01T12:00:00Z).
    #[arg(long, value_name = "WHEN")]
    since: Option<String>,
}

impl Source {
    /// The server's config: --config, else ./switchyard.toml when no --db says where the log is; `None`
    /// otherwise (then the defaults apply).
    pub(crate) fn config(&self) -> anyhow::Result<Option<Config>> {
        Ok(match (&self.config, &self.db) {
            (Some(path), _) => Some(Config::load(path)?),
            (None, None) if Path::new("switchyard.toml").is_file() => Some(Config::load(Path::new("switchyard.toml"))?),
            _ => None,
        })
    }

    /// The answers counted as refusals: `config`'s `learning.refusal_patterns` (lowercase), else the defaults.
    pub(crate) fn refusal_patterns(config: Option<&Config>) -> Vec<String> {
        match config {
            Some(config) => config.learning.refusal_patterns.iter().map(|p| p.trim().to_lowercase()).collect(),
            None => switchyard_store::REFUSAL_PATTERNS.iter().map(|p| (*p).to_string()).collect(),
        }
    }

    /// The decision log, and the start of the --since window (milliseconds since the epoch).
    pub(crate) fn open(&self) -> anyhow::Result<(Database, i64)> {
        let location = match (&self.db, &self.config) {
            (Some(db), _) => Location::parse(db),
            (None, Some(config)) => Config::load(config)?.log.location(),
            (None, None) if Path::new("switchyard.toml").is_file() => {
                Config::load(Path::new("switchyard.toml"))?.log.location()
            }
            (None, None) => LogConfig::default().location(),
        };
        if let Location::Sqlite(path) = &location {
            if !path.is_file() {
                anyhow::bail!(
                    "no decision log at {}: start `switchyard serve` (with log.enabled = true) first, or pass --db",
                    path.display()
                );
            }
        }
        if let Location::Postgres(url) = &location {
            switchyard_store::check_url(url).map_err(|e| anyhow::anyhow!("--db {e}"))?;
        }
        let store = Database::open(&location)?;
        let since = self.since.as_deref().map(|s| parse_since(s, now_ms())).transpose().map_err(anyhow::Error::msg)?;
        Ok((store, since.unwrap_or(i64::MIN)))
    }
}
