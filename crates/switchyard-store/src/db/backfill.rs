//! Migration to schema 9 in SQLite: the derived columns and the feedback score, filled in for rows an older
//! build wrote, in batches of one transaction each, paged by rowid so each batch starts where the last ended.
//! A partial index of the rows still to fill makes the check on every open instant.

use rusqlite::params;

use super::Store;
use crate::derived::of_columns;
use crate::StoreError;

/// Rows read and updated per transaction.
const BATCH: i64 = 5_000;

impl Store {
    /// Fills `chosen_p`, `attempts_n`, `deployment`, `upstream_ms`, `failed_deployments` and `score` where an
    /// older build left them empty (`attempts_n` is never empty once filled, so a run cut short resumes).
    pub(super) fn backfill(&mut self) -> Result<(), StoreError> {
        self.conn.execute_batch(
            "CREATE INDEX IF NOT EXISTS decisions_unfilled ON decisions (request_id) WHERE attempts_n IS NULL;",
        )?;
        let pending: bool =
            self.conn
                .query_row("SELECT EXISTS (SELECT 1 FROM decisions WHERE attempts_n IS NULL)", [], |r| r.get(0))?;
        if !pending {
            return Ok(());
        }
        tracing::info!("decision log {}: filling in the dashboard's columns of older rows", self.path.display());
        let mut after = i64::MIN;
        loop {
            let tx = self.conn.transaction()?;
            let batch: Vec<(i64, crate::derived::Derived)> = {
                let mut stmt = tx.prepare(
                    "SELECT rowid, chosen_model, decided_model, estimates, attempts FROM decisions NOT INDEXED
                     WHERE rowid > ?1 AND attempts_n IS NULL ORDER BY rowid LIMIT ?2",
                )?;
                let rows = stmt.query_map([after, BATCH], |r| {
                    let estimates: String = r.get(3)?;
                    let attempts: String = r.get(4)?;
                    Ok((r.get(0)?, of_columns(r.get(1)?, r.get(2)?, &estimates, &attempts)))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let Some((last, _)) = batch.last() else { break };
            after = *last;
            {
                let mut update = tx.prepare(
                    "UPDATE decisions SET chosen_p = ?2, attempts_n = ?3, deployment = ?4, upstream_ms = ?5,
                     failed_deployments = ?6 WHERE rowid = ?1",
                )?;
                for (rowid, d) in &batch {
                    update.execute(params![
                        rowid,
                        d.chosen_p,
                        d.attempts_n,
                        d.deployment,
                        d.upstream_ms,
                        d.failed_deployments
                    ])?;
                }
            }
            tx.commit()?;
        }
        self.conn.execute(
            "UPDATE decisions SET score = (SELECT score FROM feedback f WHERE f.request_id = decisions.request_id)
             WHERE score IS NULL AND request_id IN (SELECT request_id FROM feedback)",
            [],
        )?;
        Ok(())
    }
}
