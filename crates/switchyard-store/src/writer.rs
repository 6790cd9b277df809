//! The background writer: requests hand their records to a bounded queue and never wait for the disk. A
//! dedicated thread writes them in batches, one transaction per batch. When the queue is full, records are
//! dropped and counted, so a slow disk can never stall traffic.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::database::{Database, Location};
use crate::record::{now_ms, DecisionRecord, Feedback, FeedbackOutcome};
use crate::StoreError;

/// Most records written in one transaction.
const BATCH: usize = 512;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

enum Op {
    Record(Box<DecisionRecord>),
    Feedback(Feedback, SyncSender<Result<FeedbackOutcome, StoreError>>),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

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
}

/// Waits before a failed commit is tried again; after the last, its rows count as failed.
const RETRY_DELAYS: [Duration; 3] = [Duration::from_millis(50), Duration::from_millis(250), Duration::from_secs(1)];
/// The first wait before restarting a panicked writer; it doubles up to five seconds.
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The SQLite file (unless `url` is given).
    pub path: PathBuf,
    /// A PostgreSQL URL (`postgres://user:pass@host:port/db`), used instead of `path` when given.
    pub url: Option<String>,
    /// Records the queue holds before new ones are dropped.
    pub queue_capacity: usize,
    /// Keep requests this many days (`None`: forever).
    pub retention_days: Option<u32>,
}

/// A handle on the background writer; cheap to share behind an `Arc`.
pub struct LogWriter {
    tx: SyncSender<Op>,
    stats: Arc<WriterStats>,
    location: Location,
}

impl WriterOptions {
    /// Where the log goes: the URL when given, else the file.
    pub fn location(&self) -> Location {
        self.url.clone().map_or_else(|| Location::Sqlite(self.path.clone()), Location::Postgres)
    }
}

impl LogWriter {
    /// Opens the database (so a bad path, a corrupt file or a wrong password fails at start-up) and starts the
    /// writer thread. The database is opened on that thread: a PostgreSQL client must not run on an async one.
    pub fn start(options: &WriterOptions) -> Result<Self, StoreError> {
        let location = options.location();
        let stats = Arc::new(WriterStats::default());
        let retention_ms = options.retention_days.map(|d| i64::from(d) * 86_400_000);
        let (tx, rx) = mpsc::sync_channel(options.queue_capacity.max(1));
        let (opened, ready) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let (thread_stats, thread_location) = (stats.clone(), location.clone());
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || {
                let mut db = match Database::open(&thread_location) {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                if let Some(ms) = retention_ms {
                    match db.prune(now_ms() - ms) {
                        Ok(n) => {
                            thread_stats.pruned.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e) => {
                            let _ = opened.send(Err(e));
                            return;
                        }
                    }
                }
                let _ = opened.send(Ok(()));
                let shutdown = supervise(db, &thread_location, &rx, &thread_stats, retention_ms);
                // Close the queue before answering, so nothing logged after `shutdown` returns is accepted.
                drop(rx);
                if let Some(reply) = shutdown {
                    let _ = reply.send(());
                }
            })
            .map_err(|source| StoreError::Io { path: options.path.clone(), source })?;
        ready.recv().map_err(|_| StoreError::WriterStopped)??;
        Ok(Self { tx, stats, location })
    }

    /// Where the log is written.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Queues a record without waiting. Returns `false` (and counts a dropped row) when the queue is full.
    pub fn log(&self, record: DecisionRecord) -> bool {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Op::Record(Box::new(record))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Stores feedback, blocking until the writer has handled it. Records queued before it are written first,
    /// so feedback for a request that was just answered finds it.
    pub fn feedback(&self, feedback: Feedback) -> Result<FeedbackOutcome, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send(Op::Feedback(feedback, reply)).map_err(|_| StoreError::WriterStopped)?;
        answer.recv().map_err(|_| StoreError::WriterStopped)?
    }

    /// Waits until every record queued so far is committed.
    pub fn flush(&self) {
        let (reply, done) = mpsc::sync_channel(1);
        if self.tx.send(Op::Flush(reply)).is_ok() {
            let _ = done.recv();
        }
    }

    /// Whether the writer thread is running (not between a panic and its restart).
    pub fn is_up(&self) -> bool {
        !self.stats.down.load(Ordering::SeqCst)
    }

    /// Writes what is queued and stops the writer thread; later records are dropped and counted.
    pub fn shutdown(&self) {
        let (reply, done) = mpsc::sync_channel(1);
        if self.tx.send(Op::Shutdown(reply)).is_ok() {
            let _ = done.recv();
        }
    }
}

