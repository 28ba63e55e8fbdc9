//! The shard processor: one shard's batch of records, with the state its previous batch left,
//! becomes the objects to write and the state to commit. Pure and synchronous: no I/O, no
//! clock, so the Lambda handler, the local pipeline, the benchmarks and the tests all run it
//! unchanged, and the same prior state and records always give the same objects, bytes and
//! state (what makes a redelivered batch harmless).
//!
//! The handler around it (`sluice_aggregate::handle`) loads the state, calls [`process_shard`],
//! writes the objects and then commits the state with a conditional put.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateConfig, Aggregator, AggregatorState, Output, Restored};
use crate::dedup::{DedupState, Seen};
use crate::lake::{
    self, BatchId, LakeError, LateRow, Lineage, QuarantineRow, group_by_partition, object_key,
};
use crate::schema;
use crate::stream::Record;
use crate::window::{Discarded, Placement};

/// Version of the [`ShardState`] layout this release writes. A state of a later version was
/// written by a newer release (the function was rolled back): it is refused, never read as if
/// it were this layout. States from before versions existed read as 0.
pub const STATE_FORMAT: u32 = 1;

/// Everything one shard carries between invocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardState {
    /// The layout version ([`STATE_FORMAT`] when written by this release).
    #[serde(default)]
    pub format: u32,
    /// Highest sequence number whose effects are committed.
    pub last_sequence: Option<String>,
    /// The shard is closed (a reshard) and every record of it is committed: its windows were
    /// flushed and the sweep passes it by.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    /// Fingerprint of the window/detector configuration the state was built with.
    pub config: String,
    pub aggregator: AggregatorState,
    /// Position ranges (first, last sequence number) of the last [`COMMITTED_RANGES`] batches
    /// committed, oldest first: a record at or below `last_sequence` inside one is a
    /// redelivery; one between them is a gap (a range Lambda gave up on), processed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committed: Vec<(String, String)>,
    /// Position ranges replayed with [`process_replay`] (a DLQ message's range), merged: a second
    /// replay of them is skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replayed: Vec<(String, String)>,
    /// Event ids seen within each stream's dedup horizon.
    #[serde(default, skip_serializing_if = "DedupState::is_empty")]
    pub dedup: DedupState,
    /// Objects of the committed batch that were staged before the commit and are published
    /// after it. Whoever loads this state publishes them again before going on (publishing is
    /// idempotent), so a crash between the commit and the last publish loses nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<lake::StagedObject>,
}

/// One record of a shard, as delivered.
#[derive(Debug, Clone, Copy)]
pub struct InRecord<'a> {
    pub sequence: &'a str,
    pub arrival_ms: i64,
    /// The producer's partition key (Kinesis), or record key (Kafka; `None` for a null key).
    pub partition_key: Option<&'a str>,
    pub data: &'a [u8],
    /// A user record's index within a KPL-aggregated record; `None` for a plain record.
    pub sub_sequence: Option<u64>,
    /// The Kafka topic the record came from (routes it to a definition with `[route] topic`).
    pub topic: Option<&'a str>,
    /// The Kafka record's headers, name and value (route by `[route] header`).
    pub headers: &'a [(String, Vec<u8>)],
    /// Why the envelope's data could not be read (`data` then holds what there was): the
    /// record is quarantined with this code and reason.
    pub envelope_error: Option<EnvelopeError<'a>>,
}

/// A record whose envelope could not be read (bad base64, a Kafka tombstone, an unreadable
/// KPL aggregate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeError<'a> {
    /// The quarantine `reason_code`: `malformed_envelope` or `null_value`.
    pub code: &'static str,
    pub reason: &'a str,
}

/// Counts of what one shard batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    pub records: usize,
    /// Records at or below the committed sequence number: a redelivery, skipped.
    pub duplicates: usize,
    /// Events whose dedup id and bytes were seen before (a producer's retry): not written
    /// again.
    pub duplicate_events: usize,
    /// Events older than their stream's dedup horizon, whose ids are no longer kept: written
    /// unchecked.
    pub beyond_dedup_horizon: usize,
    pub events: usize,
    pub quarantined: usize,
    pub late: usize,
    /// Events stamped further beyond their arrival than the stream's `max_clock_skew`: kept,
    /// but they moved the watermark only that far.
    pub future_events: usize,
    pub windows: usize,
    pub anomalies: usize,
    /// Streams whose watermark a sweep moved because they were idle.
    pub idle_flushes: usize,
    /// Detector series evicted because their key had no window for the series TTL.
    pub evicted_series: usize,
}

/// The outcome of [`process_shard`]: objects to write, then the state to commit.
pub struct Processed {
    /// What the objects are named after (absent when every record was a redelivery).
    pub batch: Option<BatchId>,
    /// Arrival of the batch's last record, or the sweep's now (ms); absent for a flush.
    pub time_ms: Option<i64>,
    pub objects: Vec<(String, Vec<u8>)>,
    pub state: ShardState,
    pub stats: BatchStats,
    /// What the caller should log: nothing here fails the batch.
    pub warnings: Vec<Warning>,
}

/// Something a batch did that an operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The configuration changed and part of the open windows could not be kept.
    WindowsDiscarded(Discarded),
    /// The configuration changed how these many detector series are fed: their baselines
    /// restart.
    BaselinesDiscarded(usize),
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::WindowsDiscarded(d) => d.fmt(f),
            Warning::BaselinesDiscarded(n) => write!(
                f,
                "the detection configuration changed: {n} detector series restart their baselines"
            ),
        }
    }
}

