//! Stream definitions: any JSON event type, described in one TOML file (README, "Your own
//! stream"). The decoder, the raw table's schema, the window metrics, the detectors' series,
//! rule checks and the generated Glue/Kusto artifacts all derive from a [`StreamDef`].
//!
//! # Layout
//! - [`parse`]: TOML text → a validated [`StreamDef`], every error naming file, line and column.
//! - [`Decoder`]: JSON bytes → a [`Record`] of the stream the record routes to, or a reason.
//! - [`compat`]: a definition checked against the columns the lake already holds.
//! - [`StreamSet`]: the definitions in force (the three shipped ones, or the user's), checked
//!   together (unique names, unambiguous routes).
//!
//! Reading files is the caller's business (the CLI, the Lambdas at cold start): this module is
//! pure, and takes `(file label, text)` pairs.

pub mod compat;
mod decode;
mod parse;
mod record;

use std::fmt;

use thiserror::Error;

use crate::window::WindowSpec;

pub use decode::{
    DecodeError, Decoder, MAX_EVENT_TIME_MS, MAX_FUTURE_SKEW_MS, MAX_ID_LEN, MIN_EVENT_TIME_MS,
    Rejected,
};
pub use parse::parse;
pub use record::{Record, Value};

/// The shipped definitions (`streams/*.toml`), embedded in every binary: `(file, text)`.
pub const BUILTIN: [(&str, &str); 3] = [
    (
        "streams/trades.toml",
        include_str!("../../../../streams/trades.toml"),
    ),
    (
        "streams/telemetry.toml",
        include_str!("../../../../streams/telemetry.toml"),
    ),
    (
        "streams/clickstream.toml",
        include_str!("../../../../streams/clickstream.toml"),
    ),
];

/// Default bound on how far an event may move the watermark beyond its arrival time.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 30_000;

/// Names a stream may not take: the shared tables and the partition value of records whose
/// stream could not be read.
pub const RESERVED_STREAM_NAMES: &[&str] = &[
    "windows",
    "windows_merged",
    "anomalies",
    "late",
    "quarantine",
    "pipeline",
    "alerts",
    "unknown",
];

/// Column names a field may not take: the partition columns (`dt`, `hour`, the stream
/// partition `scenario`) and the lineage columns every raw row carries.
pub const RESERVED_COLUMNS: &[&str] = &[
    "dt",
    "hour",
    "scenario",
    "stream",
    "shard_id",
    "sequence_number",
    "sub_sequence_number",
    "arrival_time",
];

/// A definition that cannot be used, located in its file (`file:line:column: message`, the
/// form editors and CI logs link).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {message}")]
pub struct DefinitionError {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl DefinitionError {
    /// An error at byte `offset` of `text`.
    pub fn at(file: &str, text: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(text.len());
        let before = &text[..floor_char_boundary(text, offset)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A field's value type, in the raw table and in the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    String,
    /// 64-bit float (`double` in Glue, `real` in Kusto).
    Double,
    /// 64-bit integer. JSON numbers with a zero fraction (`100.0`) are accepted.
    Long,
    Bool,
    /// An instant, stored as `timestamp(ms, UTC)`.
    Timestamp,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Double => "double",
            FieldType::Long => "long",
            FieldType::Bool => "bool",
            FieldType::Timestamp => "timestamp",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, FieldType::Double | FieldType::Long)
    }
}

/// How a timestamp is written by the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2026-11-24T05:03:07.123Z`; an offset is required.
    Rfc3339,
    EpochS,
    EpochMs,
    EpochUs,
    /// A chrono `strftime` pattern, e.g. `%Y-%m-%d %H:%M:%S`. Without `%z`/`%:z` the text is a
    /// local time in the definition's `zone`.
    Pattern(String),
}

impl TimeFormat {
    /// Whether the text carries no offset of its own, so a zone is needed.
    pub fn is_zoneless(&self) -> bool {
        match self {
            TimeFormat::Pattern(p) => !(p.contains("%z") || p.contains("%:z") || p.contains("%#z")),
            _ => false,
        }
    }
}

/// What to do with a local time that a DST change makes ambiguous (it happens twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ambiguous {
    /// Quarantine it, naming field and zone.
    #[default]
    Reject,
    Earliest,
    Latest,
}

/// How one timestamp field is read.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeParse {
    pub format: TimeFormat,
    /// IANA zone for zone-less patterns (UTC when absent).
    pub zone: Option<chrono_tz::Tz>,
    pub ambiguous: Ambiguous,
}

/// A condition on a string field: the record's value is one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// Index of the field in [`StreamDef::fields`].
    pub field: usize,
    pub values: Vec<String>,
}

