//! The lake's tables, defined once. The Parquet writer, `sluice query`'s table registration,
//! the Glue columns in Terraform, the Kusto tables and the docs are all derived from (or checked
//! against) these definitions.
//!
//! Partition columns (`scenario`, `dt`, `hour`) live in the object path, Hive style, and are
//! *not* stored in the files: Athena and Glue reject a table whose partition key repeats a data
//! column.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::stream::{FieldType, StreamDef, StreamSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    /// UTC instant, millisecond precision (Parquet `isAdjustedToUTC=true`).
    TimestampMs,
    Binary,
    Bool,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::TimestampMs => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
            ColumnType::Binary => DataType::Binary,
            ColumnType::Bool => DataType::Boolean,
        }
    }

    /// Glue / Athena (Hive DDL) type name.
    pub fn glue(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "bigint",
            ColumnType::Float64 => "double",
            ColumnType::TimestampMs => "timestamp",
            ColumnType::Binary => "binary",
            ColumnType::Bool => "boolean",
        }
    }

    /// Kusto (Azure Data Explorer) type name. Kusto has no binary type: raw bytes are base64.
    pub fn kusto(self) -> &'static str {
        match self {
            ColumnType::String | ColumnType::Binary => "string",
            ColumnType::Bool => "bool",
            ColumnType::Int64 => "long",
            ColumnType::Float64 => "real",
            ColumnType::TimestampMs => "datetime",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: Cow<'static, str>,
    pub ty: ColumnType,
    pub nullable: bool,
    pub doc: Cow<'static, str>,
}

const fn col(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column {
        name: Cow::Borrowed(name),
        ty,
        nullable: false,
        doc: Cow::Borrowed(doc),
    }
}

const fn opt(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column {
        name: Cow::Borrowed(name),
        ty,
        nullable: true,
        doc: Cow::Borrowed(doc),
    }
}

/// One lake table: the shared ones are statics; a stream's raw table is built from its
/// definition ([`raw_table`]).
#[derive(Debug, Clone)]
pub struct Table {
    /// Name in SQL (`sluice query`, Athena) and Glue.
    pub name: Cow<'static, str>,
    /// Object-key prefix under the lake root, up to the first partition directory.
    pub prefix: Cow<'static, str>,
    /// Partition columns in path order (all strings).
    pub partitions: &'static [&'static str],
    pub columns: Cow<'static, [Column]>,
    pub doc: Cow<'static, str>,
}

const SHARD_ID: Column = col(
    "shard_id",
    ColumnType::String,
    "Stream shard (Kinesis) or partition the record was read from",
);
const SEQUENCE_NUMBER: Column = col(
    "sequence_number",
    ColumnType::String,
    "Sequence number of the record in its shard",
);
const ARRIVAL_TIME: Column = col(
    "arrival_time",
    ColumnType::TimestampMs,
    "When the stream accepted the record (UTC)",
);

/// Where a record came from on the stream: the last columns of every raw, late and
/// quarantine row.
pub const LINEAGE: [Column; 3] = [SHARD_ID, SEQUENCE_NUMBER, ARRIVAL_TIME];

/// A user record's position within a KPL-aggregated Kinesis record: the last column of raw,
/// late and quarantine (added after the others, so older files simply lack it).
pub const SUB_SEQUENCE_NUMBER: Column = opt(
    "sub_sequence_number",
    ColumnType::Int64,
    "Index of the user record within a KPL-aggregated Kinesis record (with sequence_number, its position); null for a plain record",
);

