//! Lake layout and Parquet encoding.
//!
//! `{table prefix}/[scenario=S/]dt=YYYY-MM-DD/hour=HH/part-{shard}-{first_seq}-{last_seq}.parquet`
//!
//! Keys are a pure function of the input batch (shard and sequence range) and the partition
//! time, and the bytes are a pure function of the rows, so a redelivered batch rewrites the same
//! objects with the same bytes: duplicate delivery never duplicates rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::ArrowError;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use thiserror::Error;

use crate::detect::Anomaly;
use crate::event::{Event, Payload, Scenario};
use crate::schema::{self, Table};
use crate::time::{MS_PER_HOUR, format_date};
use crate::window::ClosedWindow;

#[derive(Debug, Error)]
pub enum LakeError {
    #[error("building Arrow batch for {table}: {source}")]
    Arrow {
        table: &'static str,
        #[source]
        source: ArrowError,
    },
    #[error("Parquet: {0}")]
    Parquet(#[from] ParquetError),
    #[error("reading Parquet rows: {0}")]
    Read(#[source] ArrowError),
}

/// Identifies the input batch an output file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    pub shard_id: String,
    pub first_sequence: String,
    pub last_sequence: String,
}

impl BatchId {
    pub fn file_name(&self) -> String {
        format!(
            "part-{}-{}-{}.parquet",
            sanitize(&self.shard_id),
            sanitize(&self.first_sequence),
            sanitize(&self.last_sequence)
        )
    }
}

/// Keeps object keys to characters every store and shell accepts.
fn sanitize(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `dt=YYYY-MM-DD/hour=HH` for an instant.
pub fn partition_path(ms: i64) -> String {
    let hour = ms.rem_euclid(24 * MS_PER_HOUR) / MS_PER_HOUR;
    format!("dt={}/hour={hour:02}", format_date(ms))
}

/// The directory under the lake root that holds one scenario's files of `table`
/// (`raw/scenario=trades`), or all of them for tables not partitioned by scenario.
pub fn table_dir(table: &Table, scenario: &str) -> String {
    if table.partitions.first() == Some(&"scenario") {
        format!("{}/scenario={scenario}", table.prefix)
    } else {
        table.prefix.to_string()
    }
}

/// The object key of one output file. `scenario` is the partition value for tables partitioned
/// by scenario (`unknown` for quarantined records whose scenario could not be read).
pub fn object_key(table: &Table, scenario: &str, partition_ms: i64, batch: &BatchId) -> String {
    format!(
        "{}/{}/{}",
        table_dir(table, scenario),
        partition_path(partition_ms),
        batch.file_name()
    )
}

/// Groups row indices by (scenario partition, start of the UTC hour in ms), in key order, for
/// one file each.
pub fn group_by_partition<T>(
    rows: &[T],
    key: impl Fn(&T) -> (String, i64),
) -> BTreeMap<(String, i64), Vec<usize>> {
    let mut groups: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let (scenario, ms) = key(row);
        groups
            .entry((scenario, ms.div_euclid(MS_PER_HOUR) * MS_PER_HOUR))
            .or_default()
            .push(i);
    }
    groups
}

fn writer_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: most of zstd's ratio on this data at a fraction of the CPU of the default.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")));
    // Unique per row: a dictionary would hold every value once and save nothing, after hashing
    // each of them.
    for column in UNIQUE_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    builder.build()
}

/// Columns whose values do not repeat within a file.
const UNIQUE_COLUMNS: &[&str] = &["event_id", "sequence_number"];

/// One batch as a complete Parquet file in memory (footer written).
pub fn encode_parquet(batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 4 + 1024);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties()))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

pub fn decode_parquet(bytes: Vec<u8>) -> Result<Vec<RecordBatch>, LakeError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(LakeError::Read)
}

fn finish(table: &'static Table, columns: Vec<ArrayRef>) -> Result<RecordBatch, LakeError> {
    RecordBatch::try_new(table.schema(), columns).map_err(|source| LakeError::Arrow {
        table: table.name,
        source,
    })
}