fn restore_warnings(restored: Restored) -> Vec<Warning> {
    let mut warnings: Vec<Warning> = restored
        .windows_discarded
        .into_iter()
        .map(Warning::WindowsDiscarded)
        .collect();
    if restored.baselines_discarded > 0 {
        warnings.push(Warning::BaselinesDiscarded(restored.baselines_discarded));
    }
    warnings
}

/// How many recent batch ranges a shard state keeps (about 30 KB).
pub const COMMITTED_RANGES: usize = 256;

fn in_ranges(ranges: &[(String, String)], seq: &str) -> bool {
    ranges.iter().any(|(first, last)| {
        compare_sequence(seq, first) != Ordering::Less
            && compare_sequence(seq, last) != Ordering::Greater
    })
}

/// What a record's position says, given the committed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Above the high-water mark.
    New,
    /// Inside a committed or replayed range, or older than every range the state still keeps
    /// (such a record cannot be told apart and is taken as a redelivery).
    Redelivery,
    /// Below the high-water mark but between committed ranges: a range Lambda gave up on.
    Gap,
}

fn position(prior: &ShardState, seq: &str) -> Position {
    let Some(last) = prior.last_sequence.as_deref() else {
        return Position::New;
    };
    if compare_sequence(seq, last) == Ordering::Greater {
        return Position::New;
    }
    if in_ranges(&prior.committed, seq) || in_ranges(&prior.replayed, seq) {
        return Position::Redelivery;
    }
    match prior.committed.first() {
        Some((oldest, _)) if compare_sequence(seq, oldest) == Ordering::Greater => Position::Gap,
        _ => Position::Redelivery,
    }
}

