//! The aggregate function: one Kinesis batch → raw, window, anomaly, late and quarantine
//! Parquet objects, plus the shard's new state.
//!
//! # Layout
//! - [`handle`]: the Lambda handler (load state → [`process_shard`] → write objects → commit state).
//! - [`process_shard`]: the pure, synchronous part: decode, window, detect, encode Parquet.
//! - [`ShardState`]: what survives between invocations of one shard.
//!
//! # Delivery semantics
//! Objects are written first and the shard state last, with a conditional put: the state write
//! is the commit. Object keys and bytes are a function of the input and the prior state, so a
//! batch redelivered after a failure rewrites the same objects, and records at or below the
//! committed sequence number are skipped as duplicates. Undecodable records are quarantined
//! (the batch succeeds); only an unavailable store fails records, reported through
//! `batchItemFailures` so Lambda retries from the first record of the shard
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-batchfailurereporting>).
//! The event source mapping must enable `ReportBatchItemFailures`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use serde::{Deserialize, Serialize};
use sluice_core::aggregate::{AggregateConfig, Aggregator, AggregatorState, Output};
use sluice_core::event::{Event, Scenario, decode};
use sluice_core::lake::{
    self, BatchId, LakeError, LateRow, Lineage, QuarantineRow, group_by_partition, object_key,
};
use sluice_core::schema;
use sluice_core::time::parse_duration_ms;
use sluice_core::window::{Placement, ROLLUP_KEY, WindowDef, WindowSpec, rollup_label};
use sluice_infra::metrics::Metrics;
use sluice_infra::store::{ObjectStore, Precondition, StoreError};
use thiserror::Error;

#[cfg(feature = "lambda")]
pub mod lambda;
pub mod payload;

pub use payload::{KinesisBatch, PayloadError};

/// Settings of the aggregate function.
#[derive(Debug, Clone)]
pub struct Settings {
    pub aggregate: AggregateConfig,
    /// Prefix of per-shard state objects in the store.
    pub state_prefix: String,
    /// At most this many objects are written at once.
    pub write_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            aggregate: AggregateConfig::default(),
            state_prefix: "state/aggregate".into(),
            write_concurrency: 8,
        }
    }
}

impl Settings {
    /// The default windows plus `extra` specs (e.g. `sliding:30s`) for every scenario, and the
    /// allowed lateness (e.g. `5s`). Errors say which value is wrong.
    pub fn with_windows(extra: &[&str], lateness: &str) -> Result<Settings, String> {
        let mut settings = Settings::default();
        let config = &mut settings.aggregate;
        for text in extra.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let spec = WindowSpec::parse(text).map_err(|e| e.to_string())?;
            if !config.engine.windows.iter().any(|d| d.spec == spec) {
                config.engine.windows.push(WindowDef {
                    spec,
                    scenarios: Scenario::ALL.to_vec(),
                });
            }
        }
        config.engine.allowed_lateness_ms =
            parse_duration_ms(lateness).map_err(|e| format!("allowed lateness: {e}"))?;
        config.validate()?;
        Ok(settings)
    }
}

pub struct Deps {
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("state object {key} is unreadable: {message}")]
    CorruptState { key: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
}

impl HandlerError {
    /// Whether retrying the invocation can help (Lambda's `errorType`).
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::CorruptState { .. }
            | HandlerError::Lake(_)
            | HandlerError::Payload(_) => false,
            HandlerError::Store(e) => e.is_retryable(),
        }
    }
}

/// Everything one shard carries between invocations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardState {
    /// Highest sequence number whose effects are committed.
    pub last_sequence: Option<String>,
    /// Fingerprint of the window/detector configuration the state was built with.
    pub config: String,
    pub aggregator: AggregatorState,
}

/// One record of a shard, as delivered.
#[derive(Debug, Clone, Copy)]
pub struct InRecord<'a> {
    pub sequence: &'a str,
    pub arrival_ms: i64,
    pub partition_key: &'a str,
    pub data: &'a [u8],
}

/// Counts of what one shard batch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchStats {
    pub records: usize,
    pub duplicates: usize,
    pub events: usize,
    pub quarantined: usize,
    pub late: usize,
    pub windows: usize,
    pub anomalies: usize,
}

/// The outcome of [`process_shard`]: objects to write, then the state to commit.
pub struct Processed {
    pub objects: Vec<(String, Vec<u8>)>,
    pub state: ShardState,
    pub stats: BatchStats,
}

