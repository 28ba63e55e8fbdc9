//! Dashboard tiles: `dashboards/tiles.toml` (shipped) plus one generated tile per metric of each
//! stream definition, and the three macros their queries use.
//!
//! The macros are those of Grafana's Athena and Azure Data Explorer data sources, so the same
//! text is imported into Grafana unchanged:
//! - `$__timeFilter(col)`: the column within the dashboard's time range;
//! - `$__timeGroup(col, '1m')`: the column rounded down to the interval (`s`, `m`, `h`, `d`),
//!   epoch-aligned. Athena's data source writes `FROM_UNIXTIME(FLOOR(TO_UNIXTIME(col)/60)*60)`.
//!   DataFusion's `from_unixtime` takes integers only, so locally the product is cast to BIGINT
//!   (same buckets);
//! - `$key`: the key filter's text, `''` for all keys (tiles write it quoted: `'$key'`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sluice_core::stream::{Aggregate, StreamSet};
use thiserror::Error;

/// The shipped tiles' source.
pub const SHIPPED: &str = include_str!("../../../dashboards/tiles.toml");
/// Where [`SHIPPED`] lives in the repository, for messages.
pub const SHIPPED_PATH: &str = "dashboards/tiles.toml";

/// How a tile draws its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chart {
    Line,
    Bar,
    Pie,
    Funnel,
    Candlestick,
    Table,
    Stat,
}

/// One tile. Column roles (`x`, `y`, `series`, `lines`) name columns of the query's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tile {
    pub id: String,
    pub title: String,
    /// The stream definition the tile needs; `None` for the lake's own tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    pub chart: Chart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub y: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// Athena SQL with the macros.
    pub sql: String,
    /// The same question in KQL, where Azure Data Explorer has the tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kql: Option<String>,
    /// Anomaly markers drawn on the tile's series: rows with the `x`, `series` and first `y`
    /// columns of the tile plus `score`, `detector`, `direction`, `baseline` and `spread`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub markers_sql: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TileFile {
    tile: Vec<Tile>,
}

/// A tile file that does not load, naming the file, and the line or the tile.
#[derive(Debug, Error)]
pub enum TileError {
    /// The TOML does not parse; the message names line and column.
    #[error("{file}: {error}")]
    Syntax {
        file: String,
        error: Box<toml::de::Error>,
    },
    #[error("{file}: tile {id}: {reason}")]
    Invalid {
        file: String,
        id: String,
        reason: String,
    },
}

/// Parses and checks a tile file: unique ids of `[a-z0-9-]`, the column roles each chart
/// needs, and no macro but the three.
pub fn parse(file: &str, text: &str) -> Result<Vec<Tile>, TileError> {
    let parsed: TileFile = toml::from_str(text).map_err(|e| TileError::Syntax {
        file: file.to_string(),
        error: Box::new(e),
    })?;
    let mut ids = BTreeSet::new();
    for tile in &parsed.tile {
        let invalid = |reason: String| TileError::Invalid {
            file: file.to_string(),
            id: tile.id.clone(),
            reason,
        };
        if tile.id.is_empty()
            || !tile
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid("an id is [a-z0-9-]+".into()));
        }
        if !ids.insert(tile.id.clone()) {
            return Err(invalid("a second tile with this id".into()));
        }
        check_roles(tile).map_err(invalid)?;
        for (what, text) in [("sql", Some(&tile.sql)), ("kql", tile.kql.as_ref())]
            .into_iter()
            .chain([("markers_sql", tile.markers_sql.as_ref())])
        {
            if let Some(text) = text {
                check_macros(text).map_err(|e| invalid(format!("{what}: {e}")))?;
            }
        }
    }
    Ok(parsed.tile)
}

fn check_roles(tile: &Tile) -> Result<(), String> {
    let needs_x = !matches!(tile.chart, Chart::Table | Chart::Stat);
    if needs_x && tile.x.is_none() {
        return Err(format!("a {:?} chart needs x", tile.chart).to_lowercase());
    }
    match tile.chart {
        Chart::Table => Ok(()),
        Chart::Candlestick if tile.y.len() != 4 => {
            Err("a candlestick's y is [open, close, low, high]".into())
        }
        _ if tile.y.is_empty() => Err("y names at least one value column".into()),
        _ => Ok(()),
    }
}