/// Adds `range` to `ranges`, merging those it overlaps.
fn merge_range(ranges: &mut Vec<(String, String)>, range: (String, String)) {
    ranges.push(range);
    ranges.sort_by(|a, b| compare_sequence(&a.0, &b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges.drain(..) {
        match merged.last_mut() {
            Some(prev) if compare_sequence(&first, &prev.1) != Ordering::Greater => {
                if compare_sequence(&last, &prev.1) == Ordering::Greater {
                    prev.1 = last;
                }
            }
            _ => merged.push((first, last)),
        }
    }
    *ranges = merged;
}

/// Compares Kinesis sequence numbers: decimal strings of up to 128 bits, compared as numbers
/// (moto uses small integers, AWS 56 digits).
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Decodes, windows and detects one shard's records, and encodes every output object.
/// Pure: the same prior state and records always give the same objects, bytes and state.
///
/// Records at or below the committed position are redeliveries when a committed range holds
/// them (skipped, counted in `duplicates`), and a gap when they fall between committed ranges
/// (processed: a range Lambda gave up on, delivered again).
pub fn process_shard(
    config: &AggregateConfig,
    prior: Option<ShardState>,
    shard_id: &str,
    records: &[InRecord<'_>],
) -> Result<Processed, LakeError> {
    let prior = prior.unwrap_or_default();
    let fresh: Vec<&InRecord<'_>> = records
        .iter()
        .filter(|r| position(&prior, r.sequence) != Position::Redelivery)
        .collect();
    process(config, prior, shard_id, records.len(), fresh, None)
}

/// Processes the records of a range Lambda gave up on (a DLQ message's shard and positions,
/// `range` = first and last sequence number), read again from the stream: every record in the
/// range that no committed batch and no earlier replay holds is processed, however old, and
/// the range is recorded as replayed, so replaying it again changes nothing. Events older than
/// the watermark go to `late` (and raw), as usual; most replayed events do.
pub fn process_replay(
    config: &AggregateConfig,
    prior: Option<ShardState>,
    shard_id: &str,
    records: &[InRecord<'_>],
    range: (&str, &str),
) -> Result<Processed, LakeError> {
    let prior = prior.unwrap_or_default();
    let inside = |seq: &str| {
        compare_sequence(seq, range.0) != Ordering::Less
            && compare_sequence(seq, range.1) != Ordering::Greater
    };
    let fresh: Vec<&InRecord<'_>> = records
        .iter()
        .filter(|r| {
            inside(r.sequence)
                && !in_ranges(&prior.committed, r.sequence)
                && !in_ranges(&prior.replayed, r.sequence)
        })
        .collect();
    let replayed = (range.0.to_string(), range.1.to_string());
    process(
        config,
        prior,
        shard_id,
        records.len(),
        fresh,
        Some(replayed),
    )
}

fn process(
    config: &AggregateConfig,
    prior: ShardState,
    shard_id: &str,
    delivered: usize,
    fresh: Vec<&InRecord<'_>>,
    replayed: Option<(String, String)>,
) -> Result<Processed, LakeError> {
    let fingerprint = config.fingerprint();
    let mut stats = BatchStats {
        records: delivered,
        ..BatchStats::default()
    };
    stats.duplicates = delivered - fresh.len();
    let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
        return Ok(Processed {
            batch: None,
            time_ms: None,
            objects: Vec::new(),
            state: prior,
            stats,
            warnings: Vec::new(),
        });
    };
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: first.sequence.to_string(),
        last_sequence: last.sequence.to_string(),
    };

    let (mut aggregator, restored) = Aggregator::restore_noting(config, prior.aggregator);
    let warnings = restore_warnings(restored);
    let mut dedup = prior.dedup;
    let mut events: Vec<(Record, Lineage<'_>)> = Vec::with_capacity(fresh.len());
    let mut late: Vec<(usize, i64)> = Vec::new();
    let mut quarantine: Vec<QuarantineRow<'_>> = Vec::new();
    for r in &fresh {
        let lineage = Lineage {
            shard_id,
            sequence_number: r.sequence,
            arrival_ms: r.arrival_ms,
            sub_sequence_number: r.sub_sequence,
        };
        if let Some(e) = r.envelope_error {
            quarantine.push(QuarantineRow {
                lineage,
                partition_key: r.partition_key,
                stream: None,
                reason_code: e.code,
                reason: e.reason.to_string(),
                raw: r.data,
            });
            continue;
        }
        match config
            .decoder()
            .decode_routed(r.data, Some(r.arrival_ms), r.topic, r.headers)
        {
            Ok(record) => {
                let def = &config.streams().streams()[record.stream];
                if let Some(id) = record.dedup_id(def) {
                    let oldest = aggregator
                        .watermark_ms(record.stream)
                        .map(|w| w.saturating_sub(def.dedup_horizon_ms));
                    match dedup.check(&def.name, &id, r.data, record.event_time_ms, oldest) {
                        Seen::New => {}
                        Seen::BeyondHorizon => stats.beyond_dedup_horizon += 1,
                        Seen::Duplicate => {
                            stats.duplicate_events += 1;
                            continue;
                        }
                        Seen::Conflict => {
                            quarantine.push(QuarantineRow {
                                lineage,
                                partition_key: r.partition_key,
                                stream: Some(record.stream),
                                reason_code: "duplicate_conflict",
                                reason: format!(
                                    "{} {id:?} was seen before with other bytes: the first copy stands",
                                    def.fields[def.dedup.unwrap_or(def.key)].name
                                ),
                                raw: r.data,
                            });
                            continue;
                        }
                    }
                }
                if let Some(skew) = record.event_time_ms.checked_sub(r.arrival_ms)
                    && skew > def.max_clock_skew_ms
                {
                    stats.future_events += 1;
                }
                if let Placement::Late { watermark_ms } =
                    aggregator.push(&record, Some(r.arrival_ms))
                {
                    late.push((events.len(), watermark_ms));
                }
                events.push((record, lineage));
            }
            Err(rejected) => quarantine.push(QuarantineRow {
                lineage,
                partition_key: r.partition_key,
                stream: rejected.stream,
                reason_code: rejected.error.code(),
                reason: rejected.error.to_string(),
                raw: r.data,
            }),
        }
    }
    let mut out = Output::default();
    aggregator.advance(&mut out);
    stats.evicted_series = aggregator.evict_idle_series();
    evict_dedup(config, &aggregator, &mut dedup);
    stats.events = events.len();
    stats.quarantined = quarantine.len();
    stats.late = late.len();
    stats.windows = out.windows.len();
    stats.anomalies = out.anomalies.len();

    let objects = encode_objects(config, &batch, &events, &late, &quarantine, &out)?;
    let mut committed = prior.committed;
    let mut replayed_ranges = prior.replayed;
    match replayed {
        Some(range) => merge_range(&mut replayed_ranges, range),
        None => {
            committed.push((first.sequence.to_string(), last.sequence.to_string()));
            let excess = committed.len().saturating_sub(COMMITTED_RANGES);
            committed.drain(..excess);
        }
    }
    let last_sequence = match prior.last_sequence {
        Some(p) if compare_sequence(&p, last.sequence) == Ordering::Greater => p,
        _ => last.sequence.to_string(),
    };
    Ok(Processed {
        batch: Some(batch),
        time_ms: fresh.iter().map(|r| r.arrival_ms).max(),
        objects,
        state: ShardState {
            format: STATE_FORMAT,
            last_sequence: Some(last_sequence),
            retired: prior.retired,
            config: fingerprint,
            aggregator: aggregator.snapshot(),
            committed,
            replayed: replayed_ranges,
            dedup,
            pending: Vec::new(),
        },
        stats,
        warnings,
    })
}

/// Forgets the dedup ids of every stream that fell behind its horizon from the watermark.
fn evict_dedup(config: &AggregateConfig, aggregator: &Aggregator<'_>, dedup: &mut DedupState) {
    for (i, def) in config.streams().streams().iter().enumerate() {
        if let Some(w) = aggregator.watermark_ms(i) {
            dedup.evict(&def.name, w.saturating_sub(def.dedup_horizon_ms));
        }
    }
}

/// A sweep of one shard at wall-clock `now_ms` (ms since the epoch): every stream whose last
/// event arrived more than `idle_timeout_ms` earlier has its watermark moved as if event time
/// had gone on with the clock (see [`crate::window::WindowEngine::advance_idle`]), and what that
/// closes is detected and encoded, so the last windows before a quiet period, or on a shard a
/// reshard closed, are written without waiting for another event. `None` when nothing closed:
/// there is nothing to commit. Objects are named after the committed position and `now_ms`, so
/// a retried sweep writes the same keys.
pub fn sweep_shard(
    config: &AggregateConfig,
    prior: ShardState,
    shard_id: &str,
    now_ms: i64,
    idle_timeout_ms: i64,
) -> Result<Option<Processed>, LakeError> {
    let (mut aggregator, restored) = Aggregator::restore_noting(config, prior.aggregator);
    let mut out = Output::default();
    let moved = aggregator.advance_idle(now_ms, idle_timeout_ms, &mut out);
    if out.windows.is_empty() {
        return Ok(None);
    }
    let evicted_series = aggregator.evict_idle_series();
    let mut dedup = prior.dedup;
    evict_dedup(config, &aggregator, &mut dedup);
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: prior.last_sequence.clone().unwrap_or_else(|| "0".into()),
        last_sequence: format!("sweep{now_ms}"),
    };
    let stats = BatchStats {
        windows: out.windows.len(),
        anomalies: out.anomalies.len(),
        idle_flushes: moved,
        evicted_series,
        ..BatchStats::default()
    };
    let objects = encode_objects(config, &batch, &[], &[], &[], &out)?;
    Ok(Some(Processed {
        batch: Some(batch),
        time_ms: Some(now_ms),
        objects,
        // Positions carry over: no record was read.
        state: ShardState {
            format: STATE_FORMAT,
            config: config.fingerprint(),
            aggregator: aggregator.snapshot(),
            dedup,
            pending: Vec::new(),
            ..prior
        },
        stats,
        warnings: restore_warnings(restored),
    }))
}

/// End of stream: closes every open window of a shard's state (as if the watermark jumped past
/// all event times) and encodes what closed. Used when a local run stops with `--flush`, and
/// before retiring a stream. Later events for those windows will be late.
pub fn flush_shard(
    config: &AggregateConfig,
    prior: ShardState,
    shard_id: &str,
) -> Result<Processed, LakeError> {
    let (mut aggregator, restored) = Aggregator::restore_noting(config, prior.aggregator);
    let warnings = restore_warnings(restored);
    let mut out = Output::default();
    aggregator.flush(&mut out);
    let last = prior.last_sequence.clone().unwrap_or_else(|| "0".into());
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: last.clone(),
        last_sequence: "flush".into(),
    };
    let time_ms = aggregator.last_arrival_ms();
    let stats = BatchStats {
        windows: out.windows.len(),
        anomalies: out.anomalies.len(),
        ..BatchStats::default()
    };
    let objects = encode_objects(config, &batch, &[], &[], &[], &out)?;
    Ok(Processed {
        batch: Some(batch),
        time_ms,
        objects,
        // Positions carry over: no record was read.
        state: ShardState {
            format: STATE_FORMAT,
            config: config.fingerprint(),
            aggregator: aggregator.snapshot(),
            pending: Vec::new(),
            ..prior
        },
        stats,
        warnings,
    })
}

/// One row of the `pipeline` table: what one commit (or a sweep, over every shard) did.
#[derive(Debug, Clone)]
pub struct PipelineRow<'a> {
    /// When (ms): the batch's last arrival, or the sweep's now.
    pub time_ms: i64,
    /// `batch`, `sweep` or `flush`.
    pub kind: &'a str,
    /// The shard, or `*` for a sweep's summary.
    pub shard_id: &'a str,
    pub first_sequence: Option<&'a str>,
    pub last_sequence: Option<&'a str>,
    pub stats: &'a BatchStats,
    pub keys_on_several_shards: Option<usize>,
    pub state_bytes: Option<usize>,
}

