//! Time series as people export them (Prometheus, Grafana, CloudWatch, spreadsheets, NAB): a CSV
//! with a time column and a value column, read for `sluice detect`.
//!
//! What is accepted, per row:
//! - **time**: RFC 3339 with an offset (`2026-11-24T05:01:00Z`, `…+02:00` or `…+0200`, a space
//!   for the `T`, seconds optional); a zone-less date and time (`2026-11-24 05:01:00`, or a date
//!   alone for midnight), taken in the zone the caller names (UTC by default; a repeated hour when
//!   daylight saving ends is its first occurrence, a skipped one an error); or epoch seconds,
//!   milliseconds, microseconds or nanoseconds, told apart by magnitude as `fetch` tells the first
//!   two (below 10¹¹ is seconds: 10¹¹ seconds is the year 5138, 10¹¹ ms is 1973), fractions
//!   allowed.
//! - **value**: a decimal number (exponents allowed). An empty value, `NaN`, `null`, `None` or
//!   `-`, and `±Inf`, are a *missing point*: the row is skipped and counted, not an error for the
//!   whole file.
//!
//! A UTF-8 byte-order mark, quoted fields and CRLF line endings are handled by the `csv` crate.
//! Semicolon-separated files and decimal commas are not supported: the error says so.

use std::fmt;

use chrono::TimeZone;
use thiserror::Error;

use crate::time::{Offset, TimeError, parse_timestamp_ms};

/// Which columns to read and how to read zone-less times.
#[derive(Debug, Clone, Default)]
pub struct SeriesOptions {
    /// The time column's header; by default `timestamp`, `time`, `date`, `datetime` or `ts`
    /// (case-insensitive), else the first column of a two-column file.
    pub time_column: Option<String>,
    /// The value column's header; by default `value`, else the other column of a two-column
    /// file.
    pub value_column: Option<String>,
    /// The zone of times written without an offset (UTC when `None`).
    pub zone: Option<chrono_tz::Tz>,
}

/// A series read from CSV, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// UTC milliseconds of each kept row.
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    /// Each kept row's time exactly as written (so output rows line up with the input).
    pub stamps: Vec<String>,
    /// Rows without a value, skipped: (1-based line, the value as written).
    pub missing: Vec<(usize, String)>,
}

/// Why a series file could not be read; every variant names the line or the column.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error("the file is empty: a header line naming a time and a value column is expected")]
    Empty,
    #[error(
        "line 1 is separated by semicolons ({0:?}): only comma-separated files with a decimal point are read; export with commas"
    )]
    Semicolons(String),
    #[error("no {role} column {wanted}: the header has {found}; choose one with --{role}-column")]
    Column {
        role: &'static str,
        wanted: Wanted,
        found: String,
    },
    #[error(
        "line {line}: {found} fields where the header has {expected}{hint}",
        hint = if *found == expected + 1 { " (a decimal comma? only a decimal point is read)" } else { "" }
    )]
    Fields {
        line: usize,
        found: usize,
        expected: usize,
    },
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("line {line}: {source}")]
    Csv {
        line: usize,
        #[source]
        source: csv::Error,
    },
}

/// The column a [`ReadError::Column`] looked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    Named(String),
    /// None of the default names, and not a two-column file.
    Default(&'static str),
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wanted::Named(name) => write!(f, "{name:?}"),
            Wanted::Default(names) => {
                write!(f, "named {names}, and the file has more than two columns")
            }
        }
    }
}

const TIME_NAMES: [&str; 5] = ["timestamp", "time", "date", "datetime", "ts"];
const VALUE_NAMES: [&str; 1] = ["value"];

/// Values that mean "no point here" in common exports.
fn is_missing(v: &str) -> bool {
    v.is_empty()
        || [
            "nan",
            "null",
            "none",
            "-",
            "inf",
            "+inf",
            "-inf",
            "infinity",
            "-infinity",
        ]
        .iter()
        .any(|m| v.eq_ignore_ascii_case(m))
}

