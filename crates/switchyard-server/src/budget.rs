//! Budget periods on the UTC calendar: a day, a calendar month, or the key's whole life, with the date
//! arithmetic (Howard Hinnant's civil-date algorithms) that finds where the current period starts and ends.

use serde::Deserialize;

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

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