pub static WINDOWS: Table = Table {
    name: Cow::Borrowed("windows"),
    prefix: Cow::Borrowed("windows"),
    partitions: &["scenario", "dt", "hour"],
    columns: Cow::Borrowed(&[
        col(
            "key",
            ColumnType::String,
            "The key field's value (symbol, host, user), or the rollup's name where scope = 'rollup'",
        ),
        col(
            "window_name",
            ColumnType::String,
            "Window definition, e.g. tumbling_1m, hopping_5m_1m, session_5m",
        ),
        col(
            "window_kind",
            ColumnType::String,
            "tumbling, hopping, sliding or session",
        ),
        col(
            "window_start",
            ColumnType::TimestampMs,
            "Inclusive start (UTC)",
        ),
        col(
            "window_end",
            ColumnType::TimestampMs,
            "Exclusive end (UTC); windows are labelled by it",
        ),
        col(
            "metric",
            ColumnType::String,
            "Which event field was aggregated",
        ),
        opt(
            "count",
            ColumnType::Int64,
            "Events in the window with this metric",
        ),
        opt("sum", ColumnType::Float64, "Sum of values"),
        opt("min", ColumnType::Float64, "Smallest value"),
        opt("max", ColumnType::Float64, "Largest value"),
        opt("avg", ColumnType::Float64, "Mean value"),
        opt(
            "stddev",
            ColumnType::Float64,
            "Sample standard deviation (null below two values)",
        ),
        opt(
            "first",
            ColumnType::Float64,
            "Value of the earliest event (open)",
        ),
        opt(
            "last",
            ColumnType::Float64,
            "Value of the latest event (close)",
        ),
        opt(
            "weighted_avg",
            ColumnType::Float64,
            "Quantity-weighted average (VWAP) for prices; null otherwise",
        ),
        col(
            "scope",
            ColumnType::String,
            "key: one key's row; rollup: a stream-wide series named by key",
        ),
        col(
            "shard_id",
            ColumnType::String,
            "Shard (or partition) whose events the row aggregates: a rollup row is that shard's part of the stream total",
        ),
        opt(
            "p50",
            ColumnType::Float64,
            "Median (DDSketch, within 1% of the value at rank floor(0.5(n-1))); null unless declared",
        ),
        opt(
            "p90",
            ColumnType::Float64,
            "90th percentile (DDSketch, within 1%); null unless declared",
        ),
        opt(
            "p95",
            ColumnType::Float64,
            "95th percentile (DDSketch, within 1%); null unless declared",
        ),
        opt(
            "p99",
            ColumnType::Float64,
            "99th percentile (DDSketch, within 1%); null unless declared",
        ),
        opt(
            "distinct_count",
            ColumnType::Int64,
            "Distinct values (exact up to 1,024, then HyperLogLog, about 1.6% standard error); null unless declared",
        ),
        opt(
            "m2",
            ColumnType::Float64,
            "Sum of squared deviations from avg (M2 of Chan et al.): with count and avg, merges stddev over shards exactly; null unless stddev is declared",
        ),
        opt(
            "first_time",
            ColumnType::TimestampMs,
            "Event time of the first value (UTC); with shard_id and first_ordinal, picks the open of rows merged over shards; null unless first is declared",
        ),
        opt(
            "first_ordinal",
            ColumnType::Int64,
            "Arrival ordinal of the first value on its shard (tie-break among equal first_time); null unless first is declared",
        ),
        opt(
            "last_time",
            ColumnType::TimestampMs,
            "Event time of the last value (UTC); null unless last is declared",
        ),
        opt(
            "last_ordinal",
            ColumnType::Int64,
            "Arrival ordinal of the last value on its shard (tie-break among equal last_time); null unless last is declared",
        ),
        opt(
            "weighted_sum",
            ColumnType::Float64,
            "Sum of value x weight (for VWAP: price x quantity); null where weighted_avg is null",
        ),
        opt(
            "weight_total",
            ColumnType::Float64,
            "Sum of weights (for VWAP: quantity); weighted_sum / weight_total = weighted_avg",
        ),
        opt(
            "quantile_sketch",
            ColumnType::Binary,
            "The DDSketch behind p50..p99 (JSON): merged over shards by sluice's windows_merged; null unless percentiles are declared",
        ),
        opt(
            "distinct_sketch",
            ColumnType::Binary,
            "The set or HyperLogLog behind distinct_count (JSON): merged over shards by sluice's windows_merged; null unless declared",
        ),
    ]),
    doc: Cow::Borrowed(
        "Closed event-time windows, one row per key, window and metric; partitioned by window end.",
    ),
};

