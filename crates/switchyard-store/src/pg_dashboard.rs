//! The dashboard over the replicas' PostgreSQL log: the covering index (its sums in `INCLUDE`), the range
//! scan streamed row by row, the recent rows, and the migration to schema 9.

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use crate::dashboard::acc::{Acc, StatRow};
use crate::dashboard::{Dashboard, DashboardQuery, Pricing, Recent, STAT_COLUMNS};
use crate::derived::of_columns;
use crate::pg::PgStore;
use crate::StoreError;

/// The dashboard's covering index: the range scan reads it alone (where the visibility map allows).
pub(crate) const STATS_INDEX: &str = "CREATE INDEX IF NOT EXISTS decisions_stats ON decisions (ts_ms)
    INCLUDE (endpoint, status, chosen_model, domain, complexity, api_key, experiment, arm, cost_usd, input_tokens,
    output_tokens, latency_ms, cache_hit, cache_saved_usd, attempts_n, deployment, upstream_ms, failed_deployments,
    score, chosen_p);";

/// Rows read and updated per transaction by the migration.
const BATCH: i64 = 5_000;

impl PgStore {
    /// The dashboard's view of `query`'s range, prices from `pricing`.
    pub fn dashboard(&mut self, query: &DashboardQuery, pricing: &Pricing<'_>) -> Result<Dashboard, StoreError> {
        self.ensure_connected()?;
        let started = std::time::Instant::now();
        let mut acc = Acc::new(query);
        let sql = format!("SELECT {STAT_COLUMNS} FROM decisions WHERE ts_ms >= $1 AND ts_ms < $2");
        let params: [&(dyn postgres::types::ToSql + Sync); 2] = [&query.from_ms, &query.to_ms];
        let shown = self.shown_url().to_string();
        let fail = |source| StoreError::postgres(&shown, source);
        let mut rows = self.client.query_raw(sql.as_str(), params).map_err(fail)?;
        while let Some(r) = rows.next().map_err(fail)? {
            acc.add(&stat_row(&r).map_err(fail)?);
        }
        drop(rows);
        let mut recent = Vec::new();
        self.newest(query.from_ms, query.to_ms, query.recent, |r| recent.push(Recent::of(r.record)))?;
        let query_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(crate::dashboard::assemble(acc.finish(query, pricing), query, recent, query_ms, "postgres"))
    }
}

/// One row of the scan.
fn stat_row(r: &postgres::Row) -> Result<StatRow<'_>, postgres::Error> {
    Ok(StatRow {
        ts_ms: r.try_get(0)?,
        endpoint: r.try_get(1)?,
        status: r.try_get(2)?,
        chosen_model: r.try_get(3)?,
        domain: r.try_get(4)?,
        complexity: r.try_get(5)?,
        api_key: r.try_get(6)?,
        experiment: r.try_get(7)?,
        arm: r.try_get(8)?,
        cost_usd: r.try_get(9)?,
        input_tokens: r.try_get(10)?,
        output_tokens: r.try_get(11)?,
        latency_ms: r.try_get(12)?,
        cache_hit: r.try_get::<_, Option<bool>>(13)?.unwrap_or(false),
        cache_saved_usd: r.try_get(14)?,
        attempts_n: r.try_get(15)?,
        deployment: r.try_get(16)?,
        upstream_ms: r.try_get(17)?,
        failed_deployments: r.try_get(18)?,
        score: r.try_get(19)?,
        chosen_p: r.try_get(20)?,
    })
}

/// Fills the columns schema 9 derives, and the feedback score, in rows an older build wrote (called under
/// the schema lock, once).
pub(crate) fn backfill(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = |source| StoreError::postgres(shown, source);
    loop {
        let mut tx = client.transaction().map_err(fail)?;
        let rows = tx
            .query(
                "SELECT request_id, chosen_model, decided_model, estimates, attempts FROM decisions
                 WHERE attempts_n IS NULL LIMIT $1",
                &[&BATCH],
            )
            .map_err(fail)?;
        if rows.is_empty() {
            break;
        }
        let update = tx
            .prepare(
                "UPDATE decisions SET chosen_p = $2, attempts_n = $3, deployment = $4, upstream_ms = $5,
                 failed_deployments = $6 WHERE request_id = $1",
            )
            .map_err(fail)?;
        for row in &rows {
            let id: String = row.get(0);
            let estimates: String = row.get(3);
            let attempts: String = row.get(4);
            let d = of_columns(row.get(1), row.get(2), &estimates, &attempts);
            tx.execute(&update, &[&id, &d.chosen_p, &d.attempts_n, &d.deployment, &d.upstream_ms, &d.failed_deployments])
                .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
    }
    client
        .execute(
            "UPDATE decisions d SET score = f.score FROM feedback f WHERE f.request_id = d.request_id AND d.score IS NULL",
            &[],
        )
        .map_err(fail)?;
    Ok(())
}
