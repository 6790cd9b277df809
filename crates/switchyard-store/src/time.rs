//! Timestamps for humans: `--since` values in, RFC 3339 out (UTC, no time-zone database needed).

/// Reads a duration (`90s`, `30m`, `24h`, `7d`, `2w`) as milliseconds; `None` if it is not one.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last().filter(|c| matches!(c, 's' | 'm' | 'h' | 'd' | 'w'))?;
    let n = text[..text.len() - 1].parse::<u32>().ok()?;
    let seconds: i64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 7 * 86_400,
    };
    Some(i64::from(n) * seconds * 1000)
}

/// Reads a `--since` value: a duration back from `now_ms` (`30m`, `24h`, `7d`), a date (`2026-11-01`, midnight
/// UTC) or an RFC 3339 UTC time (`2026-11-01T12:00:00Z`). Returns milliseconds since the Unix epoch.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let text = text.trim();
    let bad = || {
        format!("cannot read {text:?} as a time: use a duration (30m, 24h, 7d), a date (2026-11-01) or 2026-11-01T12:00:00Z")
    };
    if let Some(ms) = parse_duration_ms(text) {
        return Ok(now_ms - ms);
    }
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let numbers = |s: &str, sep: char| -> Option<Vec<i64>> { s.split(sep).map(|p| p.parse().ok()).collect() };
    let ymd = numbers(date, '-').filter(|v| v.len() == 3).ok_or_else(bad)?;
    let (y, m, d) = (ymd[0], ymd[1], ymd[2]);
    if !(1..=12).contains(&m) || !(1..=days_in_month(y, m)).contains(&d) {
        return Err(bad());
    }
    let mut seconds = days_from_civil(y, m, d) * 86_400;
    if let Some(time) = time {
        let time = time
            .strip_suffix('Z')
            .or_else(|| time.strip_suffix("+00:00"))
            .ok_or_else(|| format!("{text:?}: only UTC times are accepted (end the time with Z)"))?;
        let time = time.split('.').next().unwrap_or(time);
        let hms = numbers(time, ':').filter(|v| (2..=3).contains(&v.len())).ok_or_else(bad)?;
        let (h, mi, s) = (hms[0], hms[1], hms.get(2).copied().unwrap_or(0));
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..61).contains(&s) {
            return Err(bad());
        }
        seconds += h * 3600 + mi * 60 + s;
    }
    Ok(seconds * 1000)
}

/// Milliseconds since the epoch as `2026-11-25T15:14:27.123Z`.
pub fn format_rfc3339(ms: i64) -> String {
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a day number: the inverse of [`days_from_civil`].
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        // 2026-11-25T15:14:27Z, checked with `date -u -d @1795619667`.
        let now = 1_795_619_667_000;
        assert_eq!(format_rfc3339(now), "2026-11-25T15:14:27.000Z");
        assert_eq!(parse_since("2026-11-25T15:14:27Z", 0).unwrap(), now);
        assert_eq!(parse_since("1970-01-01", 5).unwrap(), 0);
        assert_eq!(parse_since("2000-03-01", 0).unwrap(), 951_868_800_000);
        assert_eq!(parse_since("7d", now).unwrap(), now - 7 * 86_400_000);
        assert_eq!(parse_since("90m", now).unwrap(), now - 90 * 60_000);
        for (ms, text) in [(0, "1970-01-01T00:00:00.000Z"), (951_782_400_000, "2000-02-29T00:00:00.000Z")] {
            assert_eq!(format_rfc3339(ms), text);
            assert_eq!(parse_since(text, 0).unwrap(), ms);
        }
        for bad in ["yesterday", "2026-02-30", "2026-13-01", "2026-11-01T25:00:00Z", "2026-11-01T12:00:00+02:00", "7y"]
        {
            assert!(parse_since(bad, now).is_err(), "{bad}");
        }
    }
}
