//! The SQLite database: schema, writes in transactions, feedback, retention, and reading rows back.
//!
//! The database runs in WAL mode with `synchronous = NORMAL`: a killed process loses at most the transactions
//! it had not committed, and never corrupts the file.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::derived::Derived;
use crate::record::{Attempt, DecisionRecord, Estimate, Feedback, FeedbackOutcome, FeedbackReceipt};
use crate::StoreError;

/// The schema version this build writes (`PRAGMA user_version`). Version 2 added `api_key` and `session`;
/// version 3, `propensity` and `explored`; version 4, `usage_estimated`; version 5, `cache_hit` and
/// `cache_saved_usd`; version 6, the answer: `response`, `response_sha256`, `response_truncated`,
/// `finish_reason`, `tool_calls`; version 7, the request's `messages`; version 8, the decision's `domain` and
/// `complexity`; version 9, columns derived for the dashboard's covering index (`chosen_p`, `attempts_n`,
/// `deployment`, `upstream_ms`, `failed_deployments`) and the feedback `score` kept on the request.
pub const SCHEMA_VERSION: i64 = 9;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    prompt TEXT,
    prompt_sha256 TEXT NOT NULL,
    messages_count INTEGER NOT NULL,
    user_id TEXT,
    experiment TEXT,
    arm TEXT,
    rule TEXT,
    policy TEXT,
    estimates TEXT NOT NULL,
    decided_model TEXT,
    chosen_model TEXT,
    attempts TEXT NOT NULL,
    status INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    expected_cost_usd REAL,
    decision_ms REAL,
    latency_ms REAL NOT NULL,
    stream INTEGER NOT NULL,
    api_key TEXT,
    session TEXT,
    propensity REAL,
    explored INTEGER,
    usage_estimated INTEGER,
    cache_hit INTEGER,
    cache_saved_usd REAL,
    response TEXT,
    response_sha256 TEXT,
    response_truncated INTEGER,
    finish_reason TEXT,
    tool_calls TEXT,
    messages TEXT,
    domain TEXT,
    complexity REAL,
    chosen_p REAL,
    attempts_n INTEGER,
    deployment TEXT,
    upstream_ms REAL,
    failed_deployments TEXT,
    score REAL
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (ts_ms);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY,
    score REAL NOT NULL,
    comment TEXT,
    ts_ms INTEGER NOT NULL,
    updates INTEGER NOT NULL
);
";

/// Columns versions 2 to 9 added to `decisions`, with their types.
const ADDED_SINCE_1: [(&str, &str); 21] = [
    ("api_key", "TEXT"),
    ("session", "TEXT"),
    ("propensity", "REAL"),
    ("explored", "INTEGER"),
    ("usage_estimated", "INTEGER"),
    ("cache_hit", "INTEGER"),
    ("cache_saved_usd", "REAL"),
    ("response", "TEXT"),
    ("response_sha256", "TEXT"),
    ("response_truncated", "INTEGER"),
    ("finish_reason", "TEXT"),
    ("tool_calls", "TEXT"),
    ("messages", "TEXT"),
    ("domain", "TEXT"),
    ("complexity", "REAL"),
    ("chosen_p", "REAL"),
    ("attempts_n", "INTEGER"),
    ("deployment", "TEXT"),
    ("upstream_ms", "REAL"),
    ("failed_deployments", "TEXT"),
    ("score", "REAL"),
];

/// The dashboard's covering index: a time range is summed from the index alone, never touching the pages
/// that hold prompts and answers.
pub(crate) const STATS_INDEX: &str = "CREATE INDEX IF NOT EXISTS decisions_stats ON decisions (ts_ms, endpoint, status,
    chosen_model, domain, complexity, api_key, experiment, arm, cost_usd, input_tokens, output_tokens, latency_ms,
    cache_hit, cache_saved_usd, attempts_n, deployment, upstream_ms, failed_deployments, score, chosen_p);";

