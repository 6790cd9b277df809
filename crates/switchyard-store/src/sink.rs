//! Where the writer's batches go. A SQLite log takes them directly (a failed commit is tried again a few
//! times). A PostgreSQL log takes them while it answers; when it does not, batches go to the local [`Spool`]
//! instead, and, while anything waits there, new batches follow them, so rows reach PostgreSQL in the order they
//! were logged. The spool is replayed oldest first whenever the database answers again (tried with a backoff of
//! half a second doubling to five).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::database::{Database, Location};
use crate::record::{DecisionRecord, Feedback, FeedbackReceipt};
use crate::spool::Spool;
use crate::StoreError;

/// Counters of the writer, for metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records committed to the database.
    pub written: AtomicU64,
    /// Records dropped because the queue was full (or the writer had stopped).
    pub dropped: AtomicU64,
    /// Records lost to a failed write (e.g. a full disk).
    pub failed: AtomicU64,
    /// Records waiting in the queue.
    pub queued: AtomicU64,
    /// Requests deleted by retention.
    pub pruned: AtomicU64,
    /// Times the writer thread was restarted after a panic.
    pub restarts: AtomicU64,
    /// Commits that failed and were tried again.
    pub retries: AtomicU64,
    /// The writer is down (between a panic and its restart, or while the database cannot be reopened).
    pub down: AtomicBool,
    /// Rows waiting in the spool for PostgreSQL to answer again.
    pub spooled: AtomicU64,
    /// Spooled rows replayed into PostgreSQL.
    pub replayed: AtomicU64,
    /// Writes to PostgreSQL that failed and sent rows to the spool.
    pub unreachable: AtomicU64,
}

/// Waits before a failed commit is tried again; after the last, its rows count as failed.
const RETRY_DELAYS: [Duration; 3] = [Duration::from_millis(50), Duration::from_millis(250), Duration::from_secs(1)];
/// The first wait before an unreachable database is tried again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Rows replayed per transaction.
const REPLAY_CHUNK: usize = 512;
/// Longest a replay runs before the writer looks at its queue again.
const REPLAY_SLICE: Duration = Duration::from_millis(200);

/// The database and, for PostgreSQL, its spool.
pub(crate) struct Sink {
    /// The database (`None`: PostgreSQL was out of reach when the writer started; opened when it answers).
    db: Option<Database>,
    location: Location,
    /// The location for messages (a password hidden).
    shown: String,
    /// Delete requests older than this (milliseconds) every hour.
    pub(crate) retention_ms: Option<i64>,
    spool: Option<Spool>,
    /// Rows in the spool.
    spooled: u64,
    /// The database failed: not tried again before this.
    down_until: Option<Instant>,
    backoff: Duration,
}

impl Sink {
    /// Wraps the database at `location` (`db`: opened, or `None` when PostgreSQL was out of reach at start-up);
    /// `spool` is given for PostgreSQL. Rows an earlier run left in the spool are counted and replayed first.
    pub(crate) fn new(
        db: Option<Database>,
        location: &Location,
        spool: Option<Spool>,
        stats: &WriterStats,
    ) -> Result<Self, StoreError> {
        let spooled = match &spool {
            Some(s) => s.len()?,
            None => 0,
        };
        let shown = location.to_string();
        if let Some(s) = spool.as_ref().filter(|_| spooled > 0) {
            tracing::warn!(
                "decision log: {spooled} rows from an earlier run wait in the spool {}; replaying them into {shown}",
                s.path().display(),
            );
        }
        stats.spooled.store(spooled, Ordering::Relaxed);
        let down_until = db.is_none().then(|| Instant::now() + FIRST_BACKOFF);
        let location = location.clone();
        Ok(Self { db, location, shown, retention_ms: None, spool, spooled, down_until, backoff: FIRST_BACKOFF })
    }

    /// The database, connected now if it was out of reach when the writer started (its schema is created or
    /// checked then).
    fn database(&mut self) -> Result<&mut Database, StoreError> {
        if self.db.is_none() {
            let db = Database::open(&self.location)?;
            tracing::info!("decision log {}: connected", self.shown);
            self.db = Some(db);
        }
        self.db.as_mut().ok_or(StoreError::Unavailable)
    }

    /// Deletes requests older than `cutoff_ms` (nothing while the database is out of reach).
    pub(crate) fn prune(&mut self, cutoff_ms: i64) -> Result<usize, StoreError> {
        match self.db.as_mut() {
            Some(db) => db.prune(cutoff_ms),
            None => Ok(0),
        }
    }

    /// The spool's file, if there is one.
    pub(crate) fn spool_path(&self) -> Option<std::path::PathBuf> {
        self.spool.as_ref().map(|s| s.path().to_path_buf())
    }

