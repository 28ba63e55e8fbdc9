//! The lake's tables, defined once. The Parquet writer, `sluice query`'s table registration,
//! the Glue columns in Terraform, the Kusto tables and the docs are all derived from (or checked
//! against) these definitions.
//!
//! Partition columns (`scenario`, `dt`, `hour`) live in the object path, Hive style, and are
//! *not* stored in the files: Athena and Glue reject a table whose partition key repeats a data
//! column.

use std::sync::{Arc, OnceLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::event::Scenario;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    /// UTC instant, millisecond precision (Parquet `isAdjustedToUTC=true`).
    TimestampMs,
    Binary,
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
        }
    }

    /// Kusto (Azure Data Explorer) type name. Kusto has no binary type: raw bytes are base64.
    pub fn kusto(self) -> &'static str {
        match self {
            ColumnType::String | ColumnType::Binary => "string",
            ColumnType::Int64 => "long",
            ColumnType::Float64 => "real",
            ColumnType::TimestampMs => "datetime",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    pub doc: &'static str,
}

const fn col(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        doc,
    }
}

const fn opt(name: &'static str, ty: ColumnType, doc: &'static str) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        doc,
    }
}

#[derive(Debug)]
pub struct Table {
    /// Name in SQL (`sluice query`, Athena) and Glue.
    pub name: &'static str,
    /// Object-key prefix under the lake root, up to the first partition directory.
    pub prefix: &'static str,
    /// Partition columns in path order (all strings).
    pub partitions: &'static [&'static str],
    pub columns: &'static [Column],
    pub doc: &'static str,
}

const LINEAGE: [Column; 3] = [
    col(
        "shard_id",
        ColumnType::String,
        "Stream shard (Kinesis) or partition the record was read from",
    ),
    col(
        "sequence_number",
        ColumnType::String,
        "Sequence number of the record in its shard",
    ),
    col(
        "arrival_time",
        ColumnType::TimestampMs,
        "When the stream accepted the record (UTC)",
    ),
];

macro_rules! raw_table {
    ($name:literal, $doc:literal, [$($c:expr),* $(,)?]) => {
        Table {
            name: $name,
            prefix: concat!("raw/scenario=", $name),
            partitions: &["dt", "hour"],
            columns: &[
                col("event_id", ColumnType::String, "Producer's unique event id (dedup key)"),
                col("event_time", ColumnType::TimestampMs, "When the event happened (UTC)"),
                $($c,)*
                LINEAGE[0], LINEAGE[1], LINEAGE[2],
            ],
            doc: $doc,
        }
    };
}

pub static TRADES: Table = raw_table!(
    "trades",
    "Every decoded trade event, partitioned by event time.",
    [
        col("symbol", ColumnType::String, "Ticker; the partition key"),
        col("side", ColumnType::String, "BUY or SELL"),
        col("price", ColumnType::Float64, "Trade price"),
        col("quantity", ColumnType::Int64, "Shares traded"),
        col("trade_type", ColumnType::String, "MARKET, LIMIT or STOP"),
    ]
);

pub static TELEMETRY: Table = raw_table!(
    "telemetry",
    "Every decoded telemetry sample, partitioned by event time.",
    [
        col("host", ColumnType::String, "Host name; the partition key"),
        col("cpu_pct", ColumnType::Float64, "CPU utilisation, percent"),
        col(
            "mem_pct",
            ColumnType::Float64,
            "Memory utilisation, percent"
        ),
        col(
            "error_count",
            ColumnType::Int64,
            "Errors since the previous sample"
        ),
        col(
            "latency_ms",
            ColumnType::Float64,
            "Request latency, milliseconds"
        ),
    ]
);

pub static CLICKSTREAM: Table = raw_table!(
    "clickstream",
    "Every decoded clickstream event, partitioned by event time.",
    [
        col("user_id", ColumnType::String, "Shopper; the partition key"),
        col("product_id", ColumnType::String, "Product (SKU)"),
        col(
            "action",
            ColumnType::String,
            "view, click, cart or purchase"
        ),
        opt(
            "amount",
            ColumnType::Float64,
            "Price for cart and purchase actions"
        ),
    ]
);

