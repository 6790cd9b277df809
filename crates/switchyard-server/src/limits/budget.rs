//! Budget periods on the UTC calendar: a day, a calendar month, or the key's whole life, and where the current
//! period starts and ends (the date arithmetic is the decision log's, `switchyard_store::days_from_civil`).

use serde::Deserialize;
use switchyard_store::{civil_from_days, days_from_civil};

/// How often a budget renews.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// Every UTC day.
    Day,
    /// Every calendar month (UTC).
    #[default]
    Month,
    /// Never: the budget is for the key's lifetime.
    Total,
}

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

impl BudgetPeriod {
    /// The start of the period holding `now_ms` (milliseconds since the epoch), and the start of the next
    /// (`None` for `total`).
    pub fn bounds(self, now_ms: i64) -> (i64, Option<i64>) {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Self::Total => (i64::MIN, None),
            Self::Day => (day * DAY_MS, Some((day + 1) * DAY_MS)),
            Self::Month => {
                let (y, m, _) = civil_from_days(day);
                let start = days_from_civil(y, m, 1) * DAY_MS;
                let next = if m == 12 { days_from_civil(y + 1, 1, 1) } else { days_from_civil(y, m + 1, 1) };
                (start, Some(next * DAY_MS))
            }
        }
    }

    /// The period as an adjective: `daily`, `monthly`, `total`.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Day => "daily",
            Self::Month => "monthly",
            Self::Total => "total",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_utc_calendar() {
        // 2026-11-29T06:00Z
        let now = days_from_civil(2026, 11, 29) * DAY_MS + 6 * 3_600_000;
        assert_eq!(civil_from_days(days_from_civil(2026, 11, 29)), (2026, 11, 29));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(BudgetPeriod::Day.bounds(now), (now - 6 * 3_600_000, Some(now + 18 * 3_600_000)));
        let (start, end) = BudgetPeriod::Month.bounds(now);
        assert_eq!((start, end), (days_from_civil(2026, 11, 1) * DAY_MS, Some(days_from_civil(2026, 12, 1) * DAY_MS)));
        let dec = days_from_civil(2026, 12, 31) * DAY_MS;
        assert_eq!(BudgetPeriod::Month.bounds(dec).1, Some(days_from_civil(2027, 1, 1) * DAY_MS));
        assert_eq!(BudgetPeriod::Total.bounds(now).1, None);
    }
}