    /// Whether rows wait in the spool.
    pub(crate) fn has_spooled(&self) -> bool {
        self.spooled > 0
    }

    /// How long until a replay may be tried (zero: now).
    pub(crate) fn replay_wait(&self) -> Duration {
        self.down_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(Instant::now()))
    }

    /// Writes a batch (to the database, or to the spool while the database is out of reach) and clears it.
    pub(crate) fn commit(&mut self, batch: &mut Vec<DecisionRecord>, stats: &WriterStats) {
        if batch.is_empty() {
            return;
        }
        if self.spool.is_none() {
            self.commit_direct(batch, stats);
        } else if self.has_spooled() || self.replay_wait() > Duration::ZERO {
            self.spool_batch(batch, stats);
        } else {
            match self.database().and_then(|db| db.insert(batch)) {
                Ok(()) => {
                    self.reachable();
                    stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(e) if must_wait(&e) => {
                    self.unreachable(&e, stats);
                    self.spool_batch(batch, stats);
                }
                Err(e) => self.insert_each(batch, &e, stats),
            }
        }
        batch.clear();
    }

    /// Replays spooled rows, oldest first, for up to a fifth of a second, unless the database is in its
    /// backoff (or `force`, for feedback that must find its request).
    pub(crate) fn replay(&mut self, stats: &WriterStats, force: bool) {
        if !self.has_spooled() || (!force && self.replay_wait() > Duration::ZERO) {
            return;
        }
        let started = Instant::now();
        while self.has_spooled() && started.elapsed() < REPLAY_SLICE {
            let Some(spool) = self.spool.as_mut() else { return };
            let (seq, records) = match spool.oldest(REPLAY_CHUNK) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    self.set_spooled(0, stats);
                    return;
                }
                Err(e) => {
                    tracing::error!("decision log spool {}: cannot read it: {e}", spool.path().display());
                    self.down_until = Some(Instant::now() + MAX_BACKOFF);
                    return;
                }
            };
            match self.database().and_then(|db| db.insert(&records)) {
                Ok(()) => {
                    stats.written.fetch_add(records.len() as u64, Ordering::Relaxed);
                }
                Err(e) if must_wait(&e) => {
                    self.unreachable(&e, stats);
                    return;
                }
                // Something in the rows themselves: write them one by one, so one bad row cannot hold the spool.
                Err(e) => {
                    if !self.rows_one_by_one(&records, &e, stats) {
                        return;
                    }
                }
            }
            self.reachable();
            let Some(spool) = self.spool.as_mut() else { return };
            let removed = match spool.remove_through(seq) {
                Ok(n) => n,
                Err(e) => {
                    // The rows are in the database; leaving them in the spool only means writing them again,
                    // which replaces them with themselves.
                    tracing::error!("decision log spool {}: cannot remove replayed rows: {e}", spool.path().display());
                    self.down_until = Some(Instant::now() + MAX_BACKOFF);
                    return;
                }
            };
            stats.replayed.fetch_add(records.len() as u64, Ordering::Relaxed);
            // Counted from what left, not by counting what stays: a long spool is not scanned once per chunk.
            let left = self.spooled.saturating_sub(removed);
            self.set_spooled(left, stats);
            if left == 0 {
                tracing::info!("decision log {}: the spool is replayed", self.shown);
            }
        }
    }

    /// Stores feedback. Spooled rows are replayed first, so feedback for a request answered during an outage
    /// finds it. While the database is out of reach, or the request may still wait in the spool, the answer is
    /// [`StoreError::Unavailable`] at once (the client sends it again), so feedback never holds the writer.
    pub(crate) fn feedback(&mut self, feedback: &Feedback, stats: &WriterStats) -> Result<FeedbackReceipt, StoreError> {
        if self.spool.is_some() && self.replay_wait() > Duration::ZERO {
            return Err(StoreError::Unavailable);
        }
        self.replay(stats, true);
        match self.database().and_then(|db| db.feedback(feedback)) {
            Err(StoreError::UnknownRequest(_)) if self.has_spooled() => Err(StoreError::Unavailable),
            Err(e) if self.spool.is_some() && must_wait(&e) => {
                self.unreachable(&e, stats);
                Err(StoreError::Unavailable)
            }
            outcome => outcome,
        }
    }

    /// A batch PostgreSQL refused for something other than being out of reach: its rows are written one by one;
    /// a row refused again is counted as failed and logged, and if the database goes out of reach meanwhile the
    /// rest goes to the spool.
    fn insert_each(&mut self, batch: &[DecisionRecord], cause: &StoreError, stats: &WriterStats) {
        if !self.rows_one_by_one(batch, cause, stats) {
            // Out of reach midway: the rows not yet written wait in the spool (written ones are replaced by
            // their replay, which leaves them as they are).
            self.spool_batch(batch, stats);
        }
    }

    /// Writes rows one at a time after `cause` refused them together; false (having written none it could not)
    /// when the database went out of reach meanwhile.
    fn rows_one_by_one(&mut self, rows: &[DecisionRecord], cause: &StoreError, stats: &WriterStats) -> bool {
        tracing::warn!(
            "decision log {}: a batch of {} rows was refused ({cause}); writing them one by one",
            self.shown,
            rows.len()
        );
        for row in rows {
            match self.database().and_then(|db| db.insert(std::slice::from_ref(row))) {
                Ok(()) => {
                    stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if must_wait(&e) => {
                    self.unreachable(&e, stats);
                    return false;
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("decision log {}: row {} refused: {e}", self.shown, row.request_id);
                }
            }
        }
        true
    }

    fn set_spooled(&mut self, n: u64, stats: &WriterStats) {
        self.spooled = n;
        stats.spooled.store(n, Ordering::Relaxed);
    }

    fn spool_batch(&mut self, batch: &[DecisionRecord], stats: &WriterStats) {
        let Some(spool) = self.spool.as_mut() else { return };
        let result = retry(
            &RETRY_DELAYS,
            || spool.append(batch),
            |attempt, e| {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("decision log spool: append of {} rows failed (attempt {attempt}): {e}", batch.len());
            },
        );
        match result {
            Ok(()) => {
                let n = self.spooled + batch.len() as u64;
                self.set_spooled(n, stats);
            }
            Err(e) => {
                stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    "decision log spool {}: cannot write {} rows: {e}",
                    spool.path().display(),
                    batch.len()
                );
            }
        }
    }

    /// The database answered: reset the backoff (and say so after an outage).
    fn reachable(&mut self) {
        if self.down_until.take().is_some() {
            tracing::info!("decision log {} answers again; {} spooled rows to replay", self.shown, self.spooled);
        }
        self.backoff = FIRST_BACKOFF;
    }

    /// The database failed: spool, and try again after the backoff. Warns once per outage.
    fn unreachable(&mut self, e: &StoreError, stats: &WriterStats) {
        if self.down_until.is_none() {
            let spool = self.spool.as_ref().map(|s| s.path().display().to_string()).unwrap_or_default();
            tracing::warn!(
                "cannot write to the decision log {} ({e}); spooling rows to {spool} until it can",
                self.shown
            );
        }
        stats.unreachable.fetch_add(1, Ordering::Relaxed);
        self.down_until = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Writes to a SQLite log, trying a failed commit again a few times.
    fn commit_direct(&mut self, batch: &[DecisionRecord], stats: &WriterStats) {
        let path = self.shown.clone();
        let result = retry(
            &RETRY_DELAYS,
            || self.database().and_then(|db| db.insert(batch)),
            |attempt, e| {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("decision log {path}: commit of {} rows failed (attempt {attempt}): {e}", batch.len());
            },
        );
        match result {
            Ok(()) => {
                stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!("decision log {path}: cannot write {} rows: {e}", batch.len());
            }
        }
    }
}