pub static ANOMALIES: Table = Table {
    name: Cow::Borrowed("anomalies"),
    prefix: Cow::Borrowed("anomalies"),
    partitions: &["scenario", "dt", "hour"],
    columns: Cow::Borrowed(&[
        col(
            "key",
            ColumnType::String,
            "The key of the series, or the rollup's name where scope = 'rollup'",
        ),
        col("metric", ColumnType::String, "Detected metric"),
        col(
            "window_name",
            ColumnType::String,
            "Window whose values form the series",
        ),
        col(
            "window_start",
            ColumnType::TimestampMs,
            "Start of the flagged window (UTC)",
        ),
        col(
            "window_end",
            ColumnType::TimestampMs,
            "End of the flagged window (UTC)",
        ),
        col(
            "detector",
            ColumnType::String,
            "spike_dip, change_point or zscore",
        ),
        col(
            "direction",
            ColumnType::String,
            "spike, dip, level_up or level_down",
        ),
        col(
            "score",
            ColumnType::Float64,
            "Anomaly score in [0,1]; 0.5 is the detector's threshold",
        ),
        col("value", ColumnType::Float64, "The flagged point"),
        col(
            "baseline",
            ColumnType::Float64,
            "What the point was compared to (median or mean)",
        ),
        col(
            "spread",
            ColumnType::Float64,
            "Scale of normal variation the score is measured in",
        ),
        col("scope", ColumnType::String, "key or rollup, as in windows"),
        col(
            "shard_id",
            ColumnType::String,
            "Shard (or partition) whose windows formed the series",
        ),
    ]),
    doc: Cow::Borrowed("Points the detectors flagged; partitioned by window end."),
};

pub static LATE: Table = Table {
    name: Cow::Borrowed("late"),
    prefix: Cow::Borrowed("late"),
    partitions: &["scenario", "dt", "hour"],
    columns: Cow::Borrowed(&[
        opt(
            "event_id",
            ColumnType::String,
            "The event's dedup field value (null for streams without one); the full event is in the raw table",
        ),
        col("key", ColumnType::String, "Partition key"),
        col(
            "event_time",
            ColumnType::TimestampMs,
            "Event time of the late event (UTC)",
        ),
        col(
            "watermark",
            ColumnType::TimestampMs,
            "Watermark when it arrived: windows before it were closed",
        ),
        SHARD_ID,
        SEQUENCE_NUMBER,
        ARRIVAL_TIME,
        SUB_SEQUENCE_NUMBER,
    ]),
    doc: Cow::Borrowed(
        "Events that arrived after their windows closed: kept in raw, in no window.",
    ),
};

pub static PIPELINE: Table = Table {
    name: Cow::Borrowed("pipeline"),
    prefix: Cow::Borrowed("pipeline"),
    partitions: &["dt", "hour"],
    columns: Cow::Borrowed(&[
        col(
            "time",
            ColumnType::TimestampMs,
            "Arrival of the batch's last record, or the sweep's now (UTC); partitions the row",
        ),
        col(
            "kind",
            ColumnType::String,
            "batch (a stream batch committed), sweep (a shard the sweep committed, or shard_id '*': the sweep's summary) or flush",
        ),
        col(
            "shard_id",
            ColumnType::String,
            "Shard (or partition) the row is about; '*' for a sweep's summary",
        ),
        opt(
            "first_sequence",
            ColumnType::String,
            "Sequence number of the batch's first new record",
        ),
        opt(
            "last_sequence",
            ColumnType::String,
            "Sequence number of the batch's last record",
        ),
        col(
            "records",
            ColumnType::Int64,
            "Stream records the batch held (0 for a sweep)",
        ),
        col(
            "redeliveries",
            ColumnType::Int64,
            "Records at or below the committed position: a redelivery, skipped",
        ),
        col("events", ColumnType::Int64, "Records decoded into events"),
        col(
            "duplicate_events",
            ColumnType::Int64,
            "Events whose dedup id and bytes were seen before (a producer retry), not written again",
        ),
        col(
            "beyond_dedup_horizon",
            ColumnType::Int64,
            "Events older than the dedup horizon, written unchecked",
        ),
        col(
            "late",
            ColumnType::Int64,
            "Events older than the watermark (in raw and late, in no window)",
        ),
        col(
            "quarantined",
            ColumnType::Int64,
            "Records quarantined, all reasons",
        ),
        col(
            "future_events",
            ColumnType::Int64,
            "Events stamped further ahead of their arrival than max_clock_skew",
        ),
        col("windows", ColumnType::Int64, "Window rows written"),
        col("anomalies", ColumnType::Int64, "Anomaly rows written"),
        col(
            "idle_flushes",
            ColumnType::Int64,
            "Streams whose watermark the sweep moved because they were idle",
        ),
        col(
            "evicted_series",
            ColumnType::Int64,
            "Detector series evicted after their key was idle for the series TTL",
        ),
        opt(
            "keys_on_several_shards",
            ColumnType::Int64,
            "Keys with open windows on more than one shard (sweep summaries only): the producer does not partition by key",
        ),
        opt(
            "state_bytes",
            ColumnType::Int64,
            "Size of the committed shard state object (summed over shards in a sweep summary)",
        ),
    ]),
    doc: Cow::Borrowed(
        "What the aggregate function did: one row per committed batch and per sweep, partitioned by its time.",
    ),
};