/// Epoch seconds, milliseconds, microseconds or nanoseconds as UTC milliseconds, told apart by
/// magnitude (see the module docs); `None` if `text` is not a plain number.
fn epoch_ms(text: &str) -> Option<i64> {
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let n: f64 = text.parse().ok()?;
    let ms = match n.abs() {
        a if a < 1e11 => n * 1e3,
        a if a < 1e14 => n,
        a if a < 1e17 => n / 1e3,
        _ => n / 1e6,
    };
    ms.is_finite().then(|| ms.round() as i64)
}

/// The forms exports write that RFC 3339 does not: a date alone (midnight), minutes without
/// seconds, and offsets without a colon (`+0000`). `None` when `text` needs none of this.
fn normalised(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let date = b.len() >= 10
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10);
    if !date {
        return None;
    }
    if b.len() == 10 {
        return Some(format!("{text}T00:00:00"));
    }
    let mut out = text.to_string();
    let minutes_only = b.len() >= 16
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b.get(16).is_none_or(|c| !matches!(c, b':'));
    if minutes_only {
        out.insert_str(16, ":00");
    }
    // A trailing ±HHMM offset becomes ±HH:MM.
    let o = out.as_bytes();
    let n = o.len();
    if n >= 24 && matches!(o[n - 5], b'+' | b'-') && o[n - 4..].iter().all(u8::is_ascii_digit) {
        out.insert(n - 2, ':');
    }
    (out != text).then_some(out)
}

/// A time as UTC milliseconds: see the module docs for the accepted forms.
fn time_ms(text: &str, zone: Option<chrono_tz::Tz>) -> Result<i64, String> {
    if let Some(ms) = epoch_ms(text) {
        return Ok(ms);
    }
    let fixed = normalised(text);
    let text = fixed.as_deref().unwrap_or(text);
    match parse_timestamp_ms(text, Offset::Required) {
        Ok(ms) => Ok(ms),
        Err(TimeError::MissingOffset(_)) => {
            let naive_ms =
                parse_timestamp_ms(text, Offset::AssumeUtc).map_err(|e| e.to_string())?;
            let Some(zone) = zone else {
                return Ok(naive_ms);
            };
            let naive = chrono::DateTime::from_timestamp_millis(naive_ms)
                .ok_or_else(|| format!("{text:?} is out of range"))?
                .naive_utc();
            // A wall-clock time that occurs twice (the hour repeated when daylight saving ends)
            // is read as its first occurrence.
            zone.from_local_datetime(&naive)
                .earliest()
                .map(|t| t.timestamp_millis())
                .ok_or_else(|| format!("{text:?} does not exist in {zone} (a daylight-saving gap)"))
        }
        Err(e) => Err(format!(
            "{e}; times are RFC 3339, `YYYY-MM-DD[ HH:MM[:SS]]` or epoch seconds, milliseconds, microseconds or nanoseconds"
        )),
    }
}

/// The first header (case-insensitive) among `names`, in their order of preference.
fn named_column(headers: &[String], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|d| headers.iter().position(|h| h.eq_ignore_ascii_case(d)))
}

fn column(
    headers: &[String],
    named: Option<&str>,
    defaults: &[&str],
    two_column_index: usize,
    role: &'static str,
    all_defaults: &'static str,
) -> Result<usize, ReadError> {
    let found = || format!("{headers:?}");
    if let Some(name) = named {
        return headers
            .iter()
            .position(|h| h == name)
            .or_else(|| headers.iter().position(|h| h.eq_ignore_ascii_case(name)))
            .ok_or_else(|| ReadError::Column {
                role,
                wanted: Wanted::Named(name.to_string()),
                found: found(),
            });
    }
    named_column(headers, defaults)
        .or((headers.len() == 2).then_some(two_column_index))
        .ok_or(ReadError::Column {
            role,
            wanted: Wanted::Default(all_defaults),
            found: found(),
        })
}