/// One field of the event, one column of the raw table.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDef {
    /// The name used in the definition (metrics, key, rules refer to it).
    pub name: String,
    /// The column in the raw table (default: the name lower-cased).
    pub column: String,
    pub ty: FieldType,
    pub nullable: bool,
    /// Where the value is in the record: JSON pointer segments (default: `[name]`).
    pub path: Vec<String>,
    pub min: Option<f64>,
    pub exclusive_min: Option<f64>,
    pub max: Option<f64>,
    /// For strings: the only values accepted (an enumeration).
    pub values: Option<Vec<String>>,
    /// Numbers sent as strings, enumeration values in any case, are accepted and normalised.
    pub coerce: bool,
    /// For timestamps.
    pub time: Option<TimeParse>,
    /// A nullable field that must be present when this condition holds.
    pub required_when: Option<Condition>,
    /// Top-level members read when the field's own path is absent (a renamed field, or the
    /// shipped streams' generic `key`).
    pub aliases: Vec<String>,
    pub doc: String,
}

/// The fixed set of aggregates a metric may declare (each a nullable column of `windows`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Aggregate {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stddev,
    First,
    Last,
    Distinct,
    P50,
    P90,
    P95,
    P99,
}

impl Aggregate {
    pub const ALL: [Aggregate; 13] = [
        Aggregate::Count,
        Aggregate::Sum,
        Aggregate::Min,
        Aggregate::Max,
        Aggregate::Avg,
        Aggregate::Stddev,
        Aggregate::First,
        Aggregate::Last,
        Aggregate::Distinct,
        Aggregate::P50,
        Aggregate::P90,
        Aggregate::P95,
        Aggregate::P99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Sum => "sum",
            Aggregate::Min => "min",
            Aggregate::Max => "max",
            Aggregate::Avg => "avg",
            Aggregate::Stddev => "stddev",
            Aggregate::First => "first",
            Aggregate::Last => "last",
            Aggregate::Distinct => "distinct",
            Aggregate::P50 => "p50",
            Aggregate::P90 => "p90",
            Aggregate::P95 => "p95",
            Aggregate::P99 => "p99",
        }
    }

    pub fn parse(text: &str) -> Option<Aggregate> {
        Aggregate::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// One of p50, p90, p95, p99 (from the window's quantile sketch).
    pub fn is_percentile(self) -> bool {
        matches!(
            self,
            Aggregate::P50 | Aggregate::P90 | Aggregate::P95 | Aggregate::P99
        )
    }

    /// Needs numeric values (everything but `count` and `distinct`).
    pub fn is_numeric(self) -> bool {
        !matches!(self, Aggregate::Count | Aggregate::Distinct)
    }
}

/// What a metric's detector watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detect {
    /// No detector (the default: detection is opt-in per metric).
    #[default]
    None,
    /// The value of `detect_on` per window.
    Level,
    /// The relative change of `detect_on` between consecutive windows (for prices, whose level
    /// is a random walk a level detector would flag all day).
    Returns,
}

/// Which series of a metric get a detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DetectScope {
    /// Every key (the default).
    #[default]
    Keys,
    /// Only the stream's rollups (sparse keys, such as individual shoppers).
    Rollups,
    /// Keys and rollups.
    All,
}

/// Where a metric's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSource {
    /// Index of a field in [`StreamDef::fields`].
    Field(usize),
    /// The same value for every event (`value = 1.0` counts events).
    Constant(f64),
}

/// One metric: a row per key and window in `windows`, with the declared aggregates.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricDef {
    /// The `metric` column value (default: the field's name).
    pub name: String,
    pub source: MetricSource,
    /// Only events for which this holds contribute (e.g. `action = purchase`).
    pub when: Option<Condition>,
    pub aggregates: Vec<Aggregate>,
    /// Index of the weight field: `weighted_avg` = Σ value·weight / Σ weight (VWAP).
    pub weight: Option<usize>,
    pub detect: Detect,
    pub detect_on: Aggregate,
    pub detect_window: Option<WindowSpec>,
    pub detect_scope: DetectScope,
    /// Fed to the stream's rollups only: the distinct count a rollup declares with
    /// `distinct = ["field"]`.
    pub rollup_only: bool,
}

impl MetricDef {
    /// Whether any percentile is declared (the metric keeps a quantile sketch).
    pub fn wants_quantiles(&self) -> bool {
        self.aggregates.iter().any(|a| a.is_percentile())
    }

    pub fn wants_distinct(&self) -> bool {
        self.aggregates.contains(&Aggregate::Distinct)
    }
}

/// A stream-wide series: every event of the stream also feeds the key `name`, in rows with
/// `scope = 'rollup'`.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupDef {
    pub name: String,
    /// Indices into [`StreamDef::metrics`].
    pub metrics: Vec<usize>,
    /// Indices into [`StreamDef::fields`] whose distinct count the rollup carries.
    pub distinct: Vec<usize>,
}

/// Which records of a shared stream belong to this definition: `field` equals `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub field: String,
    pub value: String,
}

