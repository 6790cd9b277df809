//! Migration of the PostgreSQL log to schema 9, run by every replica as it connects, under the schema lock:
//! the derived columns and feedback scores filled in for rows an older build wrote (during a rolling upgrade,
//! older replicas still write such rows: the next replica to connect fills them), and the dashboard's covering
//! index built without blocking writers. Statements here run without the connection's statement timeout: on a
//! large log they take minutes, once.

use postgres::Client;

use crate::derived::of_columns;
use crate::StoreError;

/// The dashboard's covering index: the range scan reads it alone (where the visibility map allows).
const STATS_INDEX: &str = "CREATE INDEX CONCURRENTLY IF NOT EXISTS decisions_stats ON decisions (ts_ms)
    INCLUDE (endpoint, status, chosen_model, domain, complexity, api_key, experiment, arm, cost_usd, input_tokens,
    output_tokens, latency_ms, cache_hit, cache_saved_usd, attempts_n, deployment, upstream_ms, failed_deployments,
    score, chosen_p)";

/// Rows an older build wrote, whose derived columns are still to fill: a small index, empty once they are.
const UNFILLED_INDEX: &str =
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS decisions_unfilled ON decisions (request_id) WHERE attempts_n IS NULL";

/// Rows read and updated per transaction by the migration.
const BATCH: i64 = 5_000;

/// Brings the table to schema 9 (the caller holds the schema lock).
pub(crate) fn migrate(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = |source| StoreError::postgres(shown, source);
    client.batch_execute("SET statement_timeout = 0").map_err(fail)?;
    ensure_index(client, "decisions_unfilled", UNFILLED_INDEX, shown)?;
    let unfilled: bool =
        client.query_one("SELECT EXISTS (SELECT 1 FROM decisions WHERE attempts_n IS NULL)", &[]).map_err(fail)?.get(0);
    if unfilled {
        backfill(client, shown)?;
    }
    ensure_index(client, "decisions_stats", STATS_INDEX, shown)?;
    client.batch_execute("RESET statement_timeout").map_err(fail)
}

/// Creates index `name` with `create` (a `CREATE INDEX CONCURRENTLY`, which writers do not wait for), first
/// dropping one a failed build left invalid.
fn ensure_index(client: &mut Client, name: &str, create: &str, shown: &str) -> Result<(), StoreError> {
    let fail = |source| StoreError::postgres(shown, source);
    let valid: Option<bool> = client
        .query_opt(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             WHERE c.relname = $1 AND c.relnamespace = current_schema()::regnamespace",
            &[&name],
        )
        .map_err(fail)?
        .map(|row| row.get(0));
    if valid == Some(false) {
        tracing::warn!("decision log {shown}: index {name} was left invalid by a failed build; building it again");
        client.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {name}")).map_err(fail)?;
    }
    if valid != Some(true) {
        client.batch_execute(create).map_err(fail)?;
    }
    Ok(())
}

/// Fills the columns schema 9 derives, and the feedback scores, in rows an older build wrote: in batches of
/// one transaction, paged by request id so each batch starts where the last ended.
fn backfill(client: &mut Client, shown: &str) -> Result<(), StoreError> {
    let fail = |source| StoreError::postgres(shown, source);
    tracing::info!("decision log {shown}: filling in the dashboard's columns of rows an older build wrote");
    let mut after = String::new();
    loop {
        let mut tx = client.transaction().map_err(fail)?;
        let rows = tx
            .query(
                "SELECT request_id, chosen_model, decided_model, estimates, attempts FROM decisions
                 WHERE attempts_n IS NULL AND request_id > $1 ORDER BY request_id LIMIT $2",
                &[&after, &BATCH],
            )
            .map_err(fail)?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
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
            "UPDATE decisions d SET score = f.score FROM feedback f
             WHERE f.request_id = d.request_id AND d.score IS DISTINCT FROM f.score",
            &[],
        )
        .map_err(fail)?;
    Ok(())
}