/// The file's schema version, refused when a newer build wrote it.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
    }
    Ok(version)
}

/// A logged request joined with its feedback, as export and stats read it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedRequest {
    /// The request.
    pub record: DecisionRecord,
    /// Its feedback score, if any.
    pub feedback: Option<f64>,
}

/// An open decision log.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the decision log at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source: rusqlite::Error| StoreError::Open { path: path.to_path_buf(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io { path: parent.to_path_buf(), source })?;
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        // The first statement that reads the file tells a non-database apart.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("decision log {} is in {mode} journal mode, not WAL", path.display());
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;").map_err(open_err)?;
        schema_version(&conn, path)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        // Older files lack the columns later versions added: add them (old rows have none).
        for (column, kind) in ADDED_SINCE_1 {
            let present: bool = conn
                .query_row("SELECT COUNT(*) FROM pragma_table_info('decisions') WHERE name = ?1", [column], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(open_err)?
                > 0;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE decisions ADD COLUMN {column} {kind};")).map_err(open_err)?;
            }
        }
        let mut store = Self { conn, path: path.to_path_buf() };
        store.backfill()?;
        store.conn.execute_batch(STATS_INDEX).map_err(open_err)?;
        store.conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};")).map_err(open_err)?;
        Ok(store)
    }

    /// Opens an existing decision log for reading only: no schema change, no migration (the server's writer
    /// does those), so a reader never contends with it for the write lock.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source: rusqlite::Error| StoreError::Open { path: path.to_path_buf(), source };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        schema_version(&conn, path)?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes records in one transaction (a record whose id is already logged replaces it).
    pub fn insert(&mut self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR REPLACE INTO decisions (request_id, ts_ms, endpoint, prompt, prompt_sha256, messages_count,
                 user_id, experiment, arm, rule, policy, estimates, decided_model, chosen_model, attempts, status,
                 input_tokens, output_tokens, cost_usd, expected_cost_usd, decision_ms, latency_ms, stream, api_key,
                 session, propensity, explored, usage_estimated, cache_hit, cache_saved_usd, response,
                 response_sha256, response_truncated, finish_reason, tool_calls, messages, domain, complexity,
                 chosen_p, attempts_n, deployment, upstream_ms, failed_deployments, score)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, ?40,
                 ?41, ?42, ?43, (SELECT score FROM feedback WHERE request_id = ?1))",
            )?;
            for r in records {
                let derived = Derived::of(r);
                stmt.execute(params![
                    r.request_id,
                    r.ts_ms,
                    r.endpoint,
                    r.prompt,
                    r.prompt_sha256,
                    r.messages_count,
                    r.user,
                    r.experiment,
                    r.arm,
                    r.rule,
                    r.policy.as_ref().map(|p| p.to_string()),
                    serde_json::to_string(&r.estimates)?,
                    r.decided_model,
                    r.chosen_model,
                    serde_json::to_string(&r.attempts)?,
                    r.status,
                    r.input_tokens.map(|t| t as i64),
                    r.output_tokens.map(|t| t as i64),
                    r.cost_usd,
                    r.expected_cost_usd,
                    r.decision_ms,
                    r.latency_ms,
                    r.stream,
                    r.api_key,
                    r.session.as_ref().map(|p| p.to_string()),
                    r.propensity,
                    r.explored,
                    r.usage_estimated,
                    r.cache_hit,
                    r.cache_saved_usd,
                    r.response,
                    r.response_sha256,
                    r.response_truncated,
                    r.finish_reason,
                    r.tool_calls.as_ref().map(|c| c.to_string()),
                    r.messages.as_ref().map(|m| m.to_string()),
                    r.domain,
                    r.complexity,
                    derived.chosen_p,
                    derived.attempts_n,
                    derived.deployment,
                    derived.upstream_ms,
                    derived.failed_deployments,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Attaches feedback to a logged request made with the feedback's key (`api_key IS` it: no key matches a
    /// request made without one). Repeated feedback for one request replaces the earlier score (the latest
    /// wins) and counts the updates. An unknown id, or one of a request made with another key, is
    /// [`StoreError::UnknownRequest`] alike.
    pub fn feedback(&mut self, feedback: &Feedback) -> Result<FeedbackReceipt, StoreError> {
        if !(0.0..=1.0).contains(&feedback.score) {
            return Err(StoreError::BadScore(feedback.score));
        }
        let tx = self.conn.transaction()?;
        type Known = (String, Option<String>, Option<String>, Option<String>);
        let known: Option<Known> = tx
            .query_row(
                "SELECT endpoint, chosen_model, experiment, arm FROM decisions WHERE request_id = ?1 AND api_key IS ?2",
                params![feedback.request_id, feedback.api_key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((endpoint, chosen_model, experiment, arm)) = known else {
            return Err(StoreError::UnknownRequest(feedback.request_id.clone()));
        };
        let updates: Option<u32> = tx
            .query_row("SELECT updates FROM feedback WHERE request_id = ?1", [&feedback.request_id], |r| r.get(0))
            .optional()?;
        let updates = updates.map_or(1, |u| u + 1);
        tx.execute(
            "INSERT OR REPLACE INTO feedback (request_id, score, comment, ts_ms, updates) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![feedback.request_id, feedback.score, feedback.comment, feedback.ts_ms, updates],
        )?;
        tx.execute(
            "UPDATE decisions SET score = ?2 WHERE request_id = ?1",
            params![feedback.request_id, feedback.score],
        )?;
        tx.commit()?;
        let outcome = if updates == 1 { FeedbackOutcome::Recorded } else { FeedbackOutcome::Replaced(updates) };
        Ok(FeedbackReceipt { outcome, endpoint, chosen_model, arm: experiment.zip(arm) })
    }

    /// Deletes requests (and their feedback) older than `cutoff_ms`; returns how many requests went.
    pub fn prune(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM decisions WHERE ts_ms < ?1)",
            [cutoff_ms],
        )?;
        let n = tx.execute("DELETE FROM decisions WHERE ts_ms < ?1", [cutoff_ms])?;
        tx.commit()?;
        Ok(n)
    }

    /// Observed spend (USD) of requests made with client key `name` at or after `since_ms`: a server
    /// restores each key's budget from it at start-up.
    pub fn spend_of(&self, name: &str, since_ms: i64) -> Result<f64, StoreError> {
        Ok(self.conn.query_row(
            "SELECT COALESCE(SUM(cost_usd), 0.0) FROM decisions WHERE api_key = ?1 AND ts_ms >= ?2",
            params![name, since_ms],
            |r| r.get::<_, f64>(0),
        )?)
    }

    /// Number of logged requests.
    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*) FROM decisions", [], |r| r.get::<_, i64>(0))? as u64)
    }

    /// `PRAGMA integrity_check`: `Ok` when SQLite finds nothing wrong.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let result: String = self.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt { path: self.path.clone(), detail: result })
        }
    }

    /// Calls `f` for every request logged at or after `since_ms`, oldest first, with its feedback.
    pub fn for_each(&self, since_ms: i64, f: impl FnMut(LoggedRequest)) -> Result<(), StoreError> {
        self.select("d.ts_ms >= ?1 ORDER BY d.ts_ms, d.request_id", &[&since_ms], f)
    }

    /// Calls `f` for the newest `limit` requests logged in `from_ms..to_ms`, newest first.
    pub(crate) fn newest(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        f: impl FnMut(LoggedRequest),
    ) -> Result<(), StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let condition = "d.ts_ms >= ?1 AND d.ts_ms < ?2 ORDER BY d.ts_ms DESC, d.request_id DESC LIMIT ?3";
        self.select(condition, &[&from_ms, &to_ms, &limit], f)
    }

    /// When the newest request was logged (`None`: the log is empty).
    pub fn newest_ts(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn.query_row("SELECT MAX(ts_ms) FROM decisions", [], |r| r.get(0))?)
    }

    /// The connection, for the dashboard's scan.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The request logged under `request_id`, with its feedback.
    pub fn request(&self, request_id: &str) -> Result<Option<LoggedRequest>, StoreError> {
        let mut found = None;
        self.select("d.request_id = ?1", &[&request_id], |r| found = Some(r))?;
        Ok(found)
    }

    /// Calls `f` for every request matching `condition` (SQL after `WHERE`, with its parameters).
    fn select(
        &self,
        condition: &str,
        params: &[&dyn rusqlite::ToSql],
        mut f: impl FnMut(LoggedRequest),
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT d.request_id, d.ts_ms, d.endpoint, d.prompt, d.prompt_sha256, d.messages_count, d.user_id,
             d.experiment, d.arm, d.rule, d.policy, d.estimates, d.decided_model, d.chosen_model, d.attempts,
             d.status, d.input_tokens, d.output_tokens, d.cost_usd, d.expected_cost_usd, d.decision_ms,
             d.latency_ms, d.stream, f.score, d.api_key, d.session, d.propensity, d.explored, d.usage_estimated,
             d.cache_hit, d.cache_saved_usd, d.response, d.response_sha256, d.response_truncated, d.finish_reason,
             d.tool_calls, d.messages, d.domain, d.complexity
             FROM decisions d LEFT JOIN feedback f ON f.request_id = d.request_id
             WHERE {condition}"
        ))?;
        let mut rows = stmt.query(params)?;
        while let Some(row) = rows.next()? {
            let json = |i: usize| -> Result<Option<String>, rusqlite::Error> { row.get(i) };
            let policy = json(10)?.and_then(|p| serde_json::from_str(&p).ok());
            let estimates: Vec<Estimate> = json(11)?.and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default();
            let attempts: Vec<Attempt> = json(14)?.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default();
            let record = DecisionRecord {
                request_id: row.get(0)?,
                ts_ms: row.get(1)?,
                endpoint: row.get(2)?,
                prompt: row.get(3)?,
                prompt_sha256: row.get(4)?,
                messages_count: row.get(5)?,
                user: row.get(6)?,
                api_key: row.get(24)?,
                session: json(25)?.and_then(|p| serde_json::from_str(&p).ok()),
                propensity: row.get(26)?,
                explored: row.get::<_, Option<bool>>(27)?.unwrap_or(false),
                usage_estimated: row.get::<_, Option<bool>>(28)?.unwrap_or(false),
                cache_hit: row.get::<_, Option<bool>>(29)?.unwrap_or(false),
                cache_saved_usd: row.get(30)?,
                response: row.get(31)?,
                response_sha256: row.get(32)?,
                response_truncated: row.get::<_, Option<bool>>(33)?.unwrap_or(false),
                finish_reason: row.get(34)?,
                tool_calls: json(35)?.and_then(|c| serde_json::from_str(&c).ok()),
                messages: json(36)?.and_then(|m| serde_json::from_str(&m).ok()),
                domain: row.get(37)?,
                complexity: row.get(38)?,
                experiment: row.get(7)?,
                arm: row.get(8)?,
                rule: row.get(9)?,
                policy,
                estimates,
                decided_model: row.get(12)?,
                chosen_model: row.get(13)?,
                attempts,
                status: row.get(15)?,
                input_tokens: row.get::<_, Option<i64>>(16)?.map(|t| t.max(0) as u64),
                output_tokens: row.get::<_, Option<i64>>(17)?.map(|t| t.max(0) as u64),
                cost_usd: row.get(18)?,
                expected_cost_usd: row.get(19)?,
                decision_ms: row.get(20)?,
                latency_ms: row.get(21)?,
                stream: row.get(22)?,
            };
            f(LoggedRequest { record, feedback: row.get(23)? });
        }
        Ok(())
    }
}

mod backfill;
#[cfg(test)]
pub(crate) mod tests;
