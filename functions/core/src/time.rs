//! Time without a clock: UTC milliseconds since the Unix epoch, RFC 3339 text, and durations.
//!
//! The hot path decodes one timestamp per event, so parsing is hand-written for the shapes
//! producers actually send (`2026-11-24T05:03:07.123Z`, offsets, a space instead of `T`) rather
//! than going through a general date library.

use thiserror::Error;

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60 * MS_PER_SECOND;
pub const MS_PER_HOUR: i64 = 60 * MS_PER_MINUTE;
pub const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TimeError {
    #[error("timestamp {0:?} is not RFC 3339 (expected e.g. 2026-11-24T05:03:07.123Z)")]
    Malformed(String),
    #[error("timestamp {0:?} has no UTC offset (add Z or +00:00)")]
    MissingOffset(String),
    #[error("timestamp {0:?} is out of range: {1}")]
    OutOfRange(String, &'static str),
    #[error("duration {0:?} is not valid (expected e.g. 500ms, 10s, 5m, 1h, 1d)")]
    Duration(String),
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Civil fields of a UTC instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

pub fn to_civil(ms: i64) -> Civil {
    let days = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: (rem / MS_PER_HOUR) as u32,
        minute: ((rem % MS_PER_HOUR) / MS_PER_MINUTE) as u32,
        second: ((rem % MS_PER_MINUTE) / MS_PER_SECOND) as u32,
        millis: (rem % MS_PER_SECOND) as u32,
    }
}

fn push_digits(out: &mut String, value: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut v = value;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    // Digits are ASCII by construction.
    out.push_str(std::str::from_utf8(&buf[..width]).unwrap_or("0"));
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` to `out`.
pub fn write_rfc3339_ms(out: &mut String, ms: i64) {
    let c = to_civil(ms);
    push_digits(out, c.year.clamp(0, 9999) as u32, 4);
    out.push('-');
    push_digits(out, c.month, 2);
    out.push('-');
    push_digits(out, c.day, 2);
    out.push('T');
    push_digits(out, c.hour, 2);
    out.push(':');
    push_digits(out, c.minute, 2);
    out.push(':');
    push_digits(out, c.second, 2);
    out.push('.');
    push_digits(out, c.millis, 3);
    out.push('Z');
}

pub fn format_rfc3339_ms(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    write_rfc3339_ms(&mut s, ms);
    s
}

/// `YYYY-MM-DD` of the UTC day containing `ms` (a lake partition value).
pub fn format_date(ms: i64) -> String {
    let c = to_civil(ms);
    let mut s = String::with_capacity(10);
    push_digits(&mut s, c.year.clamp(0, 9999) as u32, 4);
    s.push('-');
    push_digits(&mut s, c.month, 2);
    s.push('-');
    push_digits(&mut s, c.day, 2);
    s
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let slice = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// Whether a timestamp without an offset is an error or taken as UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// RFC 3339: an offset (`Z`, `+HH:MM`) is required. Used for events on the wire.
    Required,
    /// Naive timestamps are UTC (NAB's `YYYY-MM-DD HH:MM:SS`).
    AssumeUtc,
}

/// Parses RFC 3339 (`T`, `t` or a space between date and time; fractions truncated to
/// milliseconds) into UTC milliseconds.
pub fn parse_timestamp_ms(text: &str, offset: Offset) -> Result<i64, TimeError> {
    let malformed = || TimeError::Malformed(text.to_string());
    let b = text.trim().as_bytes();
    let year = digits(b, 0, 4).ok_or_else(malformed)? as i64;
    let month = digits(b, 5, 2).ok_or_else(malformed)?;
    let day = digits(b, 8, 2).ok_or_else(malformed)?;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return Err(malformed());
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return Err(malformed());
    }
    let hour = digits(b, 11, 2).ok_or_else(malformed)?;
    let minute = digits(b, 14, 2).ok_or_else(malformed)?;
    let second = digits(b, 17, 2).ok_or_else(malformed)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return Err(malformed());
    }
    if !(1..=12).contains(&month) {
        return Err(TimeError::OutOfRange(text.into(), "month"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(TimeError::OutOfRange(text.into(), "day of month"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(TimeError::OutOfRange(text.into(), "time of day"));
    }
    let mut at = 19;
    let mut millis = 0u32;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + (b[at] - b'0') as u32;
            }
            at += 1;
        }
        let n = at - start;
        if n == 0 {
            return Err(malformed());
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_ms: i64 = match b.get(at) {
        None if offset == Offset::AssumeUtc => 0,
        None => return Err(TimeError::MissingOffset(text.into())),
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if at + 6 == b.len() && b[at + 3] == b':' => {
            let oh = digits(b, at + 1, 2).ok_or_else(malformed)? as i64;
            let om = digits(b, at + 4, 2).ok_or_else(malformed)? as i64;
            if oh > 23 || om > 59 {
                return Err(TimeError::OutOfRange(text.into(), "UTC offset"));
            }
            let v = oh * MS_PER_HOUR + om * MS_PER_MINUTE;
            if sign == b'+' { v } else { -v }
        }
        _ => return Err(malformed()),
    };
    let days = days_from_civil(year, month, day);
    Ok(days * MS_PER_DAY
        + hour as i64 * MS_PER_HOUR
        + minute as i64 * MS_PER_MINUTE
        + second as i64 * MS_PER_SECOND
        + millis as i64
        - offset_ms)
}

/// Parses `500ms`, `10s`, `5m`, `1h`, `1d` (or a combination such as `1h30m`) into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, TimeError> {
    let bad = || TimeError::Duration(text.to_string());
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if n_end == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ms" => 1,
            "s" => MS_PER_SECOND,
            "m" | "min" => MS_PER_MINUTE,
            "h" => MS_PER_HOUR,
            "d" => MS_PER_DAY,
            _ => return Err(bad()),
        };
        rest = &rest[u_end..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Shortest readable form of a duration: `1m`, `90s`, `250ms`, `1h30m` becomes `90m`.
pub fn format_duration_ms(ms: i64) -> String {
    for (unit, suffix) in [
        (MS_PER_DAY, "d"),
        (MS_PER_HOUR, "h"),
        (MS_PER_MINUTE, "m"),
        (MS_PER_SECOND, "s"),
    ] {
        if ms != 0 && ms % unit == 0 {
            return format!("{}{suffix}", ms / unit);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_common_shapes() {
        let base = parse_timestamp_ms("2026-11-24T05:03:07.123Z", Offset::Required).unwrap();
        assert_eq!(format_rfc3339_ms(base), "2026-11-24T05:03:07.123Z");
        assert_eq!(
            parse_timestamp_ms("2026-11-24 07:03:07.123456+02:00", Offset::Required),
            Ok(base)
        );
        assert_eq!(
            parse_timestamp_ms("2026-11-24T05:03:07Z", Offset::Required),
            Ok(base - 123)
        );
        assert_eq!(
            parse_timestamp_ms("1970-01-01 00:00:01", Offset::AssumeUtc),
            Ok(1000)
        );
    }

    #[test]
    fn rejects_bad_timestamps() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T05:03:07.Z",
            "2026-11-24T05:03:07+0200",
            "2026/11/24T05:03:07Z",
            "2026-11-24T05:03:07Zjunk",
        ] {
            assert!(parse_timestamp_ms(bad, Offset::Required).is_err(), "{bad}");
        }
        assert_eq!(
            parse_timestamp_ms("2026-11-24T05:03:07", Offset::Required),
            Err(TimeError::MissingOffset("2026-11-24T05:03:07".into()))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1h30m"), Ok(90 * MS_PER_MINUTE));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5 minutes").is_err());
        assert!(parse_duration_ms("m").is_err());
        assert_eq!(format_duration_ms(90 * MS_PER_MINUTE), "90m");
        assert_eq!(format_duration_ms(1500), "1500ms");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            let text = format_rfc3339_ms(ms);
            prop_assert_eq!(parse_timestamp_ms(&text, Offset::Required), Ok(ms));
        }
    }
}
