//! Arrow record batches of each lake table, columns built by name from the table's schema.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};

use super::{LakeError, encode_parquet_with};
use crate::detect::Anomaly;
use crate::schema::{self, Table};
use crate::stream::{Aggregate, FieldType, Record, StreamDef, Value};
use crate::window::{ClosedWindow, EngineConfig};

fn finish(table: &Table, columns: Vec<ArrayRef>) -> Result<RecordBatch, LakeError> {
    RecordBatch::try_new(table.schema(), columns).map_err(|source| LakeError::Arrow {
        table: table.name.to_string(),
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
    /// A user record's index within a KPL-aggregated record; `None` for a plain record.
    pub sub_sequence_number: Option<u64>,
}

struct LineageColumns {
    shard: StringBuilder,
    seq: StringBuilder,
    arrival: TimestampMillisecondBuilder,
    sub: Int64Builder,
}

impl LineageColumns {
    fn new(n: usize) -> Self {
        Self {
            shard: StringBuilder::with_capacity(n, n * 20),
            seq: StringBuilder::with_capacity(n, n * 24),
            arrival: utc_ms(n),
            sub: Int64Builder::with_capacity(n),
        }
    }
    fn push(&mut self, l: &Lineage<'_>) {
        self.shard.append_value(l.shard_id);
        self.seq.append_value(l.sequence_number);
        self.arrival.append_value(l.arrival_ms);
        self.sub.append_option(
            l.sub_sequence_number
                .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        );
    }
    /// The three lineage columns, and `sub_sequence_number` (the table's last column).
    fn finish(mut self) -> ([ArrayRef; 3], ArrayRef) {
        (
            [
                Arc::new(self.shard.finish()),
                Arc::new(self.seq.finish()),
                Arc::new(self.arrival.finish()),
            ],
            Arc::new(self.sub.finish()),
        )
    }
}

/// One column of a raw table being built, typed by its field.
enum RawColumn {
    Str(StringBuilder),
    Double(Float64Builder),
    Long(Int64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMillisecondBuilder),
}

impl RawColumn {
    fn new(ty: FieldType, n: usize) -> Self {
        match ty {
            FieldType::String => RawColumn::Str(StringBuilder::with_capacity(n, n * 8)),
            FieldType::Double => RawColumn::Double(Float64Builder::with_capacity(n)),
            FieldType::Long => RawColumn::Long(Int64Builder::with_capacity(n)),
            FieldType::Bool => RawColumn::Bool(BooleanBuilder::with_capacity(n)),
            FieldType::Timestamp => RawColumn::Time(utc_ms(n)),
        }
    }

    fn push(&mut self, def: &StreamDef, field: usize, value: &Value) {
        match (self, value) {
            (RawColumn::Str(b), Value::Str(v)) => b.append_value(v),
            (RawColumn::Str(b), v @ Value::Enum(_)) => b.append_option(v.as_str(def, field)),
            (RawColumn::Double(b), Value::Double(v)) => b.append_value(*v),
            (RawColumn::Long(b), Value::Long(v)) => b.append_value(*v),
            (RawColumn::Bool(b), Value::Bool(v)) => b.append_value(*v),
            (RawColumn::Time(b), Value::Time(v)) => b.append_value(*v),
            // Null, or (never, as the decoder types every value by its field) a mismatch.
            (RawColumn::Str(b), _) => b.append_null(),
            (RawColumn::Double(b), _) => b.append_null(),
            (RawColumn::Long(b), _) => b.append_null(),
            (RawColumn::Bool(b), _) => b.append_null(),
            (RawColumn::Time(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            RawColumn::Str(mut b) => Arc::new(b.finish()),
            RawColumn::Double(mut b) => Arc::new(b.finish()),
            RawColumn::Long(mut b) => Arc::new(b.finish()),
            RawColumn::Bool(mut b) => Arc::new(b.finish()),
            RawColumn::Time(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Raw events of one stream, columns built by field (the raw table of `def`). Rows of other
/// streams are skipped.
pub fn raw_batch(
    def: &StreamDef,
    stream: usize,
    rows: &[(&Record, Lineage<'_>)],
) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut columns: Vec<RawColumn> = def.fields.iter().map(|f| RawColumn::new(f.ty, n)).collect();
    let mut lineage = LineageColumns::new(n);
    for (r, l) in rows.iter().filter(|(r, _)| r.stream == stream) {
        for (i, (column, value)) in columns.iter_mut().zip(&r.values).enumerate() {
            column.push(def, i, value);
        }
        lineage.push(l);
    }
    let mut all: Vec<ArrayRef> = columns.into_iter().map(RawColumn::finish).collect();
    let (lineage, sub) = lineage.finish();
    all.extend(lineage);
    all.push(sub);
    finish(&schema::raw_table(def), all)
}

/// Parquet bytes of a raw batch of `def`: its dedup column and the sequence number are unique
/// per row.
pub fn encode_raw(def: &StreamDef, batch: &RecordBatch) -> Result<Vec<u8>, LakeError> {
    let dedup = def.dedup.map(|d| def.fields[d].column.as_str());
    let unique: Vec<&str> = dedup.into_iter().chain(["sequence_number"]).collect();
    encode_parquet_with(batch, &unique)
}

/// Closed windows of `streams` (the definitions `config` was built from), read from shard
/// `shard_id`. Aggregates a metric does not declare are null.
pub fn windows_batch(
    rows: &[&ClosedWindow],
    streams: &[StreamDef],
    config: &EngineConfig,
    shard_id: &str,
) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut key = StringBuilder::with_capacity(n, n * 8);
    let mut window = StringBuilder::with_capacity(n, n * 12);
    let mut kind = StringBuilder::with_capacity(n, n * 8);
    let (mut start, mut end) = (utc_ms(n), utc_ms(n));
    let mut metric = StringBuilder::with_capacity(n, n * 8);
    let mut count = Int64Builder::with_capacity(n);
    let mut f: Vec<Float64Builder> = (0..8).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut scope = StringBuilder::with_capacity(n, n * 3);
    let mut shard = StringBuilder::with_capacity(n, n * 20);
    let mut percentiles: Vec<Float64Builder> =
        (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut distinct = Int64Builder::with_capacity(n);
    let mut m2 = Float64Builder::with_capacity(n);
    let (mut first_time, mut last_time) = (utc_ms(n), utc_ms(n));
    let (mut first_ordinal, mut last_ordinal) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let (mut weighted_sum, mut weight) = (
        Float64Builder::with_capacity(n),
        Float64Builder::with_capacity(n),
    );
    let (mut quantile_sketch, mut distinct_sketch) = (BinaryBuilder::new(), BinaryBuilder::new());
    let names: Vec<Vec<String>> = config
        .streams
        .iter()
        .map(|s| s.windows.iter().map(|w| w.name()).collect())
        .collect();
    for w in rows {
        let a = &w.aggregates;
        let cfg = &config.streams[w.stream];
        let declared = &streams[w.stream].metrics[w.metric].aggregates;
        let has = |agg: Aggregate| declared.contains(&agg);
        let spec = &cfg.windows[w.window_index];
        key.append_value(&w.key);
        window.append_value(&names[w.stream][w.window_index]);
        kind.append_value(spec.kind());
        start.append_value(w.start_ms);
        end.append_value(w.end_ms);
        metric.append_value(&cfg.metrics[w.metric].name);
        count.append_option(has(Aggregate::Count).then_some(a.count));
        f[0].append_option(has(Aggregate::Sum).then_some(a.sum));
        f[1].append_option(has(Aggregate::Min).then_some(a.min));
        f[2].append_option(has(Aggregate::Max).then_some(a.max));
        f[3].append_option(has(Aggregate::Avg).then_some(a.avg));
        f[4].append_option(a.stddev.filter(|_| has(Aggregate::Stddev)));
        f[5].append_option(has(Aggregate::First).then_some(a.first));
        f[6].append_option(has(Aggregate::Last).then_some(a.last));
        f[7].append_option(a.weighted_avg);
        scope.append_value(w.scope.as_str());
        shard.append_value(shard_id);
        let levels = [
            Aggregate::P50,
            Aggregate::P90,
            Aggregate::P95,
            Aggregate::P99,
        ];
        for ((b, level), p) in percentiles
            .iter_mut()
            .zip(levels)
            .zip(a.percentiles.unwrap_or([f64::NAN; 4]))
        {
            b.append_option((has(level) && a.percentiles.is_some()).then_some(p));
        }
        distinct.append_option(
            a.distinct
                .filter(|_| has(Aggregate::Distinct))
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
        );
        m2.append_option(has(Aggregate::Stddev).then_some(a.m2));
        let ordinal = |o: u64| i64::try_from(o).unwrap_or(i64::MAX);
        let first = has(Aggregate::First);
        first_time.append_option(first.then_some(a.first_time_ms));
        first_ordinal.append_option(first.then(|| ordinal(a.first_ordinal)));
        let last = has(Aggregate::Last);
        last_time.append_option(last.then_some(a.last_time_ms));
        last_ordinal.append_option(last.then(|| ordinal(a.last_ordinal)));
        weighted_sum.append_option(a.weighted_avg.map(|_| a.weighted_sum));
        weight.append_option(a.weighted_avg.map(|_| a.weight));
        let percentiles = [
            Aggregate::P50,
            Aggregate::P90,
            Aggregate::P95,
            Aggregate::P99,
        ];
        quantile_sketch.append_option(
            a.quantile_sketch
                .as_deref()
                .filter(|_| percentiles.iter().any(|&p| has(p))),
        );
        distinct_sketch.append_option(
            a.distinct_sketch
                .as_deref()
                .filter(|_| has(Aggregate::Distinct)),
        );
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
    columns.push(Arc::new(scope.finish()));
    columns.push(Arc::new(shard.finish()));
    columns.extend(
        percentiles
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.push(Arc::new(distinct.finish()));
    columns.push(Arc::new(m2.finish()));
    columns.push(Arc::new(first_time.finish()));
    columns.push(Arc::new(first_ordinal.finish()));
    columns.push(Arc::new(last_time.finish()));
    columns.push(Arc::new(last_ordinal.finish()));
    columns.push(Arc::new(weighted_sum.finish()));
    columns.push(Arc::new(weight.finish()));
    columns.push(Arc::new(quantile_sketch.finish()));
    columns.push(Arc::new(distinct_sketch.finish()));
    finish(&schema::WINDOWS, columns)
}

/// Flagged points, read from shard `shard_id`.
pub fn anomalies_batch(
    rows: &[&Anomaly],
    config: &EngineConfig,
    shard_id: &str,
) -> Result<RecordBatch, LakeError> {
    let n = rows.len();
    let mut key = StringBuilder::new();
    let mut metric = StringBuilder::new();
    let mut window = StringBuilder::new();
    let (mut start, mut end) = (utc_ms(n), utc_ms(n));
    let mut detector = StringBuilder::new();
    let mut direction = StringBuilder::new();
    let mut f: Vec<Float64Builder> = (0..4).map(|_| Float64Builder::with_capacity(n)).collect();
    let mut scope = StringBuilder::new();
    let mut shard = StringBuilder::new();
    for a in rows {
        let cfg = &config.streams[a.stream];
        key.append_value(&a.key);
        metric.append_value(&cfg.metrics[a.metric].name);
        window.append_value(cfg.windows[a.window_index].name());
        start.append_value(a.window_start_ms);
        end.append_value(a.window_end_ms);
        detector.append_value(a.detector.as_str());
        direction.append_value(a.verdict.direction.as_str());
        f[0].append_value(a.verdict.score);
        f[1].append_value(a.verdict.value);
        f[2].append_value(a.verdict.baseline);
        f[3].append_value(a.verdict.spread);
        scope.append_value(a.scope.as_str());
        shard.append_value(shard_id);
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
    columns.push(Arc::new(scope.finish()));
    columns.push(Arc::new(shard.finish()));
    finish(&schema::ANOMALIES, columns)
}

/// A late event as reported in the `late` table.
#[derive(Debug, Clone)]
pub struct LateRow<'a> {
    pub record: &'a Record,
    pub def: &'a StreamDef,
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
        id.append_option(r.record.dedup_id(r.def));
        key.append_value(r.record.key(r.def));
        time.append_value(r.record.event_time_ms);
        wm.append_value(r.watermark_ms);
        lineage.push(&r.lineage);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(id.finish()),
        Arc::new(key.finish()),
        Arc::new(time.finish()),
        Arc::new(wm.finish()),
    ];
    let (lineage, sub) = lineage.finish();
    columns.extend(lineage);
    columns.push(sub);
    finish(&schema::LATE, columns)
}

/// A record that could not be decoded, kept whole.
#[derive(Debug, Clone)]
pub struct QuarantineRow<'a> {
    pub lineage: Lineage<'a>,
    pub partition_key: Option<&'a str>,
    /// The stream the record routed to, when that much was readable (its partition).
    pub stream: Option<usize>,
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
        pk.append_option(r.partition_key);
        code.append_value(r.reason_code);
        reason.append_value(&r.reason);
        raw.append_value(r.raw);
    }
    let (lineage, sub) = lineage.finish();
    let mut columns: Vec<ArrayRef> = lineage.to_vec();
    columns.extend([
        Arc::new(pk.finish()) as ArrayRef,
        Arc::new(code.finish()),
        Arc::new(reason.finish()),
        Arc::new(raw.finish()),
        sub,
    ]);
    finish(&schema::QUARANTINE, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::decode_parquet;
    use crate::stream::StreamSet;

    #[test]
    fn raw_trades_round_trip_through_parquet_with_utc_timestamps() {
        let set = StreamSet::builtin();
        let decoder = crate::stream::Decoder::new(set.clone());
        let r = decoder
            .decode(br#"{"scenario":"trades","event_id":"x","event_time":"2026-11-18T11:06:40.123Z","symbol":"AAPL","side":"BUY","price":190.5,"quantity":10,"trade_type":"LIMIT"}"#, None)
            .unwrap();
        let def = &set.streams()[r.stream];
        let l = Lineage {
            shard_id: "s",
            sequence_number: "1",
            arrival_ms: 1_795_000_000_200,
            sub_sequence_number: None,
        };
        let batch = raw_batch(def, r.stream, &[(&r, l)]).unwrap();
        let bytes = encode_raw(def, &batch).unwrap();
        assert_eq!(
            encode_raw(def, &batch).unwrap(),
            bytes,
            "deterministic bytes"
        );
        let back = decode_parquet(bytes).unwrap();
        assert_eq!(back, vec![batch.clone()]);
        let side = back[0]
            .column_by_name("side")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::StringArray>()
            .unwrap()
            .value(0)
            .to_string();
        assert_eq!(side, "BUY", "enumerations are written as their text");
    }
}
