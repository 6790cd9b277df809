//! `GET /admin/stats`'s query: the range, the buckets, the reference model and how many recent decisions.

use serde::Deserialize;
use switchyard_store::{parse_duration_ms, parse_since, DashboardQuery};

/// The range shown when none is asked for.
const DEFAULT_FROM: &str = "24h";
/// Buckets a range is split into when no `bucket` is asked for.
const AUTO_BUCKETS: i64 = 120;
/// Recent decisions listed by default.
const DEFAULT_RECENT: usize = 50;

/// The query string, as text: each value is read (and refused by name) in [`StatsParams::query`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsParams {
    /// Start: milliseconds, RFC 3339, a date, or a duration back from `to`.
    pub from: Option<String>,
    /// End: milliseconds, RFC 3339 or a date (default now).
    pub to: Option<String>,
    /// Bucket width: a duration (`5m`, `1h`, `1d`) or milliseconds.
    pub bucket: Option<String>,
    /// The model the savings price requests at.
    pub reference: Option<String>,
    /// How many recent decisions.
    pub recent: Option<String>,
}

/// Milliseconds since the epoch, an RFC 3339 UTC time or a date; with `back_from`, also a duration back from it.
fn instant(name: &str, text: &str, now_ms: i64, back_from: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    parse_since(text, back_from)
        .map_err(|e| format!("`{name}`: {e}, or milliseconds since the epoch (now is {now_ms})"))
}

impl StatsParams {
    /// The store's query, checked.
    pub fn query(&self, now_ms: i64) -> Result<DashboardQuery, String> {
        let to = match &self.to {
            Some(text) => instant("to", text, now_ms, now_ms)?,
            None => now_ms,
        };
        if !(0..=switchyard_store::MAX_TIME_MS).contains(&to) {
            return Err(format!("`to` ({to}) is outside 1970 to 2200; give a time in that span"));
        }
        let from = instant("from", self.from.as_deref().unwrap_or(DEFAULT_FROM), now_ms, to)?;
        let bucket = match self.bucket.as_deref().map(str::trim) {
            None | Some("") => DashboardQuery::auto_bucket(from, to, AUTO_BUCKETS),
            Some(text) => match (text.parse::<i64>(), parse_duration_ms(text)) {
                (Ok(ms), _) => ms,
                (_, Some(ms)) => ms,
                _ => {
                    return Err(format!("`bucket`: cannot read {text:?}; use a duration (5m, 1h, 1d) or milliseconds"))
                }
            },
        };
        let recent = match self.recent.as_deref() {
            None => DEFAULT_RECENT,
            Some(text) => text.trim().parse::<usize>().map_err(|_| {
                format!("`recent`: cannot read {text:?}; use a count from 0 to {}", switchyard_store::MAX_RECENT)
            })?,
        };
        DashboardQuery::new(from, to, bucket, recent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn params(from: Option<&str>, to: Option<&str>, bucket: Option<&str>) -> StatsParams {
        StatsParams {
            from: from.map(Into::into),
            to: to.map(Into::into),
            bucket: bucket.map(Into::into),
            ..StatsParams::default()
        }
    }

    #[test]
    fn the_default_is_the_last_day_in_at_most_120_buckets() {
        let q = params(None, None, None).query(NOW).unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.bucket_ms, q.recent), (NOW - 24 * HOUR, NOW, 15 * 60_000, 50));
    }

    #[test]
    fn times_read_as_milliseconds_dates_or_durations_back_from_to() {
        let q = params(Some("7d"), Some("2026-12-01"), Some("1d")).query(NOW).unwrap();
        let to = parse_since("2026-12-01", 0).unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.bucket_ms), (to - 7 * 24 * HOUR, to, 24 * HOUR));
        let q = params(Some("1000"), Some("5000"), Some("1000")).query(NOW).unwrap();
        assert_eq!((q.from_ms, q.to_ms, q.bucket_ms, q.buckets()), (1000, 5000, 1000, 4));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(params(Some("yesterday"), None, None).query(NOW).unwrap_err().starts_with("`from`"));
        assert!(params(None, Some("soon"), None).query(NOW).unwrap_err().starts_with("`to`"));
        assert!(params(None, None, Some("weekly")).query(NOW).unwrap_err().starts_with("`bucket`"));
        assert!(params(Some("30d"), None, Some("1m")).query(NOW).unwrap_err().contains("at most 2000"));
        assert!(params(None, Some("-9223372036854775808"), None).query(NOW).unwrap_err().contains("1970 to 2200"));
        assert!(params(Some("-5"), None, None).query(NOW).unwrap_err().contains("`from`"));
        let recent = StatsParams { recent: Some("all".into()), ..StatsParams::default() };
        assert!(recent.query(NOW).unwrap_err().starts_with("`recent`"));
    }
}