/// Every `$` starts one of the three macros.
fn check_macros(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let tail = &rest[at..];
        if !(tail.starts_with("$__timeFilter(")
            || tail.starts_with("$__timeGroup(")
            || is_key(tail))
        {
            let shown: String = tail.chars().take(20).collect();
            return Err(format!(
                "unknown macro at `{shown}`: only $__timeFilter(col), $__timeGroup(col, '1m') and $key"
            ));
        }
        rest = &tail[1..];
    }
    Ok(())
}

fn is_key(tail: &str) -> bool {
    tail.starts_with("$key")
        && !tail[4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One generated tile per metric of each stream: the metric's detected aggregate (its average
/// when undetected) per key over its detection window (else the stream's first window), from
/// `windows_merged`, with that series' anomalies as markers drawn at the series' value (the
/// detector's own value, e.g. a return, is in the marker's evidence). A metric that a rollup
/// carries shows the rollup's series unless a key is chosen: a stream with thousands of keys
/// (shoppers) would otherwise draw thousands of lines.
pub fn generated(streams: &StreamSet) -> Vec<Tile> {
    let mut tiles = Vec::new();
    for def in streams.streams() {
        let Some(first_window) = def.windows.first() else {
            continue;
        };
        for (m, metric) in def.metrics.iter().enumerate() {
            let window = metric.detect_window.unwrap_or(*first_window).name();
            let aggregate = if metric.aggregates.contains(&metric.detect_on) {
                metric.detect_on
            } else {
                Aggregate::Avg
            };
            let column = match aggregate {
                Aggregate::Distinct => "distinct_count",
                other => other.as_str(),
            };
            let rolled_up = def.rollups.iter().any(|r| r.metrics.contains(&m));
            let keys = |alias: &str| {
                if rolled_up {
                    format!("(('$key' = '' AND {alias}scope = 'rollup') OR {alias}key = '$key')")
                } else {
                    format!("('$key' = '' OR {alias}key = '$key')")
                }
            };
            let series = |alias: &str| {
                format!(
                    "{alias}scenario = '{}' AND {alias}window_name = '{window}' AND {alias}metric = '{}'\n  AND $__timeFilter({alias}window_end) AND {}",
                    def.name,
                    metric.name,
                    keys(alias)
                )
            };
            let id: String = format!("{}-{}", def.name, metric.name)
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            tiles.push(Tile {
                id,
                title: format!(
                    "{}: {} of {} per {window} window{}",
                    def.name,
                    column,
                    metric.name,
                    if rolled_up { " (rollups unless a key is chosen)" } else { "" }
                ),
                stream: Some(def.name.clone()),
                chart: Chart::Line,
                x: Some("window_end".into()),
                y: vec!["value".into()],
                series: Some("key".into()),
                lines: Vec::new(),
                sql: format!(
                    "SELECT key, window_end, {column} AS value\nFROM windows_merged\nWHERE {}\nORDER BY window_end, key\n",
                    series("")
                ),
                kql: None,
                markers_sql: Some(format!(
                    "SELECT a.key, a.window_end, w.{column} AS value, ROUND(a.score, 3) AS score, a.detector, a.direction,\n       a.value AS detected_value, a.baseline, a.spread\nFROM anomalies a\nJOIN windows_merged w ON w.scenario = a.scenario AND w.window_name = a.window_name\n  AND w.metric = a.metric AND w.key = a.key AND w.window_end = a.window_end\nWHERE {}\nORDER BY a.window_end, a.key\n",
                    series("a.")
                )),
            });
        }
    }
    tiles
}

/// The tiles for these streams: the shipped ones whose stream is loaded (or that need none),
/// then the generated ones.
pub fn for_streams(shipped: Vec<Tile>, streams: &StreamSet) -> Vec<Tile> {
    let loaded: BTreeSet<&str> = streams.streams().iter().map(|s| s.name.as_str()).collect();
    let mut tiles: Vec<Tile> = shipped
        .into_iter()
        .filter(|t| t.stream.as_deref().is_none_or(|s| loaded.contains(s)))
        .collect();
    let taken: BTreeSet<String> = tiles.iter().map(|t| t.id.clone()).collect();
    tiles.extend(
        generated(streams)
            .into_iter()
            .filter(|t| !taken.contains(&t.id)),
    );
    tiles
}

/// What the macros stand for in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Inclusive start of the time range, epoch milliseconds (UTC).
    pub from_ms: i64,
    /// Inclusive end of the time range, epoch milliseconds (UTC).
    pub to_ms: i64,
    /// The key filter; empty for all keys.
    pub key: String,
}

impl Params {
    /// The hour up to `now_ms`, all keys: what the page shows first.
    pub fn last_hour(now_ms: i64) -> Self {
        Params {
            from_ms: now_ms - 3_600_000,
            to_ms: now_ms,
            key: String::new(),
        }
    }
}

/// A macro the expansion cannot read.
#[derive(Debug, Error, PartialEq)]
#[error("{0}")]
pub struct MacroError(String);

/// Which engine the expanded SQL is for (also `sluice dashboard --expand`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dialect {
    /// DataFusion (`sluice dashboard`, `sluice query`).
    #[value(name = "datafusion")]
    DataFusion,
    /// Athena, exactly as Grafana's Athena data source expands the macros.
    Athena,
}

