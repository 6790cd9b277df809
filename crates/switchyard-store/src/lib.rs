//! switchyard's decision log.
//!
//! This crate owns the record of every request the server answers (the decision, the upstream attempts,
//! tokens, cost, latency, rule and experiment arm) in SQLite in WAL mode or, for replicas that share one log,
//! in PostgreSQL ([`Database`]), written off the request path by a supervised background thread behind a
//! bounded queue; client feedback attached to those records; the export of
//! logged, scored requests as labelled logs for `switchyard train`; and the traffic statistics of `logs stats`.

mod dashboard;
mod database;
mod db;
mod derived;
mod export;
mod interval;
mod messages;
mod pg;
mod pg_dashboard;
mod pg_migrate;
mod pg_row;
mod pg_tls;
mod record;
mod response;
mod sink;
mod spool;
mod stats;
mod time;
mod writer;

use std::path::PathBuf;

pub use dashboard::{
    band, ArmRow, Budget, CacheRow, Dashboard, DashboardQuery, DeploymentRow, KeyRow, Limit, LogInfo, ModelRow,
    Pricing, QualityRow, Range, Ranked, Recent, RecentAttempt, Reference, Savings, SavingsRow, Series, Totals,
    TrafficRow, MAX_BUCKETS, MAX_RECENT, MAX_TIME_MS,
};
pub use database::{Database, Location, LogRows};
pub use db::{LoggedRequest, Store, SCHEMA_VERSION};
pub use export::{export, labelled_row, ExportSummary, Skip};
pub use pg::{check_url, redact, PgStore};
pub use record::{
    now_ms, prompt_hash, Attempt, DecisionRecord, Estimate, Feedback, FeedbackOutcome, FeedbackReceipt, PromptLogging,
};
pub use response::{starts_like_refusal, ResponseLogging, REFUSAL_PATTERNS};
pub use spool::Spool;
pub use stats::{stats, stats_with, wilson, ArmStats, Interval, ModelStats, Stats, StatsOptions};
pub use time::{civil_from_days, days_from_civil, format_rfc3339, parse_duration_ms, parse_since};
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
    /// Feedback names a request the log does not hold, or one made with another client key (the same error:
    /// whether another key's id exists is not told).
    #[error("no request made with this client key has id {0:?} (ids come from the x-switchyard-request-id header or the route response's request_id; send feedback with the key the request was made with; requests older than the retention period are deleted)")]
    UnknownRequest(String),
    /// The dashboard's scan could not finish.
    #[error("the dashboard's scan of the decision log failed: {0}")]
    Scan(String),
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

    /// Whether the error is the rows' own fault (PostgreSQL refused their data: SQLSTATE classes 22 and 23),
    /// so that writing them again cannot help. Any other failure (no connection, a refused login, a changed
    /// schema, a server shutting down) keeps the rows waiting in the spool.
    pub fn is_row_error(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => {
                source.code().is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
            }
            Self::Json(_) => true,
            _ => false,
        }
    }

    /// Whether the error means the server could not be reached at all (no answer, a refused or reset
    /// connection, or a server shutting down or out of resources), as opposed to one that answered and said no
    /// (a wrong password, a missing database, an untrusted certificate): at start-up the first may be waited
    /// out on the spool, the second is the operator's to fix.
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Postgres { source, .. } => match source.code() {
                Some(code) => ["08", "53", "57P"].iter().any(|class| code.code().starts_with(class)),
                None => !mentions_tls(source) && (source.is_closed() || caused_by_io(source)),
            },
            Self::Unavailable => true,
            _ => false,
        }
    }
}

/// Whether a TLS failure (a certificate, a handshake) is behind the error.
fn mentions_tls(error: &postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("tls") || text.contains("certificate") || text.contains("ssl") {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether an I/O error (a refused or reset connection, a timeout, an unknown host) is behind the error.
fn caused_by_io(error: &postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<std::io::Error>() {
            return true;
        }
        cause = e.source();
    }
    false
}
