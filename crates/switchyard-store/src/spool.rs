//! The local spool of a PostgreSQL decision log: while the database cannot be reached, the writer appends
//! each batch here (a SQLite file in WAL mode, one row per record in arrival order) and replays the rows, oldest
//! first, once the database answers again. A row leaves the spool only after PostgreSQL has committed it, and
//! PostgreSQL's insert replaces a row with the same request id, so a replay interrupted between the two (a
//! crash, a kill) writes some rows twice and still leaves one row per request.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::record::DecisionRecord;
use crate::StoreError;

/// A spool file.
pub struct Spool {
    conn: Connection,
    path: PathBuf,
}

impl Spool {
    /// Opens (creating it and its folder if needed) the spool at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io { path: dir.to_path_buf(), source })?;
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL);",
        )
        .map_err(open_err)?;
        Ok(Self { conn, path: path.to_path_buf() })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records, in order, in one transaction.
    pub fn append(&mut self, records: &[DecisionRecord]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO spool (record) VALUES (?1)")?;
            for r in records {
                insert.execute(params![serde_json::to_string(r)?])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Rows waiting to be replayed.
    pub fn len(&self) -> Result<u64, StoreError> {
        let n: i64 = self.conn.query_row("SELECT COUNT(*) FROM spool", [], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let any: Option<i64> = self.conn.query_row("SELECT seq FROM spool LIMIT 1", [], |r| r.get(0)).optional()?;
        Ok(any.is_none())
    }

    /// The oldest `limit` rows: their last sequence number and the records. A row that no longer parses (written
    /// by a future version, or damaged) is skipped with a warning rather than blocking the replay for good.
    pub fn oldest(&self, limit: usize) -> Result<Option<(i64, Vec<DecisionRecord>)>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT seq, record FROM spool ORDER BY seq LIMIT ?1")?;
        let rows = stmt.query_map(params![limit as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let (mut last, mut records) = (None, Vec::new());
        for row in rows {
            let (seq, text) = row?;
            last = Some(seq);
            match serde_json::from_str(&text) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!(
                    "decision log spool {}: row {seq} cannot be read ({e}); skipping it",
                    self.path.display()
                ),
            }
        }
        Ok(last.map(|seq| (seq, records)))
    }

    /// Removes every row up to and including `seq` (after they were committed elsewhere); returns how many.
    pub fn remove_through(&mut self, seq: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute("DELETE FROM spool WHERE seq <= ?1", params![seq])? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize) -> DecisionRecord {
        DecisionRecord { request_id: format!("r{id}"), ts_ms: id as i64, status: 200, ..DecisionRecord::default() }
    }

    #[test]
    fn rows_come_back_in_order_and_leave_only_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/spool.sqlite");
        let mut spool = Spool::open(&path).unwrap();
        assert!(spool.is_empty().unwrap());
        spool.append(&(0..5).map(record).collect::<Vec<_>>()).unwrap();
        spool.append(&(5..8).map(record).collect::<Vec<_>>()).unwrap();
        assert_eq!(spool.len().unwrap(), 8);
        let (seq, first) = spool.oldest(3).unwrap().unwrap();
        assert_eq!(first.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["r0", "r1", "r2"]);
        // Reading does not remove: a replay that fails before `remove_through` reads the same rows again.
        assert_eq!(spool.oldest(3).unwrap().unwrap().1, first);
        spool.remove_through(seq).unwrap();
        drop(spool);
        // The spool survives a restart.
        let spool = Spool::open(&path).unwrap();
        let (_, rest) = spool.oldest(100).unwrap().unwrap();
        assert_eq!(rest.len(), 5);
        assert_eq!(rest[0], record(3));
    }

    #[test]
    fn an_unreadable_row_is_skipped_not_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(&dir.path().join("spool.sqlite")).unwrap();
        spool.append(&[record(1)]).unwrap();
        spool.conn.execute("INSERT INTO spool (record) VALUES ('not json')", []).unwrap();
        spool.append(&[record(2)]).unwrap();
        let (seq, rows) = spool.oldest(10).unwrap().unwrap();
        assert_eq!(rows, [record(1), record(2)]);
        spool.remove_through(seq).unwrap();
        assert!(spool.is_empty().unwrap());
        assert!(spool.oldest(10).unwrap().is_none());
    }
}
