//! switchyard's decision log.
//!
//! This crate owns the record of every request the server answers (the decision, the upstream attempts,
//! tokens, cost, latency, rule and experiment arm) in SQLite in WAL mode or, for replicas that share one log,
//! in PostgreSQL ([`Database`]), written off the request path by a supervised background thread behind a
//! bounded queue; client feedback attached to those records; the export of
//! logged, scored requests as labelled logs for `switchyard train`; and the traffic statistics of `logs stats`.

mod database;
mod db;
mod export;
mod pg;
mod pg_tls;
mod record;
mod sink;
mod spool;
mod stats;
mod time;
mod writer;

use std::path::PathBuf;

pub use database::{Database, Location, LogRows};
pub use db::{LoggedRequest, Store, SCHEMA_VERSION};
pub use export::{export, labelled_row, ExportSummary, Skip};
pub use pg::{check_url, redact, PgStore};
pub use record::{now_ms, prompt_hash, Attempt, DecisionRecord, Estimate, Feedback, FeedbackOutcome, PromptLogging};
pub use spool::Spool;
pub use stats::{stats, wilson, ArmStats, Interval, ModelStats, Stats};
pub use time::{civil_from_days, days_from_civil, format_rfc3339, parse_since};
pub use writer::{LogWriter, WriterOptions, WriterStats};

/// What can go wrong with the decision log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be opened as a decision log.
    #[error(
        "cannot open {path} as a switchyard decision log: {source}. If the file is not a switchyard decision log \
         (SQLite), move it away or point log.path elsewhere"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A folder or file cannot be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database was written by a newer switchyard.
    #[error(
        "{path} has decision-log schema version {found}; this switchyard reads up to {supported}: upgrade switchyard"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// `PRAGMA integrity_check` found damage.
    #[error("{path} is damaged: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's report.
        detail: String,
    },
    /// A query failed.
    #[error("decision log query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    /// PostgreSQL refused the connection or a statement (the message says which: a wrong password, a
    /// database that does not exist, a server that does not answer).
    #[error("decision log at {url}: {detail}; check log.url (user, password, host, port, database) and that the server is up")]
    Postgres {
        /// The URL, password hidden.
        url: String,
        /// What the server or the connection said.
        detail: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The PostgreSQL URL's settings cannot be used (an unknown sslmode, an unreadable sslrootcert).
    #[error("log.url {url}: {detail}")]
    PostgresUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// A JSON column could not be written.
    #[error("decision log JSON column: {0}")]
    Json(#[from] serde_json::Error),
    /// Writing an export failed.
    #[error("cannot write the export: {0}")]
    Write(#[source] std::io::Error),
    /// Feedback names a request the log does not hold.
    #[error("no logged request has id {0:?} (ids come from the x-switchyard-request-id header or the route response's request_id; requests older than the retention period are deleted)")]
    UnknownRequest(String),
    /// A feedback score outside [0, 1].
    #[error("score must be a number in [0, 1], got {0}")]
    BadScore(f64),
    /// The PostgreSQL log is out of reach, or rows of an outage still wait in the spool.
    #[error("the decision log's database is out of reach or still replaying rows from an outage; try again shortly")]
    Unavailable,
    /// The spool file cannot be opened.
    #[error("log.spool {path}: {detail}; point log.spool at a writable file of this replica's own")]
    Spool {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The writer thread has stopped (the server is shutting down).
    #[error("the decision log writer has stopped")]
    WriterStopped,
}

impl StoreError {
    /// A PostgreSQL error, with the server's own message (`password authentication failed for user ...`) rather
    /// than the client's bare "db error".
    pub fn postgres(url: &str, source: postgres::Error) -> Self {
        let detail = match source.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => {
                let mut text = source.to_string();
                let mut cause = std::error::Error::source(&source);
                while let Some(c) = cause {
                    let more = c.to_string();
                    if !text.contains(&more) {
                        text = format!("{text}: {more}");
                    }
                    cause = c.source();
                }
                text
            }
        };
        Self::Postgres { url: url.to_string(), detail, source }
    }

    /// Whether the error means the database is out of reach (no connection, a server shutting down or out of
    /// resources), so rows should wait in the spool, rather than something wrong with the rows themselves.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => match source.code() {
                None => true,
                Some(code) => {
                    let code = code.code();
                    source.is_closed() || ["08", "53", "57P"].iter().any(|class| code.starts_with(class))
                }
            },
            Self::Unavailable => true,
            // A database a newer switchyard upgraded: rows wait in the spool for this replica's upgrade.
            Self::NewerSchema { .. } => true,
            _ => false,
        }
    }
}
