//! The background writer: requests hand their records to a bounded queue and never wait for the disk. A
//! dedicated thread writes them in batches, one transaction per batch. When the queue is full, records are
//! dropped and counted, so a slow disk can never stall traffic.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::database::{Database, Location};
use crate::record::{now_ms, DecisionRecord, Feedback, FeedbackReceipt};
use crate::sink::Sink;
pub use crate::sink::WriterStats;
use crate::spool::Spool;
use crate::StoreError;

/// Most records written in one transaction.
const BATCH: usize = 512;
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

enum Op {
    Record(Box<DecisionRecord>),
    Feedback(Feedback, SyncSender<Result<FeedbackReceipt, StoreError>>),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// The first wait before restarting a panicked writer; it doubles up to five seconds.
const RESTART_DELAY: Duration = Duration::from_millis(200);

/// Settings of the writer.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// The SQLite file (unless `url` is given).
    pub path: PathBuf,
    /// A PostgreSQL URL (`postgres://user:pass@host:port/db`), used instead of `path` when given.
    pub url: Option<String>,
    /// With `url`: the local SQLite file that holds rows while PostgreSQL is out of reach.
    pub spool: PathBuf,
    /// With `url`: refuse to start when PostgreSQL is out of reach (otherwise: start on the spool).
    pub required: bool,
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
        let spool = options.url.is_some().then(|| options.spool.clone());
        let required = options.required;
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || {
                let opened_sink =
                    open_sink(&thread_location, spool.as_deref(), required, false, &thread_stats, retention_ms);
                let sink = match opened_sink {
                    Ok(sink) => sink,
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                let _ = opened.send(Ok(()));
                let shutdown = supervise(sink, &thread_location, &rx, &thread_stats);
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
    pub fn feedback(&self, feedback: Feedback) -> Result<FeedbackReceipt, StoreError> {
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

/// Opens the database (and, for PostgreSQL, its spool) and runs retention once. A PostgreSQL server out of
/// reach (not one that refuses: a wrong password or a newer schema still fails here) leaves the writer on its
/// spool, connecting when the server answers.
fn open_sink(
    location: &Location,
    spool: Option<&Path>,
    required: bool,
    restart: bool,
    stats: &WriterStats,
    retention_ms: Option<i64>,
) -> Result<Sink, StoreError> {
    let db = match Database::open(location) {
        Ok(db) => Some(db),
        // At start-up only a server that cannot be reached is waited out (a wrong password, an untrusted
        // certificate or a newer schema is the operator's to fix); a writer restarted after a panic waits out
        // anything, since refusing now would only drop the queue.
        Err(e) if spool.is_some() && (restart || (!required && e.is_unreachable())) => {
            tracing::warn!(
                "decision log {location}: cannot connect ({e}); starting on the spool, rows go there until it can"
            );
            None
        }
        Err(e) => return Err(e),
    };
    let spool = spool
        .map(|path| {
            Spool::open(path).map_err(|e| StoreError::Spool { path: path.to_path_buf(), detail: e.to_string() })
        })
        .transpose()?;
    let mut sink = Sink::new(db, location, spool, stats)?;
    if let Some(ms) = retention_ms {
        let n = sink.prune(now_ms() - ms)?;
        stats.pruned.fetch_add(n as u64, Ordering::Relaxed);
    }
    sink.retention_ms = retention_ms;
    Ok(sink)
}

/// Runs the writer loop, restarting it (on a freshly opened database) after a panic. The queue survives a
/// restart, so records waiting in it are written after it; the rows of the batch being written when the
/// panic came count as failed. Returns the reply channel of a shutdown request, if that is what ended it.
fn supervise(sink: Sink, location: &Location, rx: &Receiver<Op>, stats: &WriterStats) -> Option<SyncSender<()>> {
    let retention_ms = sink.retention_ms;
    let spool = sink.spool_path();
    let mut sink = Some(sink);
    let mut batch: Vec<DecisionRecord> = Vec::with_capacity(BATCH);
    let mut delay = RESTART_DELAY;
    loop {
        // After a panic the writer runs already: an unreachable database is not a reason to stop now.
        let reopened = || open_sink(location, spool.as_deref(), false, true, stats, retention_ms);
        let mut open = match sink.take().map_or_else(reopened, Ok) {
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
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut open, rx, stats, &mut batch)));
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
    sink: &mut Sink,
    rx: &Receiver<Op>,
    stats: &WriterStats,
    batch: &mut Vec<DecisionRecord>,
) -> Option<SyncSender<()>> {
    let mut last_prune = Instant::now();
    loop {
        // While rows wait in the spool, wake up to replay them even when no new record comes.
        let first = if sink.has_spooled() {
            match rx.recv_timeout(sink.replay_wait()) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            }
        };
        let mut pending = first;
        // Take everything already queued: records go into one transaction; other ops run in order.
        while let Some(op) = pending.take() {
            match op {
                Op::Record(r) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    batch.push(*r);
                    if batch.len() >= BATCH {
                        sink.commit(batch, stats);
                    }
                }
                Op::Feedback(f, reply) => {
                    sink.commit(batch, stats);
                    let _ = reply.send(sink.feedback(&f, stats));
                }
                Op::Flush(reply) => {
                    sink.commit(batch, stats);
                    sink.replay(stats, false);
                    let _ = reply.send(());
                }
                Op::Shutdown(reply) => {
                    sink.commit(batch, stats);
                    sink.replay(stats, false);
                    return Some(reply);
                }
            }
            pending = rx.try_recv().ok();
        }
        sink.commit(batch, stats);
        sink.replay(stats, false);
        if let Some(ms) = sink.retention_ms.filter(|_| last_prune.elapsed() >= PRUNE_EVERY) {
            last_prune = Instant::now();
            match sink.prune(now_ms() - ms) {
                Ok(n) => {
                    stats.pruned.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!("decision log retention failed: {e}"),
            }
        }
    }
    sink.commit(batch, stats);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FeedbackOutcome, PromptLogging};
    use crate::Store;

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
            spool: PathBuf::new(),
            required: false,
            queue_capacity: 10_000,
            retention_days: Some(30),
        })
        .unwrap();
        for i in 0..1000 {
            assert!(writer.log(record(i)));
        }
        // Feedback right after the record: the writer has written the record first.
        let fb = Feedback {
            request_id: "r999".into(),
            api_key: None,
            score: 0.5,
            comment: Some("ok".into()),
            ts_ms: now_ms(),
        };
        assert_eq!(writer.feedback(fb).unwrap().outcome, FeedbackOutcome::Recorded);
        writer.flush();
        assert_eq!(writer.stats().written.load(Ordering::Relaxed), 1000);
        assert_eq!(writer.stats().queued.load(Ordering::Relaxed), 0);
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 1000);
        writer.shutdown();
        assert!(!writer.log(record(5000)), "a stopped writer drops rows");
        assert_eq!(writer.stats().dropped.load(Ordering::Relaxed), 1);
        assert!(matches!(
            writer.feedback(Feedback { request_id: "r1".into(), api_key: None, score: 1.0, comment: None, ts_ms: 0 }),
            Err(StoreError::WriterStopped)
        ));
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let writer = LogWriter::start(&WriterOptions {
            path: dir.path().join("log.sqlite"),
            url: None,
            spool: PathBuf::new(),
            required: false,
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
            spool: PathBuf::new(),
            required: false,
            queue_capacity: 8,
            retention_days: Some(30),
        })
        .unwrap();
        assert_eq!(writer.stats().pruned.load(Ordering::Relaxed), 1);
        assert_eq!(Store::open(&path).unwrap().count().unwrap(), 1);
    }
}