pub static WINDOWS: Table = Table {
    name: "windows",
    prefix: "windows",
    partitions: &["scenario", "dt", "hour"],
    columns: &[
        col(
            "key",
            ColumnType::String,
            "Partition key (symbol, host, user), or *@<shard> for one shard's part of the scenario rollup",
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
        col(
            "count",
            ColumnType::Int64,
            "Events in the window with this metric",
        ),
        col("sum", ColumnType::Float64, "Sum of values"),
        col("min", ColumnType::Float64, "Smallest value"),
        col("max", ColumnType::Float64, "Largest value"),
        col("avg", ColumnType::Float64, "Mean value"),
        opt(
            "stddev",
            ColumnType::Float64,
            "Sample standard deviation (null below two values)",
        ),
        col(
            "first",
            ColumnType::Float64,
            "Value of the earliest event (open)",
        ),
        col(
            "last",
            ColumnType::Float64,
            "Value of the latest event (close)",
        ),
        opt(
            "weighted_avg",
            ColumnType::Float64,
            "Quantity-weighted average (VWAP) for prices; null otherwise",
        ),
    ],
    doc: "Closed event-time windows, one row per key, window and metric; partitioned by window end.",
};

pub static ANOMALIES: Table = Table {
    name: "anomalies",
    prefix: "anomalies",
    partitions: &["scenario", "dt", "hour"],
    columns: &[
        col(
            "key",
            ColumnType::String,
            "Partition key of the series, or *@<shard> for a shard's rollup",
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
    ],
    doc: "Points the detectors flagged; partitioned by window end.",
};

pub static LATE: Table = Table {
    name: "late",
    prefix: "late",
    partitions: &["scenario", "dt", "hour"],
    columns: &[
        col(
            "event_id",
            ColumnType::String,
            "Producer's event id (the full event is in the raw table)",
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
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
    ],
    doc: "Events that arrived after their windows closed: kept in raw, in no window.",
};

pub static QUARANTINE: Table = Table {
    name: "quarantine",
    prefix: "quarantine",
    partitions: &["scenario", "dt", "hour"],
    columns: &[
        LINEAGE[0],
        LINEAGE[1],
        LINEAGE[2],
        col(
            "partition_key",
            ColumnType::String,
            "Partition key the producer sent",
        ),
        col(
            "reason_code",
            ColumnType::String,
            "malformed_json, wrong_type, missing_field, unknown_scenario or invalid_value",
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
    ],
    doc: "Records that could not be decoded, with their bytes and the reason; partitioned by arrival.",
};

pub fn raw_table(scenario: Scenario) -> &'static Table {
    match scenario {
        Scenario::Trades => &TRADES,
        Scenario::Telemetry => &TELEMETRY,
        Scenario::Clickstream => &CLICKSTREAM,
    }
}

pub fn all_tables() -> [&'static Table; 7] {
    [
        &TRADES,
        &TELEMETRY,
        &CLICKSTREAM,
        &WINDOWS,
        &ANOMALIES,
        &LATE,
        &QUARANTINE,
    ]
}

impl Table {
    /// The Arrow schema of the files (partition columns excluded), built once.
    pub fn schema(&'static self) -> SchemaRef {
        static CACHE: OnceLock<Vec<(&'static str, SchemaRef)>> = OnceLock::new();
        let cache = CACHE.get_or_init(|| {
            all_tables()
                .iter()
                .map(|t| {
                    let fields: Vec<Field> = t
                        .columns
                        .iter()
                        .map(|c| Field::new(c.name, c.ty.arrow(), c.nullable))
                        .collect();
                    (t.name, Arc::new(Schema::new(fields)))
                })
                .collect()
        });
        cache
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| Arc::new(Schema::empty()))
    }

    /// Where the data files of a table start in the lake, scenario included for raw tables.
    pub fn location(&self, root: &str) -> String {
        format!("{}/{}/", root.trim_end_matches('/'), self.prefix)
    }
}

/// A Markdown table of every lake table and column (the README's schema section is checked
/// against it).
pub fn markdown() -> String {
    let mut out = String::new();
    for t in all_tables() {
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
        for c in t.columns {
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
        for t in all_tables() {
            let mut names: Vec<&str> = t.columns.iter().map(|c| c.name).collect();
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
        let s = TRADES.schema();
        assert_eq!(
            s.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
    }
}