/// Runs the writer loop, restarting it (on a freshly opened database) after a panic. The queue survives a
/// restart, so records waiting in it are written after it; the rows of the batch being written when the
/// panic came count as failed. Returns the reply channel of a shutdown request, if that is what ended it.
fn supervise(
    store: Database,
    location: &Location,
    rx: &Receiver<Op>,
    stats: &WriterStats,
    retention_ms: Option<i64>,
) -> Option<SyncSender<()>> {
    let mut store = Some(store);
    let mut batch: Vec<DecisionRecord> = Vec::with_capacity(BATCH);
    let mut delay = RESTART_DELAY;
    loop {
        let mut open = match store.take().map_or_else(|| Database::open(location), Ok) {
            Ok(s) => s,
            Err(e) => {
                stats.down.store(true, Ordering::SeqCst);
                tracing::error!("decision log: cannot reopen {location}: {e}; trying again in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        stats.down.store(false, Ordering::SeqCst);
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&mut open, rx, stats, retention_ms, &mut batch)
        }));
        match run {
            Ok(shutdown) => return shutdown,
            Err(_) => {
                stats.down.store(true, Ordering::SeqCst);
                stats.restarts.fetch_add(1, Ordering::Relaxed);
                stats.failed.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
                tracing::error!("the decision log writer panicked; restarting it in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The writer loop; returns the reply channel of a shutdown request, if that is what ended it.
fn run(
    store: &mut Database,
    rx: &Receiver<Op>,
    stats: &WriterStats,
    retention_ms: Option<i64>,
    batch: &mut Vec<DecisionRecord>,
) -> Option<SyncSender<()>> {
    let mut last_prune = Instant::now();
    loop {
        let Ok(first) = rx.recv() else { break };
        let mut pending = Some(first);
        // Take everything already queued: records go into one transaction; other ops run in order.
        while let Some(op) = pending.take() {
            match op {
                Op::Record(r) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(*r);
                    if batch.len() >= BATCH {
                        commit(store, batch, stats);
                    }
                }
                Op::Feedback(f, reply) => {
                    commit(store, batch, stats);
                    let _ = reply.send(store.feedback(&f));
                }
                Op::Flush(reply) => {
                    commit(store, batch, stats);
                    let _ = reply.send(());
                }
                Op::Shutdown(reply) => {
                    commit(store, batch, stats);
                    return Some(reply);
                }
            }
            pending = rx.try_recv().ok();
        }
        commit(store, batch, stats);
        if let Some(ms) = retention_ms.filter(|_| last_prune.elapsed() >= PRUNE_EVERY) {
            last_prune = Instant::now();
            match store.prune(now_ms() - ms) {
                Ok(n) => {
                    stats.pruned.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("decision log retention failed: {e}"),
            }
        }
    }
    commit(store, batch, stats);
    None
}

fn commit(store: &mut Database, batch: &mut Vec<DecisionRecord>, stats: &WriterStats) {
    if batch.is_empty() {
        return;
    }
    let path = store.shown();
    let result = retry(
        &RETRY_DELAYS,
        || store.insert(batch),
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
    batch.clear();
}

/// Runs `attempt` until it succeeds or every delay has been waited once; `failed` hears of each failure
/// that will be tried again.
fn retry<E>(
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
    use crate::record::PromptLogging;
    use crate::Store;

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

    fn record(id: usize) -> DecisionRecord {
        let mut r = DecisionRecord {
            request_id: format!("r{id}"),
            ts_ms: now_ms(),
            endpoint: "route".into(),
            status: 200,
            ..DecisionRecord::default()
        };
        r.set_prompt("hello", PromptLogging::Hash);
        r
    }

    #[test]
    fn records_are_written_and_feedback_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sqlite");
        let writer = LogWriter::start(&WriterOptions {
            path: path.clone(),
            url: None,
            queue_capacity: 10_000,
            retention_days: Some(30),
        })
        .unwrap();
        for i in 0..1000 {
            assert!(writer.log(record(i)));
        }
        // Feedback right after the record: the writer has written the record first.
        let fb = Feedback { request_id: "r999".into(), score: 0.5, comment: Some("ok".into()), ts_ms: now_ms() };
        assert_eq!(writer.feedback(fb).unwrap(), FeedbackOutcome::Recorded);
        writer.flush();
        assert_eq!(writer.stats().written.load(Ordering::Relaxed), 1000);
        assert_eq!(writer.stats().queued.load(Ordering::Relaxed), 0);
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 1000);
        writer.shutdown();
        assert!(!writer.log(record(5000)), "a stopped writer drops rows");
        assert_eq!(writer.stats().dropped.load(Ordering::Relaxed), 1);
        assert!(matches!(
            writer.feedback(Feedback { request_id: "r1".into(), score: 1.0, comment: None, ts_ms: 0 }),
            Err(StoreError::WriterStopped)
        ));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LogWriter::start(&WriterOptions {
            path: dir.path().join("log.sqlite"),
            url: None,
            queue_capacity: 4,
            retention_days: None,
        })
        .unwrap();
        let accepted = (0..20_000).filter(|&i| writer.log(record(i))).count();
        writer.flush();
        let stats = writer.stats();
        let dropped = stats.dropped.load(Ordering::Relaxed) as usize;
        assert!(dropped > 0, "a 4-row queue cannot absorb 20000 rows at once");
        assert_eq!(accepted + dropped, 20_000);
        assert_eq!(stats.written.load(Ordering::Relaxed) as usize, accepted);
    }

    #[test]
    fn retention_runs_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sqlite");
        let mut old = record(1);
        old.ts_ms = now_ms() - 40 * 86_400_000;
        Store::open(&path).unwrap().insert(&[old, record(2)]).unwrap();
        let writer = LogWriter::start(&WriterOptions {
            path: path.clone(),
            url: None,
            queue_capacity: 8,
            retention_days: Some(30),
        })
        .unwrap();
        assert_eq!(writer.stats().pruned.load(Ordering::Relaxed), 1);
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 1);
    }
}