/// Compares Kinesis sequence numbers: decimal strings of up to 128 bits, compared as numbers
/// (moto uses small integers, AWS 56 digits).
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A stable fingerprint of the configuration, so state built with other windows is not
/// misread.
pub fn config_fingerprint(config: &AggregateConfig) -> String {
    use md5::{Digest, Md5};
    let json = serde_json::to_vec(config).unwrap_or_default();
    Md5::digest(json)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Scenario partition of a record that could not be decoded: read it if the JSON allows.
fn quarantine_scenario(data: &[u8]) -> &'static str {
    #[derive(Deserialize)]
    struct Probe<'a> {
        // Cow: a JSON escape in the value ("tr\u0061des") cannot be borrowed.
        #[serde(borrow)]
        scenario: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Probe>(data)
        .ok()
        .and_then(|p| p.scenario.as_deref().and_then(Scenario::parse))
        .map_or("unknown", Scenario::as_str)
}

/// Decodes, windows and detects one shard's records, and encodes every output object.
/// Pure: the same prior state and records always give the same objects, bytes and state.
pub fn process_shard(
    settings: &Settings,
    prior: Option<ShardState>,
    shard_id: &str,
    records: &[InRecord<'_>],
) -> Result<Processed, LakeError> {
    let fingerprint = config_fingerprint(&settings.aggregate);
    let prior = match prior {
        Some(s) if s.config == fingerprint => s,
        Some(s) => {
            tracing::error!(
                shard = shard_id,
                old = %s.config,
                new = %fingerprint,
                "window configuration changed: open windows and detector baselines restart"
            );
            ShardState {
                last_sequence: s.last_sequence,
                ..ShardState::default()
            }
        }
        None => ShardState::default(),
    };
    let mut stats = BatchStats {
        records: records.len(),
        ..BatchStats::default()
    };
    let fresh: Vec<&InRecord<'_>> = records
        .iter()
        .filter(|r| {
            prior
                .last_sequence
                .as_deref()
                .is_none_or(|last| compare_sequence(r.sequence, last) == Ordering::Greater)
        })
        .collect();
    stats.duplicates = records.len() - fresh.len();
    let (Some(first), Some(last)) = (fresh.first(), fresh.last()) else {
        return Ok(Processed {
            objects: Vec::new(),
            state: prior,
            stats,
        });
    };
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: first.sequence.to_string(),
        last_sequence: last.sequence.to_string(),
    };

    let mut aggregator = Aggregator::restore(settings.aggregate.clone(), prior.aggregator);
    let mut events: Vec<(Event, Lineage<'_>)> = Vec::with_capacity(fresh.len());
    let mut late: Vec<(usize, i64)> = Vec::new();
    let mut quarantine: Vec<QuarantineRow<'_>> = Vec::new();
    for r in &fresh {
        let lineage = Lineage {
            shard_id,
            sequence_number: r.sequence,
            arrival_ms: r.arrival_ms,
        };
        match decode(r.data, Some(r.arrival_ms)) {
            Ok(event) => {
                if let Placement::Late { watermark_ms } = aggregator.push(&event) {
                    late.push((events.len(), watermark_ms));
                }
                events.push((event, lineage));
            }
            Err(e) => quarantine.push(QuarantineRow {
                lineage,
                partition_key: r.partition_key,
                reason_code: e.code(),
                reason: e.to_string(),
                raw: r.data,
            }),
        }
    }
    let mut out = Output::default();
    aggregator.advance(&mut out);
    label_rollups(&mut out, shard_id);
    stats.events = events.len();
    stats.quarantined = quarantine.len();
    stats.late = late.len();
    stats.windows = out.windows.len();
    stats.anomalies = out.anomalies.len();

    let objects = encode_objects(&batch, &events, &late, &quarantine, &out, &aggregator)?;
    Ok(Processed {
        objects,
        state: ShardState {
            last_sequence: Some(last.sequence.to_string()),
            config: fingerprint,
            aggregator: aggregator.snapshot(),
        },
        stats,
    })
}

/// End of stream: closes every open window of a shard's state (as if the watermark jumped past
/// all event times) and encodes what closed. Used when a local run stops with `--flush`, and
/// before retiring a stream. Later events for those windows will be late.
pub fn flush_shard(
    settings: &Settings,
    prior: ShardState,
    shard_id: &str,
) -> Result<Processed, LakeError> {
    let mut aggregator = Aggregator::restore(settings.aggregate.clone(), prior.aggregator);
    let mut out = Output::default();
    aggregator.flush(&mut out);
    label_rollups(&mut out, shard_id);
    let last = prior.last_sequence.clone().unwrap_or_else(|| "0".into());
    let batch = BatchId {
        shard_id: shard_id.to_string(),
        first_sequence: last.clone(),
        last_sequence: "flush".into(),
    };
    let stats = BatchStats {
        windows: out.windows.len(),
        anomalies: out.anomalies.len(),
        ..BatchStats::default()
    };
    let objects = encode_objects(&batch, &[], &[], &[], &out, &aggregator)?;
    Ok(Processed {
        objects,
        state: ShardState {
            last_sequence: prior.last_sequence,
            config: prior.config,
            aggregator: aggregator.snapshot(),
        },
        stats,
    })
}

/// Encodes every output of one batch as (key, Parquet bytes), one object per table and
/// partition.
fn encode_objects(
    batch: &BatchId,
    events: &[(Event, Lineage<'_>)],
    late: &[(usize, i64)],
    quarantine: &[QuarantineRow<'_>],
    out: &Output,
    aggregator: &Aggregator,
) -> Result<Vec<(String, Vec<u8>)>, LakeError> {
    let mut objects = Vec::new();
    // Raw events, per scenario and event hour.
    for ((scenario, hour_start), idx) in group_by_partition(events, |(e, _)| {
        (e.scenario().as_str().to_string(), e.event_time_ms)
    }) {
        let Some(scenario) = Scenario::parse(&scenario) else {
            continue;
        };
        let rows: Vec<(&Event, Lineage<'_>)> =
            idx.iter().map(|&i| (&events[i].0, events[i].1)).collect();
        let bytes = lake::encode_parquet(&lake::raw_batch(scenario, &rows)?)?;
        let table = schema::raw_table(scenario);
        objects.push((
            object_key(table, scenario.as_str(), hour_start, batch),
            bytes,
        ));
    }
    // Windows and anomalies, per scenario and window-end hour.
    for ((scenario, hour_start), idx) in group_by_partition(&out.windows, |w| {
        (w.scenario.as_str().to_string(), w.end_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &out.windows[i]).collect();
        let batch_rows =
            lake::windows_batch(&rows, aggregator.window_names(), aggregator.window_kinds())?;
        objects.push((
            object_key(&schema::WINDOWS, &scenario, hour_start, batch),
            lake::encode_parquet(&batch_rows)?,
        ));
    }
    let detection_window = aggregator.detection_window_name();
    for ((scenario, hour_start), idx) in group_by_partition(&out.anomalies, |a| {
        (a.scenario.as_str().to_string(), a.window_end_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &out.anomalies[i]).collect();
        objects.push((
            object_key(&schema::ANOMALIES, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::anomalies_batch(&rows, &detection_window)?)?,
        ));
    }
    let late_rows: Vec<LateRow<'_>> = late
        .iter()
        .map(|&(i, watermark_ms)| LateRow {
            event: &events[i].0,
            watermark_ms,
            lineage: events[i].1,
        })
        .collect();
    for ((scenario, hour_start), idx) in group_by_partition(&late_rows, |r| {
        (
            r.event.scenario().as_str().to_string(),
            r.event.event_time_ms,
        )
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &late_rows[i]).collect();
        objects.push((
            object_key(&schema::LATE, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::late_batch(&rows)?)?,
        ));
    }
    for ((scenario, hour_start), idx) in group_by_partition(quarantine, |q| {
        (quarantine_scenario(q.raw).to_string(), q.lineage.arrival_ms)
    }) {
        let rows: Vec<_> = idx.iter().map(|&i| &quarantine[i]).collect();
        objects.push((
            object_key(&schema::QUARANTINE, &scenario, hour_start, batch),
            lake::encode_parquet(&lake::quarantine_batch(&rows)?)?,
        ));
    }

    Ok(objects)
}

/// Rollup rows are this shard's part of a scenario total: say so in their key.
fn label_rollups(out: &mut Output, shard_id: &str) {
    let label = rollup_label(shard_id);
    for w in out.windows.iter_mut().filter(|w| w.key == ROLLUP_KEY) {
        w.key.clone_from(&label);
    }
    for a in out.anomalies.iter_mut().filter(|a| a.key == ROLLUP_KEY) {
        a.key.clone_from(&label);
    }
}

/// The state object of one shard: `{prefix}/{stream}/{shard}.json`.
pub fn state_key(prefix: &str, event_source_arn: Option<&str>, shard_id: &str) -> String {
    let stream = event_source_arn
        .and_then(|arn| arn.rsplit_once("stream/").map(|(_, name)| name))
        .map(|name| name.split('/').next().unwrap_or(name))
        .filter(|name| !name.is_empty())
        .unwrap_or("default");
    format!("{}/{stream}/{shard_id}.json", prefix.trim_end_matches('/'))
}

/// Handles one Kinesis trigger payload, as the runtime received it (one shard in practice;
/// several are handled one after another).
pub async fn handle(payload: &[u8], deps: &Deps) -> Result<KinesisEventResponse, HandlerError> {
    let batch = KinesisBatch::parse(payload)?;
    // Group by (stream, shard) keeping delivery order.
    let mut shards: BTreeMap<(Option<&str>, &str), Vec<InRecord<'_>>> = BTreeMap::new();
    for (arn, shard, record) in batch.records() {
        shards.entry((arn, shard)).or_default().push(record);
    }
    let mut response = KinesisEventResponse::default();
    for ((arn, shard), records) in &shards {
        if let Err(e) = handle_shard(*arn, shard, records, deps).await {
            if let HandlerError::CorruptState { .. } = e {
                return Err(e);
            }
            tracing::error!(shard, error = %e, "shard batch failed; Lambda will retry it from its first record");
            let mut failure = KinesisBatchItemFailure::default();
            failure.item_identifier = records.first().map(|r| r.sequence.to_string());
            response.batch_item_failures.push(failure);
        }
    }
    Ok(response)
}

/// A shard's committed state and the precondition that commits on top of exactly it.
async fn load_state(
    deps: &Deps,
    key: &str,
) -> Result<(Option<ShardState>, Precondition), HandlerError> {
    match deps.store.get(key).await? {
        None => Ok((None, Precondition::DoesNotExist)),
        Some(obj) => {
            let state =
                serde_json::from_slice(&obj.body).map_err(|e| HandlerError::CorruptState {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
            Ok((Some(state), Precondition::Matches(obj.etag)))
        }
    }
}

async fn handle_shard(
    arn: Option<&str>,
    shard: &str,
    records: &[InRecord<'_>],
    deps: &Deps,
) -> Result<BatchStats, HandlerError> {
    let key = state_key(&deps.settings.state_prefix, arn, shard);
    let (prior, condition) = load_state(deps, &key).await?;
    let processed = process_shard(&deps.settings, prior, shard, records)?;
    let m = &deps.metrics;
    Metrics::add(&m.records_in, processed.stats.records);
    Metrics::add(&m.duplicates_skipped, processed.stats.duplicates);
    if processed.stats.records == processed.stats.duplicates {
        return Ok(processed.stats);
    }
    commit(deps, &key, processed, condition).await
}

/// Writes a batch's objects, then commits its state: the state write is the commit point.
async fn commit(
    deps: &Deps,
    key: &str,
    processed: Processed,
    condition: Precondition,
) -> Result<BatchStats, HandlerError> {
    let m = &deps.metrics;
    let bytes: usize = processed.objects.iter().map(|(_, b)| b.len()).sum();
    let count = processed.objects.len();
    write_all(deps, processed.objects).await?;
    let state = serde_json::to_vec(&processed.state).map_err(|e| HandlerError::CorruptState {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    deps.store.put_if(key, state, condition).await?;
    // Counted only once committed, so a retried batch is not counted twice.
    let s = &processed.stats;
    Metrics::add(&m.events_in, s.events);
    Metrics::add(&m.quarantined, s.quarantined);
    Metrics::add(&m.late, s.late);
    Metrics::add(&m.windows_out, s.windows);
    Metrics::add(&m.anomalies_out, s.anomalies);
    Metrics::add(&m.objects_written, count);
    Metrics::add(&m.bytes_written, bytes);
    tracing::info!(
        state = key,
        records = s.records,
        events = s.events,
        quarantined = s.quarantined,
        late = s.late,
        windows = s.windows,
        anomalies = s.anomalies,
        objects = count,
        "batch committed"
    );
    Ok(processed.stats)
}

/// Flushes one shard's committed state (see [`flush_shard`]) and commits the result.
pub async fn flush(
    deps: &Deps,
    event_source_arn: Option<&str>,
    shard_id: &str,
) -> Result<BatchStats, HandlerError> {
    let key = state_key(&deps.settings.state_prefix, event_source_arn, shard_id);
    let (Some(prior), condition) = load_state(deps, &key).await? else {
        return Ok(BatchStats::default());
    };
    let processed = flush_shard(&deps.settings, prior, shard_id)?;
    commit(deps, &key, processed, condition).await
}

async fn write_all(deps: &Deps, objects: Vec<(String, Vec<u8>)>) -> Result<(), StoreError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(objects)
        .map(|(key, bytes)| async move { deps.store.put(&key, bytes).await.map(|_| ()) })
        .buffer_unordered(deps.settings.write_concurrency.max(1))
        .try_collect::<()>()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn state_keys_name_stream_and_shard() {
        assert_eq!(
            state_key(
                "state/aggregate",
                Some("arn:aws:kinesis:eu-west-1:123456789012:stream/sluice-events"),
                "shardId-000000000003"
            ),
            "state/aggregate/sluice-events/shardId-000000000003.json"
        );
        assert_eq!(state_key("s/", None, "x"), "s/default/x.json");
    }
}