fn utc_ms(capacity: usize) -> TimestampMillisecondBuilder {
    TimestampMillisecondBuilder::with_capacity(capacity).with_timezone("UTC")
}

/// Where a record came from on the stream.
#[derive(Debug, Clone, Copy)]
pub struct Lineage<'a> {
    pub shard_id: &'a str,
    pub sequence_number: &'a str,
    pub arrival_ms: i64,
}

struct LineageColumns {
    shard: StringBuilder,
    seq: StringBuilder,
    arrival: TimestampMillisecondBuilder,
}

impl LineageColumns {
    fn new(n: usize) -> Self {
        Self {
            shard: StringBuilder::with_capacity(n, n * 20),
            seq: StringBuilder::with_capacity(n, n * 24),
            arrival: utc_ms(n),
        }
    }
    fn push(&mut self, l: &Lineage<'_>) {
        self.shard.append_value(l.shard_id);
        self.seq.append_value(l.sequence_number);
        self.arrival.append_value(l.arrival_ms);
    }
    fn finish(mut self) -> [ArrayRef; 3] {
        [
            Arc::new(self.shard.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.arrival.finish()),
        ]
    }
}

/// Raw events of one scenario (rows of other scenarios are skipped).
pub fn raw_batch(
    scenario: Scenario,
    rows: &[(&Event, Lineage<'_>)],
) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut id = StringBuilder::with_capacity(n, n * 16);
    let mut time = utc_ms(n);
    let mut key = StringBuilder::with_capacity(n, n * 8);
    let mut lineage = LineageColumns::new(n);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(12);
    let mut push_common = |e: &Event, l: &Lineage<'_>| {
        id.append_value(&e.event_id);
        time.append_value(e.event_time_ms);
        key.append_value(&e.key);
        lineage.push(l);
    };
    match scenario {
        Scenario::Trades => {
            let (mut side, mut price, mut qty, mut ty) = (
                StringBuilder::with_capacity(n, n * 4),
                Float64Builder::with_capacity(n),
                Int64Builder::with_capacity(n),
                StringBuilder::with_capacity(n, n * 6),
            );
            for (e, l) in rows {
                if let Payload::Trade(t) = &e.payload {
                    push_common(e, l);
                    side.append_value(t.side.as_str());
                    price.append_value(t.price);
                    qty.append_value(t.quantity);
                    ty.append_value(t.trade_type.as_str());
                }
            }
            columns.extend([
                Arc::new(side.finish()) as ArrayRef,
                Arc::new(price.finish()),
                Arc::new(qty.finish()),
                Arc::new(ty.finish()),
            ]);
        }
        Scenario::Telemetry => {
            let (mut cpu, mut mem, mut err, mut lat) = (
                Float64Builder::with_capacity(n),
                Float64Builder::with_capacity(n),
                Int64Builder::with_capacity(n),
                Float64Builder::with_capacity(n),
            );
            for (e, l) in rows {
                if let Payload::Telemetry(t) = &e.payload {
                    push_common(e, l);
                    cpu.append_value(t.cpu_pct);
                    mem.append_value(t.mem_pct);
                    err.append_value(t.error_count);
                    lat.append_value(t.latency_ms);
                }
            }
            columns.extend([
                Arc::new(cpu.finish()) as ArrayRef,
                Arc::new(mem.finish()),
                Arc::new(err.finish()),
                Arc::new(lat.finish()),
            ]);
        }
        Scenario::Clickstream => {
            let (mut product, mut action, mut amount) = (
                StringBuilder::with_capacity(n, n * 8),
                StringBuilder::with_capacity(n, n * 6),
                Float64Builder::with_capacity(n),
            );
            for (e, l) in rows {
                if let Payload::Click(c) = &e.payload {
                    push_common(e, l);
                    product.append_value(&c.product_id);
                    action.append_value(c.action.as_str());
                    amount.append_option(c.amount);
                }
            }
            columns.extend([
                Arc::new(product.finish()) as ArrayRef,
                Arc::new(action.finish()),
                Arc::new(amount.finish()),
            ]);
        }
    }
    let [shard, seq, arrival] = lineage.finish();
    let mut all: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(time.finish()),
        Arc::new(key.finish()),
    ];
    all.extend(columns);
    all.extend([shard, seq, arrival]);
    finish(schema::raw_table(scenario), all)
}