pub static QUARANTINE: Table = Table {
    name: Cow::Borrowed("quarantine"),
    prefix: Cow::Borrowed("quarantine"),
    partitions: &["scenario", "dt", "hour"],
    columns: Cow::Borrowed(&[
        SHARD_ID,
        SEQUENCE_NUMBER,
        ARRIVAL_TIME,
        opt(
            "partition_key",
            ColumnType::String,
            "Partition key the producer sent (Kinesis), or the record key (Kafka: null for a null key, hex for a key that is not UTF-8)",
        ),
        col(
            "reason_code",
            ColumnType::String,
            "malformed_json, wrong_type, missing_field, unknown_scenario, invalid_value, malformed_envelope (the record's data in the trigger was not base64; raw holds its text), duplicate_conflict (an event id seen before with other bytes; the first copy stands), null_value (a Kafka record without a value: a tombstone), or out_of_range (an event time outside the tables' partition projection)",
        ),
        col(
            "reason",
            ColumnType::String,
            "Why the record was rejected, naming the field",
        ),
        col(
            "raw",
            ColumnType::Binary,
            "The record's bytes, exactly as received",
        ),
        SUB_SEQUENCE_NUMBER,
    ]),
    doc: Cow::Borrowed(
        "Records that could not be decoded, with their bytes and the reason; partitioned by arrival.",
    ),
};

/// The raw table of one stream: its fields in definition order, then the lineage columns.
/// Raw files sit under `raw/scenario=<stream>/dt=…/hour=…/`.
pub fn raw_table(def: &StreamDef) -> Table {
    let mut columns: Vec<Column> = def
        .fields
        .iter()
        .map(|f| Column {
            name: Cow::Owned(f.column.clone()),
            ty: match f.ty {
                FieldType::String => ColumnType::String,
                FieldType::Double => ColumnType::Float64,
                FieldType::Long => ColumnType::Int64,
                FieldType::Bool => ColumnType::Bool,
                FieldType::Timestamp => ColumnType::TimestampMs,
            },
            nullable: f.nullable,
            doc: Cow::Owned(if f.doc.is_empty() {
                format!("Field `{}` ({})", f.name, f.ty.as_str())
            } else {
                f.doc.clone()
            }),
        })
        .collect();
    columns.extend(LINEAGE.iter().cloned());
    columns.push(SUB_SEQUENCE_NUMBER);
    Table {
        name: Cow::Owned(def.name.clone()),
        prefix: Cow::Owned(format!("raw/scenario={}", def.name)),
        partitions: &["dt", "hour"],
        columns: Cow::Owned(columns),
        doc: Cow::Owned(if def.doc.is_empty() {
            format!(
                "Every decoded {} event, partitioned by event time.",
                def.name
            )
        } else {
            def.doc.clone()
        }),
    }
}

