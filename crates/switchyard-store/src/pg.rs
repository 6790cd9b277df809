//! The decision log in PostgreSQL, for replicas that share one queryable store: the same table and columns
//! as the SQLite log, created on first connect and checked on every connect (a schema newer than this build
//! is refused), written in multi-row inserts, one transaction per batch. A row whose request id is already
//! there replaces it, so writing a batch twice leaves one row per request.
//!
//! The client is the synchronous `postgres` crate, which runs its own small runtime: use it from plain
//! threads (the log writer's, the CLI's), never from inside an async task.

use postgres::types::ToSql;
use postgres::Client;

use crate::db::{LoggedRequest, SCHEMA_VERSION};
use crate::pg_row::{decode, Encoded, COLUMNS};
use crate::record::{DecisionRecord, Feedback, FeedbackOutcome, FeedbackReceipt};
use crate::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS switchyard_meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    request_id TEXT PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    prompt TEXT,
    prompt_sha256 TEXT NOT NULL,
    messages_count BIGINT NOT NULL,
    user_id TEXT,
    experiment TEXT,
    arm TEXT,
    rule TEXT,
    policy TEXT,
    estimates TEXT NOT NULL,
    decided_model TEXT,
    chosen_model TEXT,
    attempts TEXT NOT NULL,
    status BIGINT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    expected_cost_usd DOUBLE PRECISION,
    decision_ms DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION NOT NULL,
    stream BOOLEAN NOT NULL,
    api_key TEXT,
    session TEXT,
    propensity DOUBLE PRECISION,
    explored BOOLEAN,
    usage_estimated BOOLEAN,
    cache_hit BOOLEAN,
    cache_saved_usd DOUBLE PRECISION,
    response TEXT,
    response_sha256 TEXT,
    response_truncated BOOLEAN,
    finish_reason TEXT,
    tool_calls TEXT,
    messages TEXT,
    domain TEXT,
    complexity DOUBLE PRECISION,
    chosen_p DOUBLE PRECISION,
    attempts_n BIGINT,
    deployment TEXT,
    upstream_ms DOUBLE PRECISION,
    failed_deployments TEXT,
    score DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (ts_ms);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT PRIMARY KEY,
    score DOUBLE PRECISION NOT NULL,
    comment TEXT,
    ts_ms BIGINT NOT NULL,
    updates BIGINT NOT NULL
);
";

/// The advisory lock that serialises schema creation across replicas.
const DDL_LOCK: i64 = 7_215_320_418;

/// Rows per INSERT statement (43 parameters each, well under PostgreSQL's 65,535).
const ROWS_PER_STATEMENT: usize = 200;

/// A decision log in PostgreSQL.
pub struct PgStore {
    pub(crate) client: Client,
    /// The URL, for reconnecting.
    url: String,
    /// The URL without its password, for messages.
    shown: String,
}

/// Checks a PostgreSQL URL without connecting: the scheme and what the client can parse of it.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("must be a postgres://user:password@host:port/database URL, got {:?}", redact(url)));
    }
    let (_, tls) = crate::pg_tls::target(url).map_err(|e| {
        format!("is not a valid PostgreSQL URL ({e}); write it as postgres://user:password@host:port/database")
    })?;
    if let crate::pg_tls::Tls::On { root: Some(path) } = tls {
        if !path.is_file() {
            return Err(format!("names sslrootcert={}, which is not a file", path.display()));
        }
    }
    Ok(())
}

