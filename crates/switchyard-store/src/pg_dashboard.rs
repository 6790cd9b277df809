//! The dashboard over the replicas' PostgreSQL log: the range scan streamed row by row, then the recent rows.

use postgres::fallible_iterator::FallibleIterator;

use crate::dashboard::acc::{Acc, StatRow};
use crate::dashboard::{Dashboard, DashboardQuery, Pricing, Recent, STAT_COLUMNS};
use crate::pg::PgStore;
use crate::StoreError;

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
        let mut view = acc.finish(query, pricing, "postgres");
        (view.recent, view.query_ms) = (recent, query_ms);
        Ok(view)
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
