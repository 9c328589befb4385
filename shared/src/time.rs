//! One timestamp type for the whole system: Unix milliseconds, rendered as
//! RFC 3339 UTC with milliseconds (`2026-11-23T15:04:05.123Z`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (moved by `test_clock`, in tests only).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
        + test_clock::offset_ms()
}

/// A test hook, not a setting: it moves this process's clock forward so a
/// test sees what happens hours later (a rolled key's overlap ending)
/// without waiting. The hub never moves it itself: it is zero unless
/// `HUB_TEST_CLOCK_OFFSET` (a duration such as `2h`, read once, at the
/// first reading of the clock) is set for a process, or an in-process test
/// calls `advance`.
pub mod test_clock {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Once;

    static OFFSET_MS: AtomicI64 = AtomicI64::new(0);
    static FROM_ENV: Once = Once::new();

    pub(super) fn offset_ms() -> i64 {
        FROM_ENV.call_once(|| {
            if let Some(d) = std::env::var("HUB_TEST_CLOCK_OFFSET")
                .ok()
                .and_then(|s| super::parse_duration(&s))
            {
                eprintln!(
                    "HUB_TEST_CLOCK_OFFSET: this process's clock runs {} s ahead (a test hook)",
                    d.as_secs()
                );
                OFFSET_MS.fetch_add(d.as_millis() as i64, Ordering::Relaxed);
            }
        });
        OFFSET_MS.load(Ordering::Relaxed)
    }

    /// Move this process's clock forward by `d` (tests only).
    pub fn advance(d: std::time::Duration) {
        offset_ms();
        OFFSET_MS.fetch_add(d.as_millis() as i64, Ordering::Relaxed);
    }
}

/// Days since 1970-01-01 → (year, month, day). Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    push_ms(&mut out, ms);
    out
}

/// [`format_ms`] appended to `out` (no allocation for years 0–9999).
pub fn push_ms(out: &mut String, ms: i64) {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if !(0..=9999).contains(&y) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z"
        );
        return;
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, i64::from(mo));
    put(8, 2, i64::from(d));
    put(11, 2, h);
    put(14, 2, mi);
    put(17, 2, s);
    put(20, 3, milli);
    // Every byte is an ASCII digit or separator.
    out.push_str(std::str::from_utf8(&b).unwrap_or_default());
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// A calendar date `YYYY-MM-DD` (years 1000–9999), checked against the calendar.
pub fn parse_date(s: &str) -> Option<(i64, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, m, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    if y < 1000 || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some((y, m, d))
}

/// The earliest Unix milliseconds a timestamp may be: 0001-01-01T00:00:00Z.
pub const MIN_MS: i64 = -62_135_596_800_000;
/// The latest: 9999-12-31T23:59:59.999Z (RFC 3339 has four-digit years).
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Unix milliseconds an RFC 3339 timestamp can show (years 0001–9999).
pub fn in_range(ms: i64) -> Option<i64> {
    (MIN_MS..=MAX_MS).contains(&ms).then_some(ms)
}

/// An RFC 3339 timestamp with any offset, or Unix milliseconds (digits, optionally
/// negative; years 0001–9999), → Unix milliseconds. Sub-millisecond digits are
/// truncated.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let t = s.trim();
    if !t.is_empty() && t.len() <= 16 {
        let digits = t.strip_prefix('-').unwrap_or(t);
        if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
            return t.parse().ok().and_then(in_range);
        }
    }
    let ts: jiff::Timestamp = t.parse().ok()?;
    Some(ts.as_millisecond())
}

/// Canonical RFC 3339 form of any accepted timestamp input.
pub fn normalize_timestamp(s: &str) -> Option<String> {
    parse_timestamp(s).map(format_ms)
}

/// A duration such as `250ms`, `30s`, `5m` or `2h`.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.')?);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_milliseconds_stay_within_four_digit_years() {
        assert_eq!(parse_timestamp("253402300799999"), Some(MAX_MS));
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_ms(MIN_MS), "0001-01-01T00:00:00.000Z");
        assert_eq!(parse_timestamp("253402300800000"), None);
        assert_eq!(parse_timestamp("-62135596800001"), None);
        assert_eq!(in_range(957_455_580_639_791_104), None);
    }

    #[test]
    fn formats_with_millis() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        // The digits written by hand agree with `format!` everywhere.
        let reference = |ms: i64| {
            let (y, mo, d) = civil_from_days(ms.div_euclid(86_400_000));
            let rem = ms.rem_euclid(86_400_000);
            format!(
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                rem / 3_600_000,
                rem / 60_000 % 60,
                rem / 1000 % 60,
                rem % 1000
            )
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Years from about -2000 to 12000.
            let ms = (x % 440_000_000_000_000) as i64 - 125_000_000_000_000;
            assert_eq!(format_ms(ms), reference(ms), "{ms}");
        }
        for ms in [
            -1,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
        ] {
            assert_eq!(format_ms(ms), reference(ms), "{ms}");
        }
        assert_eq!(format_ms(1_479_664_146_607), "2016-11-20T17:49:06.607Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_rfc3339_and_millis() {
        assert_eq!(parse_timestamp("1479664146607"), Some(1_479_664_146_607));
        assert_eq!(
            parse_timestamp("2016-11-20T17:49:06.607Z"),
            Some(1_479_664_146_607)
        );
        assert_eq!(
            parse_timestamp("2016-11-20T18:49:06.607+01:00"),
            Some(1_479_664_146_607)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn dates_follow_the_calendar() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("1985-13-01").is_none());
        assert!(parse_date("1985-7-12").is_none());
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            civil_from_days(days_from_civil(2026, 11, 25)),
            (2026, 11, 25)
        );
    }
}