/// Replaces the three macros in `sql`.
pub fn expand(sql: &str, params: &Params, dialect: Dialect) -> Result<String, MacroError> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(args) = tail.strip_prefix("$__timeFilter(") {
            let (inner, after) = arguments(args)?;
            let [column] = inner.as_slice() else {
                return Err(MacroError(format!(
                    "$__timeFilter takes one column, got `{}`",
                    inner.join(",")
                )));
            };
            out.push_str(&format!(
                "{column} BETWEEN TIMESTAMP '{}' AND TIMESTAMP '{}'",
                timestamp(params.from_ms)?,
                timestamp(params.to_ms)?
            ));
            rest = after;
        } else if let Some(args) = tail.strip_prefix("$__timeGroup(") {
            let (inner, after) = arguments(args)?;
            let [column, interval] = inner.as_slice() else {
                return Err(MacroError(format!(
                    "$__timeGroup takes a column and an interval, got `{}`",
                    inner.join(",")
                )));
            };
            let seconds = interval_seconds(interval)?;
            out.push_str(&match dialect {
                Dialect::Athena => {
                    format!("FROM_UNIXTIME(FLOOR(TO_UNIXTIME({column})/{seconds})*{seconds})")
                }
                Dialect::DataFusion => format!(
                    "FROM_UNIXTIME(CAST(FLOOR(TO_UNIXTIME({column})/{seconds})*{seconds} AS BIGINT))"
                ),
            });
            rest = after;
        } else if is_key(tail) {
            out.push_str(&params.key.replace('\'', "''"));
            rest = &tail[4..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The comma-separated arguments up to the matching `)`, and what follows it.
fn arguments(text: &str) -> Result<(Vec<String>, &str), MacroError> {
    let mut depth = 0usize;
    let mut in_quote = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => in_quote = !in_quote,
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth == 0 => {
                let inner = text[..i].split(',').map(|a| a.trim().to_string()).collect();
                return Ok((inner, &text[i + 1..]));
            }
            ')' if !in_quote => depth -= 1,
            _ => {}
        }
    }
    Err(MacroError("a macro's `(` is never closed".into()))
}

