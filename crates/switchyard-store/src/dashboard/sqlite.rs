//! The dashboard over a SQLite log: one range scan of the covering index, then the recent rows.

use super::acc::{Acc, StatRow};
use super::{Dashboard, DashboardQuery, Pricing, Recent, STAT_COLUMNS};
use crate::db::Store;
use crate::StoreError;

impl Store {
    /// The dashboard's view of `query`'s range, prices from `pricing`.
    pub fn dashboard(&self, query: &DashboardQuery, pricing: &Pricing<'_>) -> Result<Dashboard, StoreError> {
        let started = std::time::Instant::now();
        let mut acc = Acc::new(query);
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {STAT_COLUMNS} FROM decisions INDEXED BY decisions_stats WHERE ts_ms >= ?1 AND ts_ms < ?2"
        ))?;
        let mut rows = stmt.query([query.from_ms, query.to_ms])?;
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> Result<Option<&str>, rusqlite::Error> {
                r.get_ref(i)?
                    .as_str_or_null()
                    .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e)))
            };
            acc.add(&StatRow {
                ts_ms: r.get(0)?,
                endpoint: text(1)?.unwrap_or("-"),
                status: r.get(2)?,
                chosen_model: text(3)?,
                domain: text(4)?,
                complexity: r.get(5)?,
                api_key: text(6)?,
                experiment: text(7)?,
                arm: text(8)?,
                cost_usd: r.get(9)?,
                input_tokens: r.get(10)?,
                output_tokens: r.get(11)?,
                latency_ms: r.get(12)?,
                cache_hit: r.get::<_, Option<bool>>(13)?.unwrap_or(false),
                cache_saved_usd: r.get(14)?,
                attempts_n: r.get(15)?,
                deployment: text(16)?,
                upstream_ms: r.get(17)?,
                failed_deployments: text(18)?,
                score: r.get(19)?,
                chosen_p: r.get(20)?,
            });
        }
        let mut recent = Vec::new();
        self.newest(query.from_ms, query.to_ms, query.recent, |r| recent.push(Recent::of(r.record)))?;
        let query_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(super::assemble(acc.finish(query, pricing), query, recent, query_ms, "sqlite"))
    }
}