pub static ALERTS: Table = Table {
    name: Cow::Borrowed("alerts"),
    prefix: Cow::Borrowed("alerts"),
    partitions: &["scenario", "dt", "hour"],
    columns: Cow::Borrowed(&[
        col(
            "alert_id",
            ColumnType::String,
            "Stable id: the same rule on the same row always has the same id (one row per alert, however often it was retried)",
        ),
        col(
            "sent_time",
            ColumnType::TimestampMs,
            "When the notifier (SNS, or the local outbox) accepted the alert (UTC)",
        ),
        col("rule", ColumnType::String, "Name of the rule that fired"),
        col(
            "severity",
            ColumnType::String,
            "info, warning or critical, as the rule says",
        ),
        col(
            "key",
            ColumnType::String,
            "The key of the row, or the rollup's name",
        ),
        col("metric", ColumnType::String, "The row's metric"),
        col(
            "window_name",
            ColumnType::String,
            "Window of the row, e.g. tumbling_1m",
        ),
        col(
            "window_start",
            ColumnType::TimestampMs,
            "Start of the row's window (UTC)",
        ),
        col(
            "window_end",
            ColumnType::TimestampMs,
            "End of the row's window (UTC); partitions the row",
        ),
        col("value", ColumnType::Float64, "The value the rule tested"),
        opt(
            "threshold",
            ColumnType::Float64,
            "The rule's threshold, where it has one",
        ),
        col(
            "condition",
            ColumnType::String,
            "The rule's condition, as written",
        ),
        opt("description", ColumnType::String, "The rule's description"),
        col(
            "subject",
            ColumnType::String,
            "The notification's subject line",
        ),
        col(
            "source_object",
            ColumnType::String,
            "The windows or anomalies object the row came from",
        ),
        col(
            "inspect_query",
            ColumnType::String,
            "A query that shows the row",
        ),
    ]),
    doc: Cow::Borrowed(
        "What the alert function sent: one row per alert the notifier accepted, written after the notification (at least once, like the email; alert_id identifies it).",
    ),
};

/// The tables shared by every stream, partitioned by stream.
pub fn shared_tables() -> [&'static Table; 6] {
    [&WINDOWS, &ANOMALIES, &LATE, &QUARANTINE, &PIPELINE, &ALERTS]
}

/// Every table of a lake holding `streams`: one raw table per stream, then the shared ones.
pub fn all_tables(streams: &StreamSet) -> Vec<Table> {
    streams
        .streams()
        .iter()
        .map(raw_table)
        .chain(shared_tables().into_iter().cloned())
        .collect()
}

impl Table {
    /// The Arrow schema of the files (partition columns excluded).
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name.as_ref(), c.ty.arrow(), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Where the data files of a table start in the lake, scenario included for raw tables.
    pub fn location(&self, root: &str) -> String {
        format!("{}/{}/", root.trim_end_matches('/'), self.prefix)
    }
}

/// A Markdown table of every lake table and column (the README's schema section is checked
/// against it).
pub fn markdown(streams: &StreamSet) -> String {
    let mut out = String::new();
    for t in all_tables(streams) {
        out.push_str(&format!(
            "### `{}`\n{} Path: `{}/{}=…/`.\n\n| column | type | description |\n|---|---|---|\n",
            t.name,
            t.doc,
            t.prefix,
            t.partitions.join("=…/")
        ));
        for p in t.partitions {
            out.push_str(&format!(
                "| {p} | string (partition) | from the object path |\n"
            ));
        }
        for c in t.columns.iter() {
            let null = if c.nullable { ", nullable" } else { "" };
            out.push_str(&format!(
                "| {} | {}{null} | {} |\n",
                c.name,
                c.ty.glue(),
                c.doc
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_partitions_are_not_columns() {
        for t in all_tables(&StreamSet::builtin()) {
            let mut names: Vec<&str> = t.columns.iter().map(|c| c.name.as_ref()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.columns.len(), "{}", t.name);
            for p in t.partitions {
                assert!(!names.contains(p), "{} repeats partition {p}", t.name);
            }
            assert_eq!(t.schema().fields().len(), t.columns.len());
        }
    }

    #[test]
    fn timestamps_are_utc() {
        let s = raw_table(StreamSet::builtin().get("trades").unwrap()).schema();
        assert_eq!(
            s.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }
}
