//! Where the decision log lives: a SQLite file (the default, one machine) or a PostgreSQL database (several
//! replicas sharing one log). [`Database`] puts both behind one set of operations for the writer and the CLI;
//! [`LogRows`] is what `logs stats` and `logs export` read.

use std::path::PathBuf;

use crate::db::{LoggedRequest, Store};
use crate::pg::{redact, PgStore};
use crate::record::{DecisionRecord, Feedback, FeedbackReceipt};
use crate::StoreError;

/// The decision log's location: `postgres://...` (or `postgresql://...`) for PostgreSQL, else a SQLite path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL URL, `postgres://user:pass@host:port/db`.
    Postgres(String),
}

impl Location {
    /// Reads a `--db` argument or a config value.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Self::Postgres(text.to_string())
        } else {
            Self::Sqlite(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// An open decision log of either kind.
pub enum Database {
    /// SQLite.
    Sqlite(Store),
    /// PostgreSQL.
    Postgres(Box<PgStore>),
}

impl Database {
    /// Opens (creating the schema if needed) the log at `location`. For PostgreSQL this connects: call it from
    /// a plain thread, not an async task.
    pub fn open(location: &Location) -> Result<Self, StoreError> {
        Ok(match location {
            Location::Sqlite(path) => Self::Sqlite(Store::open(path)?),
            Location::Postgres(url) => Self::Postgres(Box::new(PgStore::open(url)?)),
        })
    }

    /// Writes records in one transaction (a record whose id is already logged replaces it).
    pub fn insert(&mut self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.insert(records),
            Self::Postgres(p) => p.insert(records),
        }
    }

    /// Attaches feedback to a logged request.
    pub fn feedback(&mut self, feedback: &Feedback) -> Result<FeedbackReceipt, StoreError> {
        match self {
            Self::Sqlite(s) => s.feedback(feedback),
            Self::Postgres(p) => p.feedback(feedback),
        }
    }

    /// The request logged under `request_id`, with its feedback.
    pub fn request(&mut self, request_id: &str) -> Result<Option<LoggedRequest>, StoreError> {
        match self {
            Self::Sqlite(s) => s.request(request_id),
            Self::Postgres(p) => p.request(request_id),
        }
    }

    /// Deletes requests older than `cutoff_ms`.
    pub fn prune(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        match self {
            Self::Sqlite(s) => s.prune(cutoff_ms),
            Self::Postgres(p) => p.prune(cutoff_ms),
        }
    }

    /// Number of logged requests.
    pub fn count(&mut self) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.count(),
            Self::Postgres(p) => p.count(),
        }
    }

    /// Observed spend of client key `name` since `since_ms`.
    pub fn spend_of(&mut self, name: &str, since_ms: i64) -> Result<f64, StoreError> {
        match self {
            Self::Sqlite(s) => s.spend_of(name, since_ms),
            Self::Postgres(p) => p.spend_of(name, since_ms),
        }
    }

    /// The dashboard's view of `query`'s range (see `docs/admin-stats.md`), prices from `pricing`.
    pub fn dashboard(
        &mut self,
        query: &crate::DashboardQuery,
        pricing: &crate::Pricing<'_>,
    ) -> Result<crate::Dashboard, StoreError> {
        match self {
            Self::Sqlite(s) => s.dashboard(query, pricing),
            Self::Postgres(p) => p.dashboard(query, pricing),
        }
    }

    /// Where it is, for messages (a PostgreSQL password hidden).
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(s) => s.path().display().to_string(),
            Self::Postgres(p) => p.shown_url().to_string(),
        }
    }
}

/// Logged requests to read, oldest first, with their feedback: what `logs stats` and `logs export` take.
pub trait LogRows {
    /// Calls `f` for every request logged at or after `since_ms`.
    fn each_logged(self, since_ms: i64, f: &mut dyn FnMut(LoggedRequest)) -> Result<(), StoreError>;
}

impl LogRows for &Store {
    fn each_logged(self, since_ms: i64, f: &mut dyn FnMut(LoggedRequest)) -> Result<(), StoreError> {
        self.for_each(since_ms, f)
    }
}

impl LogRows for &mut PgStore {
    fn each_logged(self, since_ms: i64, f: &mut dyn FnMut(LoggedRequest)) -> Result<(), StoreError> {
        self.for_each(since_ms, f)
    }
}

impl LogRows for &mut Database {
    fn each_logged(self, since_ms: i64, f: &mut dyn FnMut(LoggedRequest)) -> Result<(), StoreError> {
        match self {
            Database::Sqlite(s) => s.for_each(since_ms, f),
            Database::Postgres(p) => p.for_each(since_ms, f),
        }
    }
}