/// One validated stream definition. Invariants (checked by [`parse`]): field names and columns
/// are unique, `key`, `dedup` and `time_field` index fields of fitting types, every metric,
/// weight, rollup and window reference resolves, and no name is reserved.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamDef {
    /// `[a-z][a-z0-9_]*`: the raw table's name and the stream partition's value.
    pub name: String,
    /// The file the definition came from (for messages).
    pub file: String,
    /// Index of the key field.
    pub key: usize,
    /// Index of the field naming duplicates of one event.
    pub dedup: Option<usize>,
    pub route: Option<Route>,
    /// `[route] topic`: the stream's records are those of this Kafka topic.
    pub topic: Option<String>,
    /// `[route] header` and `value`: the stream's records carry this Kafka header value.
    pub header_route: Option<(String, String)>,
    /// `framing = "ndjson"`: a record may hold several events, one per line.
    pub ndjson: bool,
    /// `compression = "gzip"`: records may arrive gzip-compressed.
    pub gzip: bool,
    /// Index of the event-time field (a timestamp field).
    pub time_field: usize,
    /// Per-stream allowed lateness; the command line's default applies when absent.
    pub allowed_lateness_ms: Option<i64>,
    /// How far beyond its arrival an event may move the watermark (`[time] max_clock_skew`,
    /// default [`DEFAULT_MAX_CLOCK_SKEW_MS`]): one producer with a clock ahead must not make
    /// every honest event late. The event itself is kept, in raw and its own windows.
    pub max_clock_skew_ms: i64,
    /// How far behind the watermark, in event time, the ids of the `dedup` field are
    /// remembered (`[time] dedup_horizon`, default 10 minutes; see [`crate::dedup`]).
    pub dedup_horizon_ms: i64,
    /// In raw-table column order.
    pub fields: Vec<FieldDef>,
    pub metrics: Vec<MetricDef>,
    pub rollups: Vec<RollupDef>,
    pub windows: Vec<WindowSpec>,
    /// What the stream is (top-level `doc`), for generated docs and table comments.
    pub doc: String,
}

impl StreamDef {
    pub fn key_field(&self) -> &FieldDef {
        &self.fields[self.key]
    }

    pub fn time(&self) -> &FieldDef {
        &self.fields[self.time_field]
    }

    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn metric(&self, name: &str) -> Option<&MetricDef> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

impl fmt::Display for StreamDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {} ({})", self.name, self.file)
    }
}

/// The definitions in force, in load order.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSet {
    streams: Vec<StreamDef>,
}

/// How records are unwrapped before decoding, for every stream of a set: a record is gzip-
/// decompressed when some definition declares `compression = "gzip"` and the record starts with
/// gzip's magic bytes, and split into lines when some definition declares
/// `framing = "ndjson"`. With neither (the default) a record is one JSON object, as it comes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unframing {
    pub ndjson: bool,
    pub gzip: bool,
}

impl StreamSet {
    /// The unframing the set's definitions ask for.
    pub fn unframing(&self) -> Unframing {
        Unframing {
            ndjson: self.streams.iter().any(|s| s.ndjson),
            gzip: self.streams.iter().any(|s| s.gzip),
        }
    }

    /// Parses and checks `(file, text)` pairs: each alone, then together (unique names; routes
    /// that tell the streams apart when there are several).
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<StreamSet, DefinitionError> {
        let mut streams: Vec<StreamDef> = Vec::new();
        for (file, text) in sources {
            let def = parse(file, text)?;
            if let Some(other) = streams.iter().find(|s| s.name == def.name) {
                return Err(DefinitionError::at(
                    file,
                    text,
                    0,
                    format!(
                        "stream name {:?} is already defined in {}",
                        def.name, other.file
                    ),
                ));
            }
            streams.push(def);
        }
        if streams.is_empty() {
            return Err(DefinitionError {
                file: "(streams)".into(),
                line: 1,
                column: 1,
                message: "no stream definitions given (expected one or more *.toml files)".into(),
            });
        }
        if streams.len() > 1
            && let Some(s) = streams
                .iter()
                .find(|s| s.route.is_none() && s.topic.is_none() && s.header_route.is_none())
        {
            return Err(DefinitionError {
                file: s.file.clone(),
                line: 1,
                column: 1,
                message: format!(
                    "stream {:?} has no [route], but {} streams are loaded: a [route] (field and value, or a Kafka topic) tells which records belong to it",
                    s.name,
                    streams.len()
                ),
            });
        }
        Ok(StreamSet { streams })
    }

    /// The three shipped definitions.
    pub fn builtin() -> StreamSet {
        // The embedded files are checked by this crate's tests; a failure here is a build
        // defect, not user input.
        Self::from_sources(BUILTIN).expect("the shipped stream definitions are valid")
    }

    pub fn streams(&self) -> &[StreamDef] {
        &self.streams
    }

    pub fn get(&self, name: &str) -> Option<&StreamDef> {
        self.streams.iter().find(|s| s.name == name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.streams.iter().map(|s| s.name.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

/// Definitions the tests of several crates share (the worked example, a test fixture).
#[doc(hidden)]
pub mod fixtures {
    /// `streams/examples/stocks/stocks.toml`: zone-less New York times, capitalised names.
    pub const STOCKS: &str = include_str!("../../../../streams/examples/stocks/stocks.toml");
    /// `tests/fixtures/streams/crypto_trades.toml`: numbers as strings, a long key.
    pub const CRYPTO_TRADES: &str =
        include_str!("../../../../tests/fixtures/streams/crypto_trades.toml");
}

#[cfg(test)]
mod tests;