/// Closed windows; `names[i]`/`kinds[i]` describe the engine's window definition `i`.
pub fn windows_batch(
    rows: &[&ClosedWindow],
    names: &[String],
    kinds: &[&'static str],
) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut key = StringBuilder::with_capacity(n, n * 8);
    let mut window = StringBuilder::with_capacity(n, n * 12);
    let mut kind = StringBuilder::with_capacity(n, n * 8);
    let (mut start, mut end) = (utc_ms(n), utc_ms(n));
    let mut metric = StringBuilder::with_capacity(n, n * 8);
    let mut count = Int64Builder::with_capacity(n);
    let mut f: Vec<Float64Builder> = (0..8).map(|_| Float64Builder::with_capacity(n)).collect();
    for w in rows {
        let a = &w.aggregates;
        key.append_value(&w.key);
        window.append_value(&names[w.window_index]);
        kind.append_value(kinds[w.window_index]);
        start.append_value(w.start_ms);
        end.append_value(w.end_ms);
        metric.append_value(w.metric);
        count.append_value(a.count);
        f[0].append_value(a.sum);
        f[1].append_value(a.min);
        f[2].append_value(a.max);
        f[3].append_value(a.avg);
        f[4].append_option(a.stddev);
        f[5].append_value(a.first);
        f[6].append_value(a.last);
        f[7].append_option(a.weighted_avg);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(window.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(metric.finish()),
        Arc::new(count.finish()),
    ];
    columns.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    finish(&schema::WINDOWS, columns)
}

pub fn anomalies_batch(rows: &[&Anomaly], window_name: &str) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut key = StringBuilder::new();
    let mut metric = StringBuilder::new();
    let mut window = StringBuilder::new();
    let (mut start, mut end) = (utc_ms(n), utc_ms(n));
    let mut detector = StringBuilder::new();
    let mut direction = StringBuilder::new();
    let mut f: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    for a in rows {
        key.append_value(&a.key);
        metric.append_value(&a.metric);
        window.append_value(window_name);
        start.append_value(a.window_start_ms);
        end.append_value(a.window_end_ms);
        detector.append_value(a.detector.as_str());
        direction.append_value(a.verdict.direction.as_str());
        f[0].append_value(a.verdict.score);
        f[1].append_value(a.verdict.value);
        f[2].append_value(a.verdict.baseline);
        f[3].append_value(a.verdict.spread);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(metric.finish()),
        Arc::new(window.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(detector.finish()),
        Arc::new(direction.finish()),
    ];
    columns.extend(f.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    finish(&schema::ANOMALIES, columns)
}

/// A late event as reported in the `late` table.
#[derive(Debug, Clone)]
pub struct LateRow<'a> {
    pub event: &'a Event,
    pub watermark_ms: i64,
    pub lineage: Lineage<'a>,
}

pub fn late_batch(rows: &[&LateRow<'_>]) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut id = StringBuilder::new();
    let mut key = StringBuilder::new();
    let (mut time, mut wm) = (utc_ms(n), utc_ms(n));
    let mut lineage = LineageColumns::new(n);
    for r in rows {
        id.append_value(&r.event.event_id);
        key.append_value(&r.event.key);
        time.append_value(r.event.event_time_ms);
        wm.append_value(r.watermark_ms);
        lineage.push(&r.lineage);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(key.finish()),
        Arc::new(time.finish()),
        Arc::new(wm.finish()),
    ];
    columns.extend(lineage.finish());
    finish(&schema::LATE, columns)
}

/// A record that could not be decoded, kept whole.
#[derive(Debug, Clone)]
pub struct QuarantineRow<'a> {
    pub lineage: Lineage<'a>,
    pub partition_key: &'a str,
    pub reason_code: &'static str,
    pub reason: String,
    pub raw: &'a [u8],
}

pub fn quarantine_batch(rows: &[&QuarantineRow<'_>]) -> Result<RecordBatch, LakeError> {
    let mut lineage = LineageColumns::new(rows.len());
    let mut pk = StringBuilder::new();
    let mut code = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut raw = BinaryBuilder::new();
    for r in rows {
        lineage.push(&r.lineage);
        pk.append_value(r.partition_key);
        code.append_value(r.reason_code);
        reason.append_value(&r.reason);
        raw.append_value(r.raw);
    }
    let mut columns: Vec<ArrayRef> = lineage.finish().to_vec();
    columns.extend([
        Arc::new(pk.finish()) as ArrayRef,
        Arc::new(code.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
    ]);
    finish(&schema::QUARANTINE, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Side, Trade, TradeType};

    #[test]
    fn keys_follow_the_layout() {
        let batch = BatchId {
            shard_id: "shardId-000000000001".into(),
            first_sequence: "4959".into(),
            last_sequence: "4960".into(),
        };
        let t = 1_795_000_000_000; // 2026-11-18T11:06:40Z
        assert_eq!(
            object_key(&schema::TRADES, "trades", t, &batch),
            "raw/scenario=trades/dt=2026-11-18/hour=11/part-shardId-000000000001-4959-4960.parquet"
        );
        assert_eq!(
            object_key(&schema::WINDOWS, "telemetry", t, &batch),
            "windows/scenario=telemetry/dt=2026-11-18/hour=11/part-shardId-000000000001-4959-4960.parquet"
        );
    }

    #[test]
    fn rows_are_grouped_by_the_hour_they_fall_in() {
        let t = 1_795_000_000_000; // 2026-11-18T11:06:40Z
        let rows = [
            ("trades", t),
            ("trades", t + MS_PER_HOUR),
            ("telemetry", t),
            ("trades", t + 1),
        ];
        let groups = group_by_partition(&rows, |(s, ms)| (s.to_string(), *ms));
        let batch = BatchId {
            shard_id: "s".into(),
            first_sequence: "1".into(),
            last_sequence: "2".into(),
        };
        let keys: Vec<(String, Vec<usize>)> = groups
            .into_iter()
            .map(|((scenario, hour_start), idx)| {
                (
                    object_key(&schema::WINDOWS, &scenario, hour_start, &batch),
                    idx,
                )
            })
            .collect();
        assert_eq!(
            keys,
            vec![
                (
                    "windows/scenario=telemetry/dt=2026-11-18/hour=11/part-s-1-2.parquet".into(),
                    vec![2]
                ),
                (
                    "windows/scenario=trades/dt=2026-11-18/hour=11/part-s-1-2.parquet".into(),
                    vec![0, 3]
                ),
                (
                    "windows/scenario=trades/dt=2026-11-18/hour=12/part-s-1-2.parquet".into(),
                    vec![1]
                ),
            ]
        );
    }

    #[test]
    fn raw_trades_round_trip_through_parquet_with_utc_timestamps() {
        let e = Event {
            event_id: "x".into(),
            event_time_ms: 1_795_000_000_123,
            key: "AAPL".into(),
            payload: Payload::Trade(Trade {
                side: Side::Buy,
                price: 190.5,
                quantity: 10,
                trade_type: TradeType::Limit,
            }),
        };
        let l = Lineage {
            shard_id: "s",
            sequence_number: "1",
            arrival_ms: 1_795_000_000_200,
        };
        let batch = raw_batch(Scenario::Trades, &[(&e, l)]).unwrap();
        let bytes = encode_parquet(&batch).unwrap();
        assert_eq!(
            encode_parquet(&batch).unwrap(),
            bytes,
            "deterministic bytes"
        );
        let back = decode_parquet(bytes).unwrap();
        assert_eq!(back, vec![batch]);
    }
}