/// `'1m'` → 60. Units: s, m, h, d.
fn interval_seconds(interval: &str) -> Result<i64, MacroError> {
    let bad = || {
        MacroError(format!(
            "interval {interval}: write '<n><s|m|h|d>', e.g. '1m'"
        ))
    };
    let inner = interval
        .strip_prefix('\'')
        .and_then(|i| i.strip_suffix('\''))
        .ok_or_else(bad)?;
    let (number, unit) = inner.split_at(inner.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    Ok(n * unit)
}

fn timestamp(ms: i64) -> Result<String, MacroError> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .ok_or_else(|| MacroError(format!("{ms} ms is not a time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            from_ms: 1_764_000_000_000,
            to_ms: 1_764_000_060_500,
            key: "O'Brien".into(),
        }
    }

    #[test]
    fn the_shipped_tiles_load() {
        let tiles = parse(SHIPPED_PATH, SHIPPED).unwrap();
        assert!(tiles.len() >= 15);
        assert!(tiles.iter().any(|t| t.chart == Chart::Candlestick));
    }

    #[test]
    fn macros_expand_as_grafanas_athena_data_source_does_and_quote_the_key() {
        let sql = "SELECT $__timeGroup(event_time, '5m') AS m FROM t WHERE $__timeFilter(event_time) AND ('$key' = '' OR k = '$key') AND price > $5";
        let athena = expand(sql, &params(), Dialect::Athena).unwrap();
        assert_eq!(
            athena,
            "SELECT FROM_UNIXTIME(FLOOR(TO_UNIXTIME(event_time)/300)*300) AS m FROM t WHERE event_time BETWEEN TIMESTAMP '2025-11-24 16:00:00.000' AND TIMESTAMP '2025-11-24 16:01:00.500' AND ('O''Brien' = '' OR k = 'O''Brien') AND price > $5"
        );
        let local = expand(sql, &params(), Dialect::DataFusion).unwrap();
        assert!(
            local.contains("FROM_UNIXTIME(CAST(FLOOR(TO_UNIXTIME(event_time)/300)*300 AS BIGINT))")
        );
    }

    #[test]
    fn bad_macros_and_tiles_are_refused_naming_the_tile() {
        let bad = |text: &str| parse("t.toml", text).unwrap_err().to_string();
        let tile = |extra: &str| {
            format!(
                "[[tile]]\nid = \"a\"\ntitle = \"A\"\nchart = \"line\"\nx = \"m\"\ny = [\"v\"]\n{extra}"
            )
        };
        assert_eq!(
            bad(&tile("sql = \"SELECT $__interval FROM t\"")),
            "t.toml: tile a: sql: unknown macro at `$__interval FROM t`: only $__timeFilter(col), $__timeGroup(col, '1m') and $key"
        );
        assert!(bad("[[tile]]\nid = 3").starts_with("t.toml: TOML parse error at line 2"));
        let no_x =
            "[[tile]]\nid = \"a\"\ntitle = \"A\"\nchart = \"bar\"\ny = [\"v\"]\nsql = \"SELECT 1\"";
        assert_eq!(bad(no_x), "t.toml: tile a: a bar chart needs x");
        let twice = format!(
            "{}\n{}",
            tile("sql = \"SELECT 1\""),
            tile("sql = \"SELECT 2\"")
        );
        assert_eq!(bad(&twice), "t.toml: tile a: a second tile with this id");
        assert_eq!(
            expand("$__timeGroup(t, '1w')", &params(), Dialect::Athena).unwrap_err(),
            MacroError("interval '1w': write '<n><s|m|h|d>', e.g. '1m'".into())
        );
    }

    #[test]
    fn every_metric_of_every_stream_gets_a_tile_with_its_anomalies() {
        let streams = StreamSet::builtin();
        let tiles = for_streams(parse(SHIPPED_PATH, SHIPPED).unwrap(), &streams);
        for def in streams.streams() {
            for metric in &def.metrics {
                let id = format!("{}-{}", def.name, metric.name)
                    .to_lowercase()
                    .replace('_', "-");
                let tile = tiles.iter().find(|t| t.id == id).unwrap();
                assert!(
                    tile.markers_sql
                        .as_ref()
                        .unwrap()
                        .contains("FROM anomalies")
                );
                assert!(tile.sql.contains(&format!("metric = '{}'", metric.name)));
            }
        }
        let ids: BTreeSet<&str> = tiles.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids.len(), tiles.len(), "ids are unique");
    }
}
