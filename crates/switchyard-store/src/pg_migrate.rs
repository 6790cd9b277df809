//! Migration of the PostgreSQL log to schema 9: the dashboard's covering index (its sums in `INCLUDE`), and
//! the derived columns and feedback scores filled in for rows an older build wrote.

use postgres::Client;

use crate::derived::of_columns;
use crate::StoreError;

/// The dashboard's covering index: the range scan reads it alone (where the visibility map allows).
pub(crate) const STATS_INDEX: &str = "CREATE INDEX IF NOT EXISTS decisions_stats ON decisions (ts_ms)
    INCLUDE (endpoint, status, chosen_model, domain, complexity, api_key, experiment, arm, cost_usd, input_tokens,
    output_tokens, latency_ms, cache_hit, cache_saved_usd, attempts_n, deployment, upstream_ms, failed_deployments,
    score, chosen_p);";

/// Rows read and updated per transaction by the migration.
const BATCH: i64 = 5_000;

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
            tx.execute(
                &update,
                &[&id, &d.chosen_p, &d.attempts_n, &d.deployment, &d.upstream_ms, &d.failed_deployments],
            )
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