/// The `pipeline` object of one row: `pipeline/dt=…/hour=…/<name>`, named like the batch's
/// other objects (`name`), so a retry writes the same key.
pub fn pipeline_object(
    row: &PipelineRow<'_>,
    name: &BatchId,
) -> Result<(String, Vec<u8>), LakeError> {
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
    use std::sync::Arc;
    let n = |v: usize| Some(i64::try_from(v).unwrap_or(i64::MAX));
    let s = row.stats;
    let counts = [
        s.records,
        s.duplicates,
        s.events,
        s.duplicate_events,
        s.beyond_dedup_horizon,
        s.late,
        s.quarantined,
        s.future_events,
        s.windows,
        s.anomalies,
        s.idle_flushes,
        s.evicted_series,
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from(vec![row.time_ms]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![row.kind])),
        Arc::new(StringArray::from(vec![row.shard_id])),
        Arc::new(StringArray::from(vec![row.first_sequence])),
        Arc::new(StringArray::from(vec![row.last_sequence])),
    ];
    columns.extend(
        counts
            .iter()
            .map(|&c| Arc::new(Int64Array::from(vec![n(c)])) as ArrayRef),
    );
    columns.push(Arc::new(Int64Array::from(vec![
        row.keys_on_several_shards.and_then(n),
    ])));
    columns.push(Arc::new(Int64Array::from(vec![
        row.state_bytes.and_then(n),
    ])));
    let batch = RecordBatch::try_new(schema::PIPELINE.schema(), columns).map_err(|source| {
        LakeError::Arrow {
            table: "pipeline".into(),
            source,
        }
    })?;
    Ok((
        object_key(&schema::PIPELINE, "", row.time_ms, name),
        lake::encode_parquet(&batch)?,
    ))
}

