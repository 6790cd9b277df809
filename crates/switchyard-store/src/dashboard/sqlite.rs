//! The dashboard over a SQLite log: range scans of the covering index, one per core over a part of the range,
//! merged; then the recent rows.

use super::acc::{Acc, StatRow};
use super::{Dashboard, DashboardQuery, Pricing, Recent, STAT_COLUMNS};
use crate::db::Store;
use crate::StoreError;

/// How much of the file SQLite maps into memory for the scan (a 1M-row log's covering index is ~150 MB).
const MMAP_BYTES: i64 = 1 << 30;

/// The most threads a scan is split across.
const MAX_THREADS: usize = 4;

impl Store {
    /// The dashboard's view of `query`'s range, prices from `pricing`. The range is split by time across the
    /// machine's cores, each part scanned on its own read-only connection, and the parts' sums merged.
    pub fn dashboard(&self, query: &DashboardQuery, pricing: &Pricing<'_>) -> Result<Dashboard, StoreError> {
        let started = std::time::Instant::now();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_THREADS);
        let span = query.to_ms - query.from_ms;
        let parts: Vec<(i64, i64)> = (0..threads as i64)
            .map(|i| (query.from_ms + span * i / threads as i64, query.from_ms + span * (i + 1) / threads as i64))
            .filter(|(a, b)| a < b)
            .collect();
        let mut acc = Acc::new(query);
        let path = self.path();
        std::thread::scope(|scope| -> Result<(), StoreError> {
            let helpers: Vec<_> = parts[1..]
                .iter()
                .map(|&(from, to)| {
                    scope.spawn(move || -> Result<Acc, StoreError> {
                        let mut part = Acc::new(query);
                        Store::open_read_only(path)?.scan(from, to, &mut part)?;
                        Ok(part)
                    })
                })
                .collect();
            if let Some(&(from, to)) = parts.first() {
                self.scan(from, to, &mut acc)?;
            }
            for helper in helpers {
                let part = helper.join().map_err(|_| StoreError::Scan("a scanning thread panicked".into()))??;
                acc.merge(part);
            }
            Ok(())
        })?;
        let mut recent = Vec::new();
        self.newest(query.from_ms, query.to_ms, query.recent, |r| recent.push(Recent::of(r.record)))?;
        let query_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut view = acc.finish(query, pricing, "sqlite");
        (view.recent, view.query_ms) = (recent, query_ms);
        Ok(view)
    }

    /// Adds the rows logged in `from_ms..to_ms` to `acc`, read from the covering index alone.
    fn scan(&self, from_ms: i64, to_ms: i64, acc: &mut Acc) -> Result<(), StoreError> {
        // The index is read through the OS's page cache in place, not copied into SQLite's small cache.
        self.conn().pragma_update(None, "mmap_size", MMAP_BYTES)?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {STAT_COLUMNS} FROM decisions INDEXED BY decisions_stats WHERE ts_ms >= ?1 AND ts_ms < ?2"
        ))?;
        let mut rows = stmt.query([from_ms, to_ms])?;
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
        Ok(())
    }
}