/// A database URL (`postgres://`, `redis://`, ...) with the password replaced (in the user part, or a
/// `password=` / `pass=` parameter), fit for logs and errors.
pub fn redact(url: &str) -> String {
    let url = &redact_query(url);
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let Some((auth, host)) = rest.rsplit_once('@') else { return url.to_string() };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Hides a `password=` or `pass=` query parameter.
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k @ ("password" | "pass"), _)) => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{base}?{}", params.join("&"))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`), creating the tables on first use and refusing
    /// a schema newer than this build's.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let shown = redact(url);
        let connect = |source: postgres::Error| StoreError::postgres(&shown, source);
        let (mut config, tls) =
            crate::pg_tls::target(url).map_err(|detail| StoreError::PostgresUrl { url: shown.clone(), detail })?;
        if config.get_connect_timeout().is_none() {
            // A server that does not answer at all must not hold the writer (and its queue) for minutes.
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        // A connection cut by a partition (no reset) is noticed within seconds, not the kernel's quarter hour,
        // so the writer turns to its spool; a statement that hangs is cancelled by the server.
        config.keepalives(true).keepalives_idle(std::time::Duration::from_secs(10));
        config.tcp_user_timeout(std::time::Duration::from_secs(20));
        if config.get_options().is_none() {
            config.options("-c statement_timeout=30000");
        }
        let mut client = crate::pg_tls::connect(&config, &tls).map_err(|e| match e {
            crate::pg_tls::ConnectError::Postgres(source) => connect(source),
            crate::pg_tls::ConnectError::RootCert(path, detail) => StoreError::PostgresUrl {
                url: shown.clone(),
                detail: format!("sslrootcert {}: {detail}", path.display()),
            },
        })?;
        // Replicas starting together take turns (concurrent CREATE ... IF NOT EXISTS is not race-free in
        // PostgreSQL), and the version is read and written under the same lock, never lowered: an older build
        // cannot write its version over a newer one's. The lock is the session's, so an error (which drops the
        // connection) releases it too. No statement timeout while waiting: another replica may be migrating a
        // large log.
        client
            .batch_execute(&format!(
                "SET statement_timeout = 0; SELECT pg_advisory_lock({DDL_LOCK}); RESET statement_timeout;"
            ))
            .map_err(connect)?;
        let version: Option<i64> = client
            .query_opt("SELECT value FROM switchyard_meta WHERE key = 'schema_version'", &[])
            .ok()
            .flatten()
            .map(|row| row.get(0));
        if let Some(found) = version.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::NewerSchema { path: shown.clone().into(), found, supported: SCHEMA_VERSION });
        }
        client.batch_execute(SCHEMA).map_err(connect)?;
        // Tables made by an older build lack the columns later versions added.
        client
            .batch_execute(
                "ALTER TABLE decisions ADD COLUMN IF NOT EXISTS propensity DOUBLE PRECISION;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS explored BOOLEAN;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS usage_estimated BOOLEAN;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS cache_hit BOOLEAN;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS cache_saved_usd DOUBLE PRECISION;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS response TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS response_sha256 TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS response_truncated BOOLEAN;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS finish_reason TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS tool_calls TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS messages TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS domain TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS complexity DOUBLE PRECISION;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS chosen_p DOUBLE PRECISION;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS attempts_n BIGINT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS deployment TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS upstream_ms DOUBLE PRECISION;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS failed_deployments TEXT;
                 ALTER TABLE decisions ADD COLUMN IF NOT EXISTS score DOUBLE PRECISION;",
            )
            .map_err(connect)?;
        crate::pg_migrate::migrate(&mut client, &shown)?;
        client
            .execute(
                "INSERT INTO switchyard_meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = GREATEST(switchyard_meta.value, EXCLUDED.value)",
                &[&SCHEMA_VERSION],
            )
            .map_err(connect)?;
        client.batch_execute(&format!("SELECT pg_advisory_unlock({DDL_LOCK});")).map_err(connect)?;
        Ok(Self { client, url: url.to_string(), shown })
    }

    /// Connects again when the connection was lost (a server restart, a failover, an idle proxy): the
    /// `postgres` client never reconnects by itself.
    pub(crate) fn ensure_connected(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            tracing::warn!("decision log {}: connection lost; connecting again", self.shown);
            *self = Self::open(&self.url)?;
        }
        Ok(())
    }

    /// The URL, password hidden.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    pub(crate) fn fail(&self, source: postgres::Error) -> StoreError {
        StoreError::postgres(&self.shown, source)
    }

    /// Writes records in one transaction (a record whose id is already logged replaces it).
    pub fn insert(&mut self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        self.ensure_connected()?;
        let mut encoded = Vec::with_capacity(records.len());
        for r in records {
            encoded.push(Encoded::of(r)?);
        }
        let updates: Vec<String> = COLUMNS[1..].iter().map(|c| format!("{c} = EXCLUDED.{c}")).collect();
        let shown = self.shown.clone();
        let fail = |source| StoreError::postgres(&shown, source);
        let mut tx = self.client.transaction().map_err(fail)?;
        for chunk in encoded.chunks(ROWS_PER_STATEMENT) {
            let mut sql = format!("INSERT INTO decisions ({}) VALUES ", COLUMNS.join(", "));
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * COLUMNS.len());
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(", ");
                }
                let base = i * COLUMNS.len();
                let slots: Vec<String> = (1..=COLUMNS.len()).map(|k| format!("${}", base + k)).collect();
                sql.push('(');
                sql.push_str(&slots.join(", "));
                sql.push(')');
                params.extend(row.params());
            }
            sql.push_str(&format!(" ON CONFLICT (request_id) DO UPDATE SET {}", updates.join(", ")));
            tx.execute(sql.as_str(), &params).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    /// Attaches feedback to a logged request made with the feedback's key (`api_key IS NOT DISTINCT FROM` it);
    /// the latest score wins and updates are counted. Another key's request is as unknown as an id never issued.
    pub fn feedback(&mut self, feedback: &Feedback) -> Result<FeedbackReceipt, StoreError> {
        self.ensure_connected()?;
        if !(0.0..=1.0).contains(&feedback.score) {
            return Err(StoreError::BadScore(feedback.score));
        }
        let shown = self.shown.clone();
        let fail = |source| StoreError::postgres(&shown, source);
        let mut tx = self.client.transaction().map_err(fail)?;
        let known = tx
            .query_opt(
                "SELECT endpoint, chosen_model, experiment, arm FROM decisions
                 WHERE request_id = $1 AND api_key IS NOT DISTINCT FROM $2",
                &[&feedback.request_id, &feedback.api_key],
            )
            .map_err(fail)?;
        let Some(known) = known else {
            return Err(StoreError::UnknownRequest(feedback.request_id.clone()));
        };
        let row = tx
            .query_one(
                "INSERT INTO feedback (request_id, score, comment, ts_ms, updates) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (request_id) DO UPDATE SET score = EXCLUDED.score, comment = EXCLUDED.comment,
                 ts_ms = EXCLUDED.ts_ms, updates = feedback.updates + 1
                 RETURNING updates",
                &[&feedback.request_id, &feedback.score, &feedback.comment, &feedback.ts_ms],
            )
            .map_err(fail)?;
        tx.execute("UPDATE decisions SET score = $2 WHERE request_id = $1", &[&feedback.request_id, &feedback.score])
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        let updates: i64 = row.get(0);
        let outcome = if updates == 1 { FeedbackOutcome::Recorded } else { FeedbackOutcome::Replaced(updates as u32) };
        let arm = known.get::<_, Option<String>>(2).zip(known.get::<_, Option<String>>(3));
        Ok(FeedbackReceipt { outcome, endpoint: known.get(0), chosen_model: known.get(1), arm })
    }

    /// Deletes requests (and their feedback) older than `cutoff_ms`; returns how many requests went.
    pub fn prune(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        self.ensure_connected()?;
        let shown = self.shown.clone();
        let fail = |source| StoreError::postgres(&shown, source);
        let mut tx = self.client.transaction().map_err(fail)?;
        tx.execute(
            "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM decisions WHERE ts_ms < $1)",
            &[&cutoff_ms],
        )
        .map_err(fail)?;
        let n = tx.execute("DELETE FROM decisions WHERE ts_ms < $1", &[&cutoff_ms]).map_err(fail)?;
        tx.commit().map_err(fail)?;
        Ok(n as usize)
    }

    /// Number of logged requests.
    pub fn count(&mut self) -> Result<u64, StoreError> {
        self.ensure_connected()?;
        let row = self.client.query_one("SELECT COUNT(*) FROM decisions", &[]).map_err(|e| self.fail(e))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Observed spend (USD) of requests made with client key `name` at or after `since_ms`.
    pub fn spend_of(&mut self, name: &str, since_ms: i64) -> Result<f64, StoreError> {
        self.ensure_connected()?;
        let row = self
            .client
            .query_one(
                "SELECT COALESCE(SUM(cost_usd), 0.0) FROM decisions WHERE api_key = $1 AND ts_ms >= $2",
                &[&name, &since_ms],
            )
            .map_err(|e| self.fail(e))?;
        Ok(row.get(0))
    }

    /// Calls `f` for every request logged at or after `since_ms`, oldest first, with its feedback.
    pub fn for_each(&mut self, since_ms: i64, f: impl FnMut(LoggedRequest)) -> Result<(), StoreError> {
        self.select("d.ts_ms >= $1 ORDER BY d.ts_ms, d.request_id", &[&since_ms], f)
    }

    /// Calls `f` for the newest `limit` requests logged in `from_ms..to_ms`, newest first.
    pub(crate) fn newest(
        &mut self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
        f: impl FnMut(LoggedRequest),
    ) -> Result<(), StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let condition = "d.ts_ms >= $1 AND d.ts_ms < $2 ORDER BY d.ts_ms DESC, d.request_id DESC LIMIT $3";
        self.select(condition, &[&from_ms, &to_ms, &limit], f)
    }

    /// The request logged under `request_id`, with its feedback.
    pub fn request(&mut self, request_id: &str) -> Result<Option<LoggedRequest>, StoreError> {
        let mut found = None;
        self.select("d.request_id = $1", &[&request_id], |r| found = Some(r))?;
        Ok(found)
    }

    /// Calls `f` for every request matching `condition` (SQL after `WHERE`, with its parameters).
    fn select(
        &mut self,
        condition: &str,
        params: &[&(dyn ToSql + Sync)],
        mut f: impl FnMut(LoggedRequest),
    ) -> Result<(), StoreError> {
        self.ensure_connected()?;
        let columns: Vec<String> = COLUMNS.iter().map(|c| format!("d.{c}")).collect();
        let sql = format!(
            "SELECT {}, f.score FROM decisions d LEFT JOIN feedback f ON f.request_id = d.request_id WHERE {condition}",
            columns.join(", ")
        );
        let rows = self.client.query(sql.as_str(), params).map_err(|e| self.fail(e))?;
        for row in rows {
            let record = decode(&row);
            f(LoggedRequest { record, feedback: row.get(COLUMNS.len()) });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/log"), "postgres://app:***@db:5432/log");
        assert_eq!(redact("postgres://app@db/log"), "postgres://app@db/log");
        assert_eq!(redact("postgres://db/log"), "postgres://db/log");
        assert_eq!(
            redact("postgres://app@db/log?password=s3cret&sslmode=disable"),
            "postgres://app@db/log?password=***&sslmode=disable"
        );
    }
}