/// Whether rows that met this error should wait in the spool: every database failure but one that blames the
/// rows themselves (a wrong password or a changed schema after an outage must not cost the rows).
fn must_wait(e: &StoreError) -> bool {
    let database = matches!(
        e,
        StoreError::Postgres { .. }
            | StoreError::PostgresUrl { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::Unavailable
    );
    database && !e.is_row_error()
}

/// Runs `attempt` until it succeeds or every delay has been waited once; `failed` hears of each failure
/// that will be tried again.
pub(crate) fn retry<E>(
    delays: &[Duration],
    mut attempt: impl FnMut() -> Result<(), E>,
    mut failed: impl FnMut(usize, &E),
) -> Result<(), E> {
    for (i, delay) in delays.iter().enumerate() {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(e) => {
                failed(i + 1, &e);
                std::thread::sleep(*delay);
            }
        }
    }
    attempt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_commit_is_tried_again_before_its_rows_count_as_failed() {
        let delays = [Duration::from_millis(1); 3];
        let (mut calls, mut heard) = (0, Vec::new());
        let result: Result<(), &str> = retry(
            &delays,
            || {
                calls += 1;
                if calls < 3 {
                    Err("database is locked")
                } else {
                    Ok(())
                }
            },
            |n, e| heard.push((n, *e)),
        );
        assert_eq!((result, calls), (Ok(()), 3));
        assert_eq!(heard, [(1, "database is locked"), (2, "database is locked")]);
        let mut calls = 0;
        let result: Result<(), &str> = retry(
            &delays,
            || {
                calls += 1;
                Err("disk full")
            },
            |_, _| {},
        );
        assert_eq!((result, calls), (Err("disk full"), 4), "three retries, then the rows count as failed");
    }
}