/// Reads a series from CSV `text` (see the module docs for what is accepted).
///
/// Errors name the line (1-based, the header is line 1) or the missing column; a row without a
/// value is not an error but lands in [`Series::missing`].
pub fn read_series_csv(text: &str, options: &SeriesOptions) -> Result<Series, ReadError> {
    let first = text.lines().next().ok_or(ReadError::Empty)?;
    if first.trim().is_empty() {
        return Err(ReadError::Empty);
    }
    if first.contains(';') && !first.contains(',') {
        return Err(ReadError::Semicolons(first.to_string()));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|source| ReadError::Csv { line: 1, source })?
        .iter()
        .map(str::to_string)
        .collect();
    // In a two-column file the unnamed column is the other one: the value column found by name
    // decides which the time is, and the other way round.
    let value_by_name = match options.value_column.as_deref() {
        Some(_) => None,
        None => named_column(&headers, &VALUE_NAMES),
    };
    let time = column(
        &headers,
        options.time_column.as_deref(),
        &TIME_NAMES,
        value_by_name.map_or(0, |v| 1 - v.min(1)),
        "time",
        "timestamp, time, date, datetime or ts",
    )?;
    let value = column(
        &headers,
        options.value_column.as_deref(),
        &VALUE_NAMES,
        1 - time.min(1),
        "value",
        "value",
    )?;
    if time == value {
        return Err(ReadError::Line {
            line: 1,
            message: format!(
                "the time and the value column are both {:?}; choose them with --time-column and --value-column",
                headers[time]
            ),
        });
    }
    let mut series = Series::default();
    // Lines are counted from byte offsets: after a CRLF line the csv crate's line count is one
    // short and its record offsets point at the line's `\n`.
    let (mut counted_to, mut newlines) = (0, 0);
    let mut line_at = |byte: usize| {
        let mut byte = byte.min(text.len());
        while matches!(text.as_bytes().get(byte), Some(b'\r' | b'\n')) {
            byte += 1;
        }
        if byte >= counted_to {
            newlines += text.as_bytes()[counted_to..byte]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted_to = byte;
        }
        newlines + 1
    };
    for record in reader.records() {
        let record = record.map_err(|source| ReadError::Csv {
            line: source.position().map_or(0, |p| line_at(p.byte() as usize)),
            source,
        })?;
        let line = record.position().map_or(0, |p| line_at(p.byte() as usize));
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != headers.len() {
            return Err(ReadError::Fields {
                line,
                found: record.len(),
                expected: headers.len(),
            });
        }
        let (stamp, raw) = (&record[time], &record[value]);
        let bad = |message: String| ReadError::Line { line, message };
        let t = time_ms(stamp, options.zone).map_err(bad)?;
        if is_missing(raw) {
            series.missing.push((line, raw.to_string()));
            continue;
        }
        let v: f64 = raw.parse().map_err(|_| {
            bad(format!(
                "{raw:?} is not a number (values are decimal numbers with a point; empty, NaN and null values are skipped)"
            ))
        })?;
        series.timestamps.push(t);
        series.values.push(v);
        series.stamps.push(stamp.to_string());
    }
    Ok(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Series, ReadError> {
        read_series_csv(text, &SeriesOptions::default())
    }

    fn value_column(name: &str) -> SeriesOptions {
        SeriesOptions {
            value_column: Some(name.into()),
            ..SeriesOptions::default()
        }
    }

    fn in_zone(zone: chrono_tz::Tz) -> SeriesOptions {
        SeriesOptions {
            zone: Some(zone),
            ..SeriesOptions::default()
        }
    }

    #[test]
    fn a_prometheus_export_with_a_bom_nan_and_an_empty_value_keeps_the_other_rows() {
        let mut text = String::from("\u{feff}timestamp,value\n");
        for minute in 0..70 {
            let value = match minute {
                60 => "NaN".to_string(),
                61 => String::new(),
                m => format!("{}.5", m),
            };
            text.push_str(&format!("2026-11-24T04:{:02}:00Z,{value}\n", minute % 60));
        }
        let s = read(&text).unwrap();
        assert_eq!(s.values.len(), 68);
        assert_eq!(
            s.missing,
            vec![(62, "NaN".to_string()), (63, String::new())]
        );
        assert_eq!(s.values[60], 62.5, "the row after the gap is kept");
        assert_eq!(s.stamps[0], "2026-11-24T04:00:00Z");
    }

    #[test]
    fn epoch_seconds_and_milliseconds_are_told_apart_by_magnitude() {
        let at = parse_timestamp_ms("2026-11-24T05:01:00Z", Offset::Required).unwrap();
        let text = format!(
            "time,v\n{},1\n{},2\n{}.250,3\n",
            at / 1000,
            at + 1000,
            at / 1000 + 2
        );
        let s = read_series_csv(&text, &value_column("v")).unwrap();
        assert_eq!(s.timestamps, vec![at, at + 1000, at + 2250]);
    }

    #[test]
    fn offsets_are_honoured_and_zone_less_times_take_the_named_zone() {
        let utc = parse_timestamp_ms("2026-07-01T10:00:00Z", Offset::Required).unwrap();
        let text = "timestamp,value\n2026-07-01T12:00:00+02:00,1\n2026-07-01 10:00:00,2\n";
        let s = read(text).unwrap();
        assert_eq!(s.timestamps, vec![utc, utc], "zone-less is UTC by default");
        let zoned = read_series_csv(text, &in_zone(chrono_tz::Europe::Berlin)).unwrap();
        // 10:00 in Berlin in July (CEST, +02:00) is 08:00 UTC; the offset row is unchanged.
        assert_eq!(zoned.timestamps, vec![utc, utc - 2 * 3_600_000]);
        let gap = read_series_csv(
            "timestamp,value\n2026-03-29 02:30:00,1\n",
            &in_zone(chrono_tz::Europe::Berlin),
        )
        .unwrap_err();
        assert!(
            gap.to_string().contains("line 2") && gap.to_string().contains("gap"),
            "{gap}"
        );
    }

    #[test]
    fn other_columns_are_chosen_by_name_and_a_missing_one_lists_the_header() {
        let text = "host,\"Time\",cpu,mem\na,2026-11-24T05:00:00Z,0.5,7\n";
        let s = read_series_csv(text, &value_column("cpu")).unwrap();
        assert_eq!(s.values, vec![0.5]);
        let err = read_series_csv(text, &value_column("disk")).unwrap_err();
        assert!(
            err.to_string().contains("\"disk\"") && err.to_string().contains("mem"),
            "{err}"
        );
        let err = read(text).unwrap_err();
        assert!(
            matches!(err, ReadError::Column { role: "value", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_named_value_column_first_leaves_the_other_for_the_time() {
        let s = read("value,when\n1.5,2026-11-24T05:00:00Z\n").unwrap();
        assert_eq!(s.values, vec![1.5]);
        assert_eq!(s.stamps, vec!["2026-11-24T05:00:00Z".to_string()]);
        let err = read_series_csv(
            "a,b\n1,2\n",
            &SeriesOptions {
                time_column: Some("a".into()),
                value_column: Some("a".into()),
                ..SeriesOptions::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn dates_minutes_compact_offsets_and_epoch_microseconds_are_read() {
        let at = |t: &str| parse_timestamp_ms(t, Offset::Required).unwrap();
        let s = read(
            "time,value\n2026-11-24,1\n2026-11-24 05:01,2\n2026-11-24T07:01:00+0200,3\n1795496460000000,4\n1795496460000000000,5\n",
        )
        .unwrap();
        assert_eq!(
            s.timestamps,
            vec![
                at("2026-11-24T00:00:00Z"),
                at("2026-11-24T05:01:00Z"),
                at("2026-11-24T05:01:00Z"),
                at("2026-11-24T05:01:00Z"),
                at("2026-11-24T05:01:00Z"),
            ]
        );
    }

    #[test]
    fn semicolons_decimal_commas_and_bad_values_are_errors_naming_the_line() {
        let err = read("timestamp;value\n2026-11-24T05:00:00Z;1,5\n").unwrap_err();
        assert!(err.to_string().contains("semicolons"), "{err}");
        let err = read("timestamp,value\n2026-11-24T05:00:00Z,1\n2026-11-24T05:01:00Z,1,5\n")
            .unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::Fields {
                    line: 3,
                    found: 3,
                    expected: 2
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("decimal comma"), "{err}");
        let err =
            read("timestamp,value\r\n2026-11-24T05:00:00Z,1\r\n2026-11-24T05:01:00Z,oops\r\n")
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 3: \"oops\" is not a number"),
            "{err}"
        );
        let err = read("timestamp,value\nyesterday,1\n").unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert!(matches!(read(""), Err(ReadError::Empty)));
    }
}