impl ShardState {
    /// (stream, key) of every key with an open window, sorted, each once (rollups excluded).
    pub fn open_keys(&self) -> Vec<(String, String)> {
        let mut keys: Vec<(String, String)> = self
            .aggregator
            .windows
            .open_keys()
            .map(|(s, k)| (s.to_string(), k.to_string()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// How many keys appear in the [`ShardState::open_keys`] of more than one shard: a producer
/// that does not partition by key, whose window rows need `windows_merged` and whose
/// detectors see partial series.
pub fn keys_on_several_shards(per_shard: &[Vec<(String, String)>]) -> usize {
    let mut shards_of: std::collections::HashMap<&(String, String), usize> =
        std::collections::HashMap::new();
    for keys in per_shard {
        for k in keys {
            *shards_of.entry(k).or_default() += 1;
        }
    }
    shards_of.values().filter(|&&n| n > 1).count()
}

/// Encodes every output of one batch as (key, Parquet bytes), one object per table and
/// partition.
pub fn encode_objects(
    config: &AggregateConfig,
    batch: &BatchId,
    events: &[(Record, Lineage<'_>)],
    late: &[(usize, i64)],
    quarantine: &[QuarantineRow<'_>],
    out: &Output,
) -> Result<Vec<(String, Vec<u8>)>, LakeError> {
    let streams = config.streams().streams();
    let name = |stream: usize| streams[stream].name.clone();
    let mut objects = Vec::new();
    // Raw events, per stream and event hour.
    let raw_tables: Vec<schema::Table> = streams.iter().map(schema::raw_table).collect();
    for ((stream_name, hour_start), idx) in
        group_by_partition(events, |(r, _)| (name(r.stream), r.event_time_ms))
    {
        let Some(stream) = streams.iter().position(|s| s.name == stream_name) else {
            continue;
        };
        let def = &streams[stream];
        let rows: Vec<(&Record, Lineage<'_>)> =
            idx.iter().map(|&i| (&events[i].0, events[i].1)).collect();
        let bytes = lake::encode_raw(def, &lake::raw_batch(def, stream, &rows)?)?;
        objects.push((
            object_key(&raw_tables[stream], &stream_name, hour_start, batch),
            bytes,
        ));
    }
    // Windows and anomalies, per stream and window-end hour.
    for ((stream_name, hour_start), idx) in
        group_by_partition(&out.windows, |w| (name(w.stream), w.end_ms))
    {
        let rows: Vec<_> = idx.iter().map(|&i| &out.windows[i]).collect();
        let batch_rows = lake::windows_batch(&rows, streams, &config.engine, &batch.shard_id)?;
        objects.push((
            object_key(&schema::WINDOWS, &stream_name, hour_start, batch),
            lake::encode_parquet(&batch_rows)?,
        ));
    }
    for ((stream_name, hour_start), idx) in
        group_by_partition(&out.anomalies, |a| (name(a.stream), a.window_end_ms))
    {
        let rows: Vec<_> = idx.iter().map(|&i| &out.anomalies[i]).collect();
        objects.push((
            object_key(&schema::ANOMALIES, &stream_name, hour_start, batch),
            lake::encode_parquet(&lake::anomalies_batch(
                &rows,
                &config.engine,
                &batch.shard_id,
            )?)?,
        ));
    }
    let late_rows: Vec<LateRow<'_>> = late
        .iter()
        .map(|&(i, watermark_ms)| LateRow {
            record: &events[i].0,
            def: &streams[events[i].0.stream],
            watermark_ms,
            lineage: events[i].1,
        })
        .collect();
    for ((stream_name, hour_start), idx) in group_by_partition(&late_rows, |r| {
        (name(r.record.stream), r.record.event_time_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &late_rows[i]).collect();
        objects.push((
            object_key(&schema::LATE, &stream_name, hour_start, batch),
            lake::encode_parquet(&lake::late_batch(&rows)?)?,
        ));
    }
    // Quarantine, per stream the record routed to (`unknown` when that much was unreadable)
    // and arrival hour.
    for ((stream_name, hour_start), idx) in group_by_partition(quarantine, |q| {
        (
            q.stream.map_or_else(|| "unknown".to_string(), name),
            q.lineage.arrival_ms,
        )
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &quarantine[i]).collect();
        objects.push((
            object_key(&schema::QUARANTINE, &stream_name, hour_start, batch),
            lake::encode_parquet(&lake::quarantine_batch(&rows)?)?,
        ));
    }

    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Scenario;
    use crate::generate::{Generator, GeneratorConfig};
    use crate::lake::decode_parquet;
    use crate::stream::{BUILTIN, StreamSet};
    use crate::window::WindowSpec;

    /// The shipped definitions, the trades one edited by `edit` (from, to), plus `extra`
    /// windows and a default lateness.
    fn config(
        edit: Option<(&str, &str)>,
        extra: &[WindowSpec],
        lateness_ms: i64,
    ) -> AggregateConfig {
        let texts: Vec<(&str, String)> = BUILTIN
            .iter()
            .map(|(file, text)| match edit {
                Some((from, to)) if file.ends_with("trades.toml") => {
                    assert!(text.contains(from), "{from}");
                    (*file, text.replacen(from, to, 1))
                }
                _ => (*file, text.to_string()),
            })
            .collect();
        let set = StreamSet::from_sources(texts.iter().map(|(f, t)| (*f, t.as_str()))).unwrap();
        AggregateConfig::new(set, extra, lateness_ms).unwrap()
    }

    /// Ten minutes of trades, as one shard's records (JSON, sequence numbers from 1).
    fn trades() -> Vec<(String, Vec<u8>)> {
        let mut g = Generator::new(GeneratorConfig::new(
            Scenario::Trades,
            9,
            2.0,
            1_795_496_400_000,
        ));
        let (mut events, mut truth) = (Vec::new(), Vec::new());
        g.generate_until(1_795_496_400_000 + 600_000, &mut events, &mut truth);
        events
            .iter()
            .enumerate()
            .map(|(i, e)| ((i + 1).to_string(), e.to_json()))
            .collect()
    }

    fn records(data: &[(String, Vec<u8>)]) -> Vec<InRecord<'_>> {
        data.iter()
            .map(|(seq, bytes)| InRecord {
                sequence: seq,
                arrival_ms: 1_795_496_400_000 + 600_000,
                partition_key: Some("k"),
                data: bytes,
                sub_sequence: None,
                topic: None,
                headers: &[],
                envelope_error: None,
            })
            .collect()
    }

    /// (window, key, metric, start, count) of window rows.
    type Rows = std::collections::BTreeSet<(String, String, String, i64, i64)>;

    /// Every window row in `objects`.
    fn window_rows(objects: &[(String, Vec<u8>)]) -> Rows {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Int64Type, TimestampMillisecondType};
        let mut rows = Rows::new();
        for (key, bytes) in objects.iter().filter(|(k, _)| k.starts_with("windows/")) {
            for b in decode_parquet(bytes.clone()).unwrap() {
                let col = |n: &str| b.column_by_name(n).unwrap().clone();
                for i in 0..b.num_rows() {
                    rows.insert((
                        col("window_name").as_string::<i32>().value(i).to_string(),
                        col("key").as_string::<i32>().value(i).to_string(),
                        col("metric").as_string::<i32>().value(i).to_string(),
                        col("window_start")
                            .as_primitive::<TimestampMillisecondType>()
                            .value(i),
                        col("count").as_primitive::<Int64Type>().value(i),
                    ));
                }
            }
            assert!(key.contains("scenario=trades"));
        }
        rows
    }

    /// The state after the first half of the trades under the shipped configuration, then the
    /// second half and a flush under `next`: its window rows and warnings.
    fn continue_under(next: &AggregateConfig) -> (Rows, Vec<Warning>) {
        let data = trades();
        let all = records(&data);
        let (first, second) = all.split_at(all.len() / 2);
        let before = process_shard(&config(None, &[], 5_000), None, "s", first).unwrap();
        let after = process_shard(next, Some(before.state), "s", second).unwrap();
        let flushed = flush_shard(next, after.state, "s").unwrap();
        let mut warnings = after.warnings;
        warnings.extend(flushed.warnings);
        let mut objects = after.objects;
        objects.extend(flushed.objects);
        (window_rows(&objects), warnings)
    }

    #[test]
    fn a_changed_lateness_or_an_added_window_keeps_every_open_window() {
        let (same, warnings) = continue_under(&config(None, &[], 5_000));
        assert!(warnings.is_empty(), "{warnings:?}");
        let (later, warnings) = continue_under(&config(None, &[], 6_000));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            later, same,
            "lateness 5s -> 6s: the same windows with the same counts"
        );
        let sliding = WindowSpec::parse("sliding:30s").unwrap();
        let (added, warnings) = continue_under(&config(None, &[sliding], 5_000));
        assert!(warnings.is_empty(), "{warnings:?}");
        let kept: std::collections::BTreeSet<_> = added
            .iter()
            .filter(|r| r.0 != "sliding_30s")
            .cloned()
            .collect();
        assert_eq!(kept, same, "the windows that were open keep their events");
        assert!(
            added.iter().any(|r| r.0 == "sliding_30s"),
            "the new window starts and closes"
        );
    }

    #[test]
    fn a_removed_window_is_discarded_with_a_warning_and_the_others_kept() {
        let (same, _) = continue_under(&config(None, &[], 5_000));
        let (fewer, warnings) = continue_under(&config(
            Some(("[[windows]]\nspec = \"hopping:5m/1m\"\n", "")),
            &[],
            5_000,
        ));
        let kept: std::collections::BTreeSet<_> = same
            .iter()
            .filter(|r| r.0 != "hopping_5m_1m")
            .cloned()
            .collect();
        assert_eq!(fewer, kept);
        assert!(
            matches!(&warnings[..], [Warning::WindowsDiscarded(Discarded::WindowRemoved { window, open_windows, .. })] if window == "hopping_5m_1m" && *open_windows > 0),
            "{warnings:?}"
        );
        assert!(warnings[0].to_string().contains("hopping_5m_1m"));
    }

    #[test]
    fn changed_metrics_or_detection_restart_only_what_they_change() {
        let (_, warnings) = continue_under(&config(
            Some((
                "[[metrics]]\nfield = \"quantity\"",
                "[[metrics]]\nname = \"shares\"\nfield = \"quantity\"",
            )),
            &[],
            5_000,
        ));
        assert!(
            warnings
                .iter()
                .filter(|w| matches!(
                    w,
                    Warning::WindowsDiscarded(Discarded::MetricsChanged { .. })
                ))
                .count()
                == 3,
            "each of the three trades windows restarts: {warnings:?}"
        );
        let (_, warnings) = continue_under(&config(
            Some(("detect_on = \"sum\"", "detect_on = \"avg\"")),
            &[],
            5_000,
        ));
        assert!(
            matches!(&warnings[..], [Warning::BaselinesDiscarded(n)] if *n > 0),
            "the quantity detectors restart, nothing else: {warnings:?}"
        );
    }

    fn trade(id: &str, symbol: &str, t: i64, quantity: i64) -> Vec<u8> {
        format!(
            r#"{{"scenario":"trades","event_id":"{id}","event_time":"{}","symbol":"{symbol}","side":"BUY","price":190.5,"quantity":{quantity},"trade_type":"LIMIT"}}"#,
            crate::time::format_rfc3339_ms(t)
        )
        .into_bytes()
    }

    /// (sequence, bytes, arrival) → records.
    fn as_records(data: &[(String, Vec<u8>, i64)]) -> Vec<InRecord<'_>> {
        data.iter()
            .map(|(seq, bytes, arrival)| InRecord {
                sequence: seq,
                arrival_ms: *arrival,
                partition_key: Some("k"),
                data: bytes,
                sub_sequence: None,
                topic: None,
                headers: &[],
                envelope_error: None,
            })
            .collect()
    }

    /// Issue "Every event exactly once", example 3, with the right value: three trades sent
    /// twice (a producer's retry, new sequence numbers), then one at 05:00:30: the window
    /// [05:00:00, 05:00:10) counts 3 and sums 300 (the code before dedup said 6 and 600).
    /// The same id with other bytes is quarantined; the first copy stands.
    #[test]
    fn producer_duplicates_are_counted_once_and_conflicts_quarantined() {
        let t0 = 1_795_496_400_000; // 05:00:00
        let mut data = Vec::new();
        for round in 0..2 {
            for i in 0..3 {
                let seq = (1 + round * 3 + i).to_string();
                data.push((
                    seq,
                    trade(&format!("ord-{i}"), "AAPL", t0 + i * 1_000, 100),
                    t0 + 4_000,
                ));
            }
        }
        data.push((
            "7".into(),
            trade("ord-1", "AAPL", t0 + 1_000, 999),
            t0 + 5_000,
        ));
        data.push((
            "8".into(),
            trade("ord-3", "AAPL", t0 + 30_000, 100),
            t0 + 30_500,
        ));
        // Split over two batches: ids are remembered in the committed state.
        let records = as_records(&data);
        let config = config(None, &[], 5_000);
        let first = process_shard(&config, None, "s", &records[..4]).unwrap();
        let second = process_shard(&config, Some(first.state), "s", &records[4..]).unwrap();
        assert_eq!(
            first.stats.duplicate_events + second.stats.duplicate_events,
            3
        );
        assert_eq!(second.stats.quarantined, 1, "ord-1 with another quantity");
        assert_eq!(first.stats.events + second.stats.events, 4);
        let quarantine: Vec<String> = second
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with("quarantine/"))
            .flat_map(|(_, b)| decode_parquet(b.clone()).unwrap())
            .flat_map(|b| {
                use arrow_array::cast::AsArray;
                let codes = b
                    .column_by_name("reason_code")
                    .unwrap()
                    .as_string::<i32>()
                    .clone();
                (0..b.num_rows())
                    .map(move |i| codes.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(quarantine, ["duplicate_conflict"]);
        let objects = [first.objects, second.objects].concat();
        let rows = window_rows(&objects);
        let tumbling = rows
            .iter()
            .find(|(w, k, m, start, _)| {
                w == "tumbling_10s" && k == "AAPL" && m == "quantity" && *start == t0
            })
            .expect("the window [05:00:00, 05:00:10) closed");
        assert_eq!(tumbling.4, 3, "count");
        assert_eq!(
            window_sum(&objects, "tumbling_10s", "quantity", t0),
            Some(300.0)
        );
    }

    /// Issue "Every event exactly once", example 2, with the right value: AAPL trades
    /// 05:00:00–05:00:14 on shard 0, then 05:00:15–05:01:15 on its child shard 1. Before the
    /// sweep, [05:00:00, 05:00:10) was never written, [05:00:10, 05:00:20) counted 5 and the
    /// minute 45; a sweep a minute after shard 0 went quiet closes its windows, and the rows of
    /// both shards add up to 10, 10 and 60.
    #[test]
    fn a_sweep_closes_the_windows_of_a_shard_that_went_quiet() {
        let t0 = 1_795_496_400_000; // 05:00:00
        let config = config(None, &[], 5_000);
        let shard = |from: i64, to: i64| -> Vec<(String, Vec<u8>, i64)> {
            (from..=to)
                .map(|s| {
                    let t = t0 + s * 1_000;
                    (
                        format!("{}", 100 + s),
                        trade(&format!("t-{s}"), "AAPL", t, 1),
                        t + 500,
                    )
                })
                .collect()
        };
        let (parent, child) = (shard(0, 14), shard(15, 75));
        let p = process_shard(&config, None, "shard-0", &as_records(&parent)).unwrap();
        let c = process_shard(&config, None, "shard-1", &as_records(&child)).unwrap();
        let last_arrival = t0 + 14_500;
        assert!(
            sweep_shard(
                &config,
                p.state.clone(),
                "shard-0",
                last_arrival + 60_000,
                60_000
            )
            .unwrap()
            .is_none(),
            "not idle yet: nothing to write"
        );
        let swept = sweep_shard(&config, p.state, "shard-0", t0 + 80_000, 60_000)
            .unwrap()
            .expect("the idle shard's windows close");
        assert_eq!(swept.stats.idle_flushes, 1);
        let objects = [p.objects, c.objects, swept.objects].concat();
        // Per object: the two shards' rows of one window may be equal, and rows are a set.
        let total = |window: &str, start: i64| -> i64 {
            objects
                .iter()
                .flat_map(|o| window_rows(std::slice::from_ref(o)))
                .filter(|(w, k, m, s, _)| {
                    w == window && k == "AAPL" && m == "quantity" && *s == start
                })
                .map(|r| r.4)
                .sum()
        };
        assert_eq!(total("tumbling_10s", t0), 10);
        assert_eq!(total("tumbling_10s", t0 + 10_000), 10);
        assert_eq!(total("tumbling_1m", t0), 60);
        // Again at the same instant: nothing more closes.
        let again = sweep_shard(&config, swept.state, "shard-0", t0 + 80_000, 60_000).unwrap();
        assert!(again.is_none());
    }

    /// Issue "Every event exactly once", item 8: a key that stops (a delisted symbol) keeps no
    /// detector state once its series has been idle for the configured time.
    #[test]
    fn detector_series_of_a_key_gone_quiet_are_evicted() {
        let t0 = 1_795_496_400_000;
        let mut config = config(None, &[], 5_000);
        config.series_ttl_ms = 120_000;
        let mut data = Vec::new();
        for s in 0..600 {
            let t = t0 + s * 1_000;
            data.push((
                format!("{}", 2 * s + 1),
                trade(&format!("a-{s}"), "AAPL", t, 1),
                t,
            ));
            if s < 90 {
                data.push((
                    format!("{}", 2 * s + 2),
                    trade(&format!("m-{s}"), "MSFT", t, 1),
                    t,
                ));
            }
        }
        let series_keys = |state: &ShardState| -> Vec<String> {
            let json = serde_json::to_value(&state.aggregator.detectors).unwrap();
            let mut keys: Vec<String> = json["series"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["key"].as_str().unwrap().to_string())
                .collect();
            keys.dedup();
            keys
        };
        let records = as_records(&data);
        let (early, late) = records.split_at(200);
        let first = process_shard(&config, None, "s", early).unwrap();
        assert_eq!(series_keys(&first.state), ["AAPL", "MSFT"]);
        let second = process_shard(&config, Some(first.state), "s", late).unwrap();
        assert!(second.stats.evicted_series >= 1);
        assert_eq!(series_keys(&second.state), ["AAPL"]);
    }

    /// Issue "Every event exactly once", item 6: a record at or below the committed position is
    /// a redelivery only when a committed range holds it; a range Lambda gave up on (between
    /// committed ranges) is processed when it comes again, and a DLQ replay is processed once.
    #[test]
    fn below_the_high_water_mark_redeliveries_are_skipped_and_gaps_processed() {
        let t0 = 1_795_496_400_000;
        let config = config(None, &[], 5_000);
        let data: Vec<(String, Vec<u8>, i64)> = (1..=30)
            .map(|i| {
                (
                    format!("{i}"),
                    trade(&format!("g-{i}"), "AAPL", t0 + i * 1_000, 1),
                    t0 + i * 1_000,
                )
            })
            .collect();
        let records = as_records(&data);
        let (a, rest) = records.split_at(10);
        let (b, c) = rest.split_at(10);
        let after_a = process_shard(&config, None, "s", a).unwrap();
        // b (records 11-20) fails until Lambda gives up and sends its range to the DLQ.
        let after_c = process_shard(&config, Some(after_a.state), "s", c).unwrap();
        assert_eq!(
            after_c.state.committed,
            [("1".into(), "10".into()), ("21".into(), "30".into())]
        );
        let again_a = process_shard(&config, Some(after_c.state.clone()), "s", a).unwrap();
        assert_eq!(
            (again_a.stats.duplicates, again_a.stats.events),
            (10, 0),
            "a redelivery"
        );
        let gap = process_shard(&config, Some(after_c.state.clone()), "s", b).unwrap();
        assert_eq!(
            (gap.stats.duplicates, gap.stats.events),
            (0, 10),
            "a gap is processed"
        );
        assert_eq!(gap.stats.late, 10, "behind the watermark: late, and in raw");
        assert_eq!(
            gap.state.last_sequence.as_deref(),
            Some("30"),
            "the high-water mark stays"
        );

        // The DLQ replay: the range's records, read again, processed once.
        let all = records.clone();
        let first = process_replay(&config, Some(after_c.state), "s", &all, ("11", "20")).unwrap();
        assert_eq!((first.stats.events, first.stats.duplicates), (10, 20));
        assert_eq!(first.state.replayed, [("11".into(), "20".into())]);
        let second = process_replay(&config, Some(first.state), "s", &all, ("11", "20")).unwrap();
        assert_eq!(second.stats.events, 0, "a second replay changes nothing");
    }

    /// The `sum` of the AAPL row of `window` and `metric` starting at `start`.
    fn window_sum(
        objects: &[(String, Vec<u8>)],
        window: &str,
        metric: &str,
        start: i64,
    ) -> Option<f64> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float64Type, TimestampMillisecondType};
        for (_, bytes) in objects.iter().filter(|(k, _)| k.starts_with("windows/")) {
            for b in decode_parquet(bytes.clone()).unwrap() {
                let col = |n: &str| b.column_by_name(n).unwrap().clone();
                for i in 0..b.num_rows() {
                    if col("window_name").as_string::<i32>().value(i) == window
                        && col("key").as_string::<i32>().value(i) == "AAPL"
                        && col("metric").as_string::<i32>().value(i) == metric
                        && col("window_start")
                            .as_primitive::<TimestampMillisecondType>()
                            .value(i)
                            == start
                    {
                        return Some(col("sum").as_primitive::<Float64Type>().value(i));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence("9", "10"), Ordering::Less);
        assert_eq!(
            compare_sequence(
                "49545115243490985018280067714973144582180062593244200961",
                "49545115243490985018280067714973144582180062593244200960"
            ),
            Ordering::Greater
        );
        assert_eq!(compare_sequence("007", "7"), Ordering::Equal);
    }

    /// Issue "Every event exactly once", example 4: one MSFT trade stamped 05:50:20 arriving at
    /// 05:00:20, then AAPL trades 05:00:20–05:01:19 arriving on time. Before the bound all 60
    /// were late; now the future trade moves the watermark only to its arrival + 30 s (the
    /// default `max_clock_skew`) − 5 s lateness, so only the trades before 05:00:45 are late,
    /// and the future one is kept and counted.
    #[test]
    fn one_future_dated_event_does_not_make_the_next_hour_late() {
        let t0 = 1_795_496_420_000; // 2026-11-24T05:00:20Z
        let mut data = vec![(
            "1".to_string(),
            trade("msft", "MSFT", t0 + 50 * 60_000, 10),
            t0,
        )];
        for i in 0..60 {
            let t = t0 + i * 1_000;
            data.push((
                (2 + i).to_string(),
                trade(&format!("aapl-{i}"), "AAPL", t, 10),
                t,
            ));
        }
        let records = as_records(&data);
        let out = process_shard(&config(None, &[], 5_000), None, "s", &records).unwrap();
        let watermark = t0 + crate::stream::DEFAULT_MAX_CLOCK_SKEW_MS - 5_000;
        let expected_late = (0..60).filter(|i| t0 + i * 1_000 < watermark).count();
        assert_eq!(expected_late, 25);
        assert_eq!(
            out.stats.late, expected_late,
            "60 of 60 were late before the bound"
        );
        assert_eq!(out.stats.future_events, 1);
        assert_eq!(out.stats.events, 61, "the future event is kept");
        assert!(
            out.objects
                .iter()
                .any(|(k, _)| k.starts_with("raw/scenario=trades/dt=2026-11-24/hour=05/"))
        );
    }
}
