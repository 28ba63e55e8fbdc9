//! The aggregate function: one Kinesis batch → raw, window, anomaly, late and quarantine
//! Parquet objects, plus the shard's new state.
//!
//! # Layout
//! - [`handle`]: the Lambda handler (load state → [`process_shard`] → write objects → commit state).
//! - [`process_shard`] (in `sluice_core::shard`): the pure, synchronous part: decode, window,
//!   detect, encode Parquet; [`ShardState`] is what survives between invocations of one shard.
//!
//! # Delivery semantics
//! A batch's objects are *staged* first (S3 multipart uploads not yet completed; staging files
//! locally), invisible to every reader. The shard state, which lists them, is then committed
//! with a conditional put: that write is the commit. Only then are the objects *published*
//! (uploads completed, files renamed). Whoever loads a state publishes the objects it lists
//! again before going on (publishing is idempotent), so a crash after the commit loses nothing,
//! and a crash before it leaves only staged copies that no reader sees and the bucket's
//! lifecycle rule aborts. A retry with other boundaries (Lambda bisects a failed batch, or
//! retries a larger one) therefore never meets objects of the attempt that failed. Records at
//! or below the committed sequence number are skipped as redeliveries. Undecodable records are
//! quarantined (the batch succeeds); only an unavailable store fails records, reported through
//! `batchItemFailures` so Lambda retries from the first record of the shard
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html#services-kinesis-batchfailurereporting>).
//! The event source mapping must enable `ReportBatchItemFailures`.
//!
//! S3 requests per shard batch: one `GetObject` of the state, three per object written
//! (`CreateMultipartUpload`, `UploadPart`, `CompleteMultipartUpload`) and one conditional
//! `PutObject` of the state. An instance that published a state's objects remembers it; a
//! fresh instance re-publishes the objects of the state it loads (one
//! `CompleteMultipartUpload` and one `HeadObject` each, for objects already published).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use sluice_core::aggregate::{AggregateConfig, ConfigError};
use sluice_core::lake::LakeError;
use sluice_core::stream::StreamSet;
use sluice_core::stream::compat::{Incompatible, RecordedColumns};
use sluice_core::time::{TimeError, parse_duration_ms};
use sluice_core::window::{SpecError, WindowSpec};
use sluice_infra::metrics::Metrics;
use sluice_infra::store::{ETag, ObjectStore, Precondition, StagedObject, StoreError};
use thiserror::Error;

pub use sluice_core::shard::{
    BatchStats, InRecord, PipelineRow, Processed, ShardState, compare_sequence, flush_shard,
    keys_on_several_shards, pipeline_object, process_replay, process_shard, sweep_shard,
};

pub mod kpl;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod payload;
pub mod state;

use state::{Loaded, state_dir};

pub use payload::{KinesisBatch, PayloadError, Trigger};

/// Settings of the aggregate function.
#[derive(Debug, Clone)]
pub struct Settings {
    pub aggregate: AggregateConfig,
    /// Prefix of per-shard state objects in the store.
    pub state_prefix: String,
    /// At most this many objects are written at once.
    pub write_concurrency: usize,
    /// A sweep moves the watermark of a stream on a shard whose last event arrived longer ago
    /// than this, in ms (`SLUICE_IDLE_TIMEOUT`, default 1 minute).
    pub idle_timeout_ms: i64,
    /// Whether a failed Kafka partition is reported as a partial batch response
    /// (`SLUICE_KAFKA_PARTIAL_BATCH`): Lambda reads one only from a Kafka event source mapping
    /// with provisioned pollers; otherwise a failure fails the invocation.
    pub kafka_partial_batch: bool,
}

/// What the function answers Lambda: the records to retry
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-batchfailurereporting.html>;
/// for Kafka, <https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html>).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Response {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record, from which Lambda retries its shard or partition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: ItemIdentifier,
}

/// A Kinesis sequence number, or a Kafka partition and offset.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum ItemIdentifier {
    Sequence(String),
    Offset { partition: String, offset: i64 },
}

impl ItemFailure {
    /// The Kinesis sequence number, when it is one.
    pub fn sequence(&self) -> Option<&str> {
        match &self.item_identifier {
            ItemIdentifier::Sequence(s) => Some(s),
            ItemIdentifier::Offset { .. } => None,
        }
    }
}

/// Default of [`Settings::idle_timeout_ms`].
pub const DEFAULT_IDLE_TIMEOUT_MS: i64 = 60_000;

impl Default for Settings {
    fn default() -> Self {
        Self::new(AggregateConfig::builtin())
    }
}

/// Settings that cannot run: a window spelling, the lateness, or the configuration they make.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(transparent)]
    Window(#[from] SpecError),
    #[error("allowed lateness: {0}")]
    Lateness(#[from] TimeError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Settings {
    pub fn new(aggregate: AggregateConfig) -> Self {
        Self {
            aggregate,
            state_prefix: "state/aggregate".into(),
            write_concurrency: 8,
            idle_timeout_ms: DEFAULT_IDLE_TIMEOUT_MS,
            kafka_partial_batch: false,
        }
    }

    /// The definitions in `streams`, plus `extra` window specs (e.g. `sliding:30s`) for every
    /// stream, and the allowed lateness (e.g. `5s`) of streams whose definition sets none.
    /// Errors say which value is wrong.
    pub fn with_windows(
        streams: StreamSet,
        extra: &[&str],
        lateness: &str,
    ) -> Result<Settings, SettingsError> {
        let specs = extra
            .iter()
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(WindowSpec::parse)
            .collect::<Result<Vec<_>, _>>()?;
        let lateness_ms = parse_duration_ms(lateness)?;
        Ok(Settings::new(AggregateConfig::new(
            streams,
            &specs,
            lateness_ms,
        )?))
    }
}

/// A shard's record, read again from the stream for a replay.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRecord {
    pub sequence: String,
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Why a shard range could not be read again.
#[derive(Debug, Error)]
#[error("reading {shard_id} from {first} to {last} again: {message}")]
pub struct ReadRangeError {
    pub shard_id: String,
    pub first: String,
    pub last: String,
    pub message: String,
    /// Whether trying again can help (throttling, a timeout), or not (expired records).
    pub retryable: bool,
}

/// Reads a shard's records between two sequence numbers again (inclusive), for the DLQ replay:
/// Kinesis `GetShardIterator AT_SEQUENCE_NUMBER` and `GetRecords` in Lambda, a saved batch
/// locally.
#[async_trait::async_trait]
pub trait RangeReader: Send + Sync {
    async fn read(
        &self,
        stream_arn: Option<&str>,
        shard_id: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<ReadRecord>, ReadRangeError>;
}

/// What the sweep asks the stream about a reshard (Kinesis `ListShards`, then
/// `GetShardIterator AFTER_SEQUENCE_NUMBER` and `GetRecords`).
#[async_trait::async_trait]
pub trait ShardDirectory: Send + Sync {
    /// The shards of `stream` (its name) that a reshard closed.
    async fn closed_shards(&self, stream: &str) -> Result<Vec<String>, ReadRangeError>;
    /// Whether `shard_id` holds any record after `sequence`.
    async fn has_records_after(
        &self,
        stream: &str,
        shard_id: &str,
        sequence: &str,
    ) -> Result<bool, ReadRangeError>;
}

pub struct Deps {
    pub store: Arc<dyn ObjectStore>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    /// Where a replay reads records from; replays are refused without one.
    pub range_reader: Option<Arc<dyn RangeReader>>,
    /// Where the sweep learns which shards a reshard closed; without one none is retired.
    pub shard_directory: Option<Arc<dyn ShardDirectory>>,
    /// State key → ETag of the state whose pending objects this instance has published: a
    /// warm instance does not publish them again.
    published: Mutex<HashMap<String, ETag>>,
}

impl Deps {
    pub fn new(store: Arc<dyn ObjectStore>, settings: Settings, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            settings,
            metrics,
            range_reader: None,
            shard_directory: None,
            published: Mutex::default(),
        }
    }

    /// With a directory of closed shards, for the sweep to retire them.
    pub fn with_shard_directory(mut self, directory: Arc<dyn ShardDirectory>) -> Self {
        self.shard_directory = Some(directory);
        self
    }

    /// With a reader for DLQ replays.
    pub fn with_range_reader(mut self, reader: Arc<dyn RangeReader>) -> Self {
        self.range_reader = Some(reader);
        self
    }

    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<String, ETag>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("state object {key} is unreadable: {message}")]
    CorruptState { key: String, message: String },
    /// A state generation written by a newer release: the function was rolled back.
    #[error(
        "state object {key} was written by a newer release of sluice (state format {format}; this release reads up to {}): deploy that release again, or move the shard's state aside to start it afresh",
        sluice_core::shard::STATE_FORMAT
    )]
    NewerState { key: String, format: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    ReadRange(#[from] ReadRangeError),
    #[error("a replay needs the stream's records, and this deployment has no reader for them")]
    NoRangeReader,
}

impl HandlerError {
    /// Whether retrying the invocation can help (Lambda's `errorType`).
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::CorruptState { .. }
            | HandlerError::NewerState { .. }
            | HandlerError::Lake(_)
            | HandlerError::Payload(_) => false,
            HandlerError::Store(e) => e.is_retryable(),
            HandlerError::ReadRange(e) => e.retryable,
            HandlerError::NoRangeReader => false,
        }
    }
}

/// Where, under the aggregate function's state prefix, the lake records the raw-table columns
/// each stream has had (`{state_prefix}/_columns/<stream>.json`: inside the prefix the
/// function's role may write, and never a shard's state key, which ends in a shard id).
pub const COLUMNS_DIR: &str = "_columns";

/// Why the definitions cannot be used with this lake.
#[derive(Debug, Error)]
pub enum DefinitionsError {
    #[error(transparent)]
    Incompatible(#[from] Incompatible),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key} is unreadable: {message}")]
    Corrupt { key: String, message: String },
}

/// Checks every definition against the columns the lake has recorded for its stream (changes
/// must be additive: no type change, no new field that is not nullable) and records new
/// columns. Run at cold start, before any record is read: a definition that would break the
/// tables stops the function with a message naming the file and field.
pub async fn check_definitions(
    store: &dyn ObjectStore,
    streams: &StreamSet,
    state_prefix: &str,
) -> Result<(), DefinitionsError> {
    for def in streams.streams() {
        let key = format!(
            "{}/{COLUMNS_DIR}/{}.json",
            state_prefix.trim_end_matches('/'),
            def.name
        );
        let (recorded, condition) = match store.get(&key).await? {
            None => (None, Precondition::DoesNotExist),
            Some(object) => {
                let recorded: RecordedColumns =
                    serde_json::from_slice(&object.body).map_err(|e| {
                        DefinitionsError::Corrupt {
                            key: key.clone(),
                            message: e.to_string(),
                        }
                    })?;
                (Some(recorded), Precondition::Matches(object.etag))
            }
        };
        let next = match &recorded {
            None => RecordedColumns::of(def),
            Some(r) => r.evolve(def)?,
        };
        if recorded.as_ref() != Some(&next) {
            let body = serde_json::to_vec_pretty(&next).map_err(|e| DefinitionsError::Corrupt {
                key: key.clone(),
                message: e.to_string(),
            })?;
            match store.put_if(&key, body, condition).await {
                // Another instance recorded first: its record is as good as ours.
                Ok(_) | Err(StoreError::PreconditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Handles one payload as the runtime received it: a Kinesis batch (one shard in practice;
/// several are handled one after another), or a scheduled event, which is a [`sweep`].
pub async fn handle(payload: &[u8], deps: &Deps) -> Result<Response, HandlerError> {
    let unframing = deps.settings.aggregate.streams().unframing();
    let now = chrono::Utc::now().timestamp_millis();
    let (batch, kafka) = match Trigger::parse_framed(payload, now, unframing)? {
        Trigger::Kinesis(batch) => (batch, false),
        Trigger::Kafka(batch) => (batch, true),
        Trigger::Sweep { now_ms } => {
            sweep(deps, now_ms).await?;
            return Ok(Response::default());
        }
        Trigger::Replay {
            stream_arn,
            shard_id,
            first,
            last,
        } => {
            replay(deps, stream_arn.as_deref(), &shard_id, &first, &last).await?;
            return Ok(Response::default());
        }
    };
    // Group by (stream, shard) keeping delivery order.
    let mut shards: BTreeMap<(&str, &str), Vec<InRecord<'_>>> = BTreeMap::new();
    for (stream, shard, record) in batch.records() {
        shards.entry((stream, shard)).or_default().push(record);
    }
    let mut response = Response::default();
    for ((stream, shard), records) in &shards {
        if let Err(e) = handle_shard(stream, shard, records, deps).await {
            // Reporting the records as failed would have Lambda retry what fails the same way
            // every time: fail the invocation instead, marked not retryable. Kafka: Lambda
            // reads partial batch responses only with provisioned pollers, so without them any
            // failure fails the invocation, and the commit protocol makes the retry harmless.
            if !e.is_retryable() || (kafka && !deps.settings.kafka_partial_batch) {
                return Err(e);
            }
            tracing::error!(shard, error = %e, "shard batch failed; Lambda will retry it from its first record");
            let Some(first) = records.first() else {
                continue;
            };
            let item_identifier = if kafka {
                ItemIdentifier::Offset {
                    partition: shard.to_string(),
                    offset: first.sequence.parse().unwrap_or_default(),
                }
            } else {
                ItemIdentifier::Sequence(first.sequence.to_string())
            };
            response
                .batch_item_failures
                .push(ItemFailure { item_identifier });
        }
    }
    Ok(response)
}

/// A shard's newest readable state generation (see [`state`]), after publishing the objects
/// it committed.
async fn load_state(deps: &Deps, dir: &str) -> Result<Loaded, HandlerError> {
    let loaded = state::load(deps, dir).await?;
    if let (Some(prior), Some((_, etag))) = (&loaded.state, &loaded.key) {
        publish_pending(deps, dir, etag, &prior.pending).await?;
    }
    Ok(loaded)
}

async fn handle_shard(
    stream: &str,
    shard: &str,
    records: &[InRecord<'_>],
    deps: &Deps,
) -> Result<BatchStats, HandlerError> {
    let dir = state::shard_dir(&deps.settings.state_prefix, stream, shard);
    let mut loaded = load_state(deps, &dir).await?;
    let prior = loaded.state.take();
    let processed = process_shard(&deps.settings.aggregate, prior, shard, records)?;
    log_warnings(shard, &processed);
    let m = &deps.metrics;
    Metrics::add(&m.records_in, processed.stats.records);
    Metrics::add(&m.duplicates_skipped, processed.stats.duplicates);
    if processed.stats.records == processed.stats.duplicates {
        return Ok(processed.stats);
    }
    commit(deps, &dir, &loaded, processed, "batch").await
}

fn log_warnings(shard: &str, processed: &Processed) {
    for warning in &processed.warnings {
        tracing::warn!(shard, "{warning}");
    }
}

/// Publishes the objects a loaded state lists (see the module's delivery semantics), unless
/// this instance already did. An upload the bucket has aborted since is counted and logged, not
/// retried: nothing can bring it back, and failing would block the shard.
async fn publish_pending(
    deps: &Deps,
    dir: &str,
    etag: &ETag,
    pending: &[StagedObject],
) -> Result<(), HandlerError> {
    if pending.is_empty() || deps.published().get(dir) == Some(etag) {
        return Ok(());
    }
    for result in publish_all(deps, pending).await {
        match result {
            Ok(()) => {}
            Err(StoreError::Lost { key: object, .. }) => {
                Metrics::add(&deps.metrics.objects_lost, 1);
                tracing::error!(
                    state = dir,
                    object,
                    "a committed object was never published and its upload is gone"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    deps.published().insert(dir.to_string(), etag.clone());
    Ok(())
}

/// Publishes every staged object, a few at a time; one result per object.
async fn publish_all(deps: &Deps, staged: &[StagedObject]) -> Vec<Result<(), StoreError>> {
    use futures::stream::{self, StreamExt};
    stream::iter(staged)
        .map(|s| deps.store.publish(s))
        .buffer_unordered(deps.settings.write_concurrency.max(1))
        .collect()
        .await
}

/// Stages a batch's objects, commits its state as the shard's next generation (the commit
/// point), then publishes the objects and deletes superseded generations.
async fn commit(
    deps: &Deps,
    dir: &str,
    loaded: &Loaded,
    mut processed: Processed,
    kind: &str,
) -> Result<BatchStats, HandlerError> {
    let key = loaded.next_key.as_str();
    let m = &deps.metrics;
    let corrupt = |e: &dyn std::fmt::Display| HandlerError::CorruptState {
        key: key.to_string(),
        message: e.to_string(),
    };
    // The state without its list of staged objects: its size goes into the pipeline row,
    // which is itself one of the staged objects; the list is spliced in below.
    debug_assert!(processed.state.pending.is_empty());
    let mut state = serde_json::to_vec(&processed.state).map_err(|e| corrupt(&e))?;
    if let Some(batch) = &processed.batch {
        let shard_id = dir.rsplit('/').next().unwrap_or_default();
        let row = PipelineRow {
            time_ms: processed.time_ms.unwrap_or_default(),
            kind,
            shard_id,
            first_sequence: Some(batch.first_sequence.as_str()),
            last_sequence: Some(batch.last_sequence.as_str()),
            stats: &processed.stats,
            keys_on_several_shards: None,
            state_bytes: Some(state.len()),
        };
        processed.objects.push(pipeline_object(&row, batch)?);
    }
    let bytes: usize = processed.objects.iter().map(|(_, b)| b.len()).sum();
    let count = processed.objects.len();
    processed.state.pending = stage_all(deps, std::mem::take(&mut processed.objects)).await?;
    with_pending(&mut state, &processed.state.pending).map_err(|e| corrupt(&e))?;
    let etag = match deps
        .store
        .put_if(key, state, Precondition::DoesNotExist)
        .await
    {
        Ok(etag) => etag,
        Err(e) => {
            // Only a refused condition proves the state was not written: any other error may
            // hide a commit that took effect, whose objects must stay publishable.
            if matches!(e, StoreError::PreconditionFailed { .. }) {
                abort_all(deps, &processed.state.pending).await;
            }
            return Err(e.into());
        }
    };
    // Counted once committed, so a retried batch is not counted twice.
    let s = &processed.stats;
    Metrics::add(&m.events_in, s.events);
    Metrics::add(&m.duplicate_events, s.duplicate_events);
    Metrics::add(&m.beyond_dedup_horizon, s.beyond_dedup_horizon);
    Metrics::add(&m.quarantined, s.quarantined);
    Metrics::add(&m.late, s.late);
    Metrics::add(&m.windows_out, s.windows);
    Metrics::add(&m.idle_flushes, s.idle_flushes);
    Metrics::add(&m.evicted_series, s.evicted_series);
    Metrics::add(&m.anomalies_out, s.anomalies);
    Metrics::add(&m.objects_written, count);
    Metrics::add(&m.bytes_written, bytes);
    tracing::info!(
        state = key,
        records = s.records,
        events = s.events,
        duplicate_events = s.duplicate_events,
        quarantined = s.quarantined,
        late = s.late,
        windows = s.windows,
        anomalies = s.anomalies,
        objects = count,
        "batch committed"
    );
    // A failure here fails the batch; the retry finds the committed state and publishes.
    publish_pending(deps, dir, &etag, &processed.state.pending).await?;
    state::clean_up(deps, &loaded.superseded).await;
    Ok(processed.stats)
}

/// What a sweep did, over every shard state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepReport {
    /// Shard states read.
    pub states: usize,
    /// Shard states whose idle streams closed windows, committed.
    pub swept: usize,
    /// Shard states a stream invocation committed while the sweep worked: it won; the next
    /// sweep looks again.
    pub lost_races: usize,
    /// Keys with open windows on more than one shard (see [`keys_on_several_shards`]).
    pub keys_on_several_shards: usize,
    /// Bytes of every shard state read.
    pub state_bytes: usize,
    /// Shards a reshard closed whose every record was committed: flushed and retired.
    pub retired: usize,
    pub stats: BatchStats,
}

/// The sweep: at wall-clock `now_ms`, every shard state whose streams have been idle longer
/// than the idle timeout has their watermark moved and what that closes written and
/// committed (see [`sweep_shard`]), with the same conditional commit as a batch, so a
/// concurrent stream invocation wins cleanly. States that cannot be swept are logged and the
/// others still swept; the first such error is returned at the end.
pub async fn sweep(deps: &Deps, now_ms: i64) -> Result<SweepReport, HandlerError> {
    let prefix = deps.settings.state_prefix.trim_end_matches('/');
    let keys = deps.store.list(&format!("{prefix}/")).await?;
    let mut report = SweepReport::default();
    let mut first_error = None;
    let mut open_keys = Vec::new();
    let mut closed: HashMap<String, Vec<String>> = HashMap::new();
    for dir in state::shard_dirs(prefix, &keys) {
        let shard_id = dir.rsplit('/').next().unwrap_or_default();
        let stream = dir.rsplit('/').nth(1).unwrap_or_default().to_string();
        // One ListShards per stream per sweep.
        if let Some(directory) = &deps.shard_directory
            && !closed.contains_key(&stream)
        {
            let shards = directory.closed_shards(&stream).await?;
            closed.insert(stream.clone(), shards);
        }
        let closed_here = closed
            .get(&stream)
            .is_some_and(|shards| shards.iter().any(|s| s == shard_id));
        let closed_shard = closed_here.then_some(stream.as_str());
        match sweep_one(
            deps,
            &dir,
            shard_id,
            now_ms,
            closed_shard,
            &mut open_keys,
            &mut report,
        )
        .await
        {
            Ok(None) => {}
            Ok(Some(stats)) => {
                report.swept += 1;
                report.stats.windows += stats.windows;
                report.stats.anomalies += stats.anomalies;
                report.stats.idle_flushes += stats.idle_flushes;
                report.stats.evicted_series += stats.evicted_series;
            }
            Err(e) if state::lost_race(&e) => {
                report.lost_races += 1;
            }
            Err(e) => {
                tracing::error!(state = dir, error = %e, "sweep failed for this shard");
                first_error.get_or_insert(e);
            }
        }
        report.states += 1;
    }
    report.keys_on_several_shards = keys_on_several_shards(&open_keys);
    // The sweep's summary row, named after its now: a retried sweep rewrites the same object.
    let summary = PipelineRow {
        time_ms: now_ms,
        kind: "sweep",
        shard_id: "*",
        first_sequence: None,
        last_sequence: None,
        stats: &report.stats,
        keys_on_several_shards: Some(report.keys_on_several_shards),
        state_bytes: Some(report.state_bytes),
    };
    let name = sluice_core::lake::BatchId {
        shard_id: "all".into(),
        first_sequence: "sweep".into(),
        last_sequence: now_ms.to_string(),
    };
    let (key, bytes) = pipeline_object(&summary, &name)?;
    deps.store.put(&key, bytes).await?;
    Metrics::set(
        &deps.metrics.keys_on_several_shards,
        report.keys_on_several_shards,
    );
    if report.keys_on_several_shards > 0 {
        tracing::warn!(
            keys = report.keys_on_several_shards,
            "keys have open windows on several shards: the producer does not partition by key; read windows_merged, and expect detectors to see partial series"
        );
    }
    tracing::info!(
        states = report.states,
        swept = report.swept,
        lost_races = report.lost_races,
        windows = report.stats.windows,
        keys_on_several_shards = report.keys_on_several_shards,
        "sweep done"
    );
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Sweeps one shard's state; `closed_in` names the stream when a reshard closed the shard.
async fn sweep_one(
    deps: &Deps,
    dir: &str,
    shard_id: &str,
    now_ms: i64,
    closed_in: Option<&str>,
    open_keys: &mut Vec<Vec<(String, String)>>,
    report: &mut SweepReport,
) -> Result<Option<BatchStats>, HandlerError> {
    let mut loaded = load_state(deps, dir).await?;
    let Some(prior) = loaded.state.take() else {
        return Ok(None);
    };
    if prior.retired {
        return Ok(None);
    }
    report.state_bytes += loaded.bytes;
    if let (Some(stream), Some(directory), Some(last)) = (
        closed_in,
        &deps.shard_directory,
        prior.last_sequence.as_deref(),
    ) && !directory.has_records_after(stream, shard_id, last).await?
    {
        // Closed by a reshard and every record committed: close every window and retire it.
        let mut processed = flush_shard(&deps.settings.aggregate, prior, shard_id)?;
        processed.state.retired = true;
        processed.time_ms = Some(now_ms);
        report.retired += 1;
        tracing::info!(
            shard_id,
            "closed shard drained: windows flushed, state retired"
        );
        return commit(deps, dir, &loaded, processed, "retire")
            .await
            .map(Some);
    }
    open_keys.push(prior.open_keys());
    let s = &deps.settings;
    let Some(processed) = sweep_shard(&s.aggregate, prior, shard_id, now_ms, s.idle_timeout_ms)?
    else {
        return Ok(None);
    };
    log_warnings(shard_id, &processed);
    commit(deps, dir, &loaded, processed, "sweep")
        .await
        .map(Some)
}

/// Replays a range Lambda gave up on (the message its on-failure destination received, sent to
/// the function as it is): reads the range again (see [`RangeReader`]) and processes what no
/// committed batch and no earlier replay holds (see [`process_replay`]). Idempotent: replaying
/// the same message twice writes nothing the second time.
pub async fn replay(
    deps: &Deps,
    stream_arn: Option<&str>,
    shard_id: &str,
    first: &str,
    last: &str,
) -> Result<BatchStats, HandlerError> {
    let reader = deps
        .range_reader
        .as_ref()
        .ok_or(HandlerError::NoRangeReader)?;
    let read = reader.read(stream_arn, shard_id, first, last).await?;
    // Records read again are as the stream holds them: KPL aggregates are unpacked here too.
    let mut unpacked: Vec<(ReadRecord, Option<u64>, Option<String>)> = Vec::new();
    for r in read {
        if !kpl::is_aggregated(&r.data) {
            unpacked.push((r, None, None));
            continue;
        }
        match kpl::unpack(&r.data) {
            Ok(users) => unpacked.extend(users.into_iter().enumerate().map(|(i, u)| {
                let user = ReadRecord {
                    sequence: r.sequence.clone(),
                    arrival_ms: r.arrival_ms,
                    partition_key: u.partition_key,
                    data: u.data,
                };
                (user, Some(i as u64), None)
            })),
            Err(e) => unpacked.push((r, None, Some(e.to_string()))),
        }
    }
    let records: Vec<InRecord<'_>> = unpacked
        .iter()
        .map(|(r, sub, error)| InRecord {
            sequence: &r.sequence,
            arrival_ms: r.arrival_ms,
            partition_key: Some(&r.partition_key),
            data: &r.data,
            sub_sequence: *sub,
            topic: None,
            headers: &[],
            envelope_error: error
                .as_deref()
                .map(|reason| sluice_core::shard::EnvelopeError {
                    code: "malformed_envelope",
                    reason,
                }),
        })
        .collect();
    let dir = state_dir(&deps.settings.state_prefix, stream_arn, shard_id);
    let mut loaded = load_state(deps, &dir).await?;
    let prior = loaded.state.take();
    let processed = process_replay(
        &deps.settings.aggregate,
        prior,
        shard_id,
        &records,
        (first, last),
    )?;
    tracing::info!(
        shard_id,
        first,
        last,
        read = records.len(),
        replayed = processed.stats.records - processed.stats.duplicates,
        "replay"
    );
    if processed.batch.is_none() {
        return Ok(processed.stats);
    }
    log_warnings(shard_id, &processed);
    commit(deps, &dir, &loaded, processed, "replay").await
}

/// Flushes one shard's committed state (see [`flush_shard`]) and commits the result.
pub async fn flush(
    deps: &Deps,
    event_source_arn: Option<&str>,
    shard_id: &str,
) -> Result<BatchStats, HandlerError> {
    let dir = state_dir(&deps.settings.state_prefix, event_source_arn, shard_id);
    let mut loaded = load_state(deps, &dir).await?;
    let Some(prior) = loaded.state.take() else {
        return Ok(BatchStats::default());
    };
    let processed = flush_shard(&deps.settings.aggregate, prior, shard_id)?;
    commit(deps, &dir, &loaded, processed, "flush").await
}

/// Discards staged objects no commit lists, best effort (the bucket's lifecycle rule aborts
/// what is left).
async fn abort_all(deps: &Deps, staged: &[StagedObject]) {
    use futures::stream::{self, StreamExt};
    let results: Vec<_> = stream::iter(staged)
        .map(|s| deps.store.abort(s))
        .buffer_unordered(deps.settings.write_concurrency.max(1))
        .collect()
        .await;
    for e in results.into_iter().filter_map(Result::err) {
        tracing::warn!(error = %e, "could not abort a staged object; the lifecycle rule will");
    }
}

/// Adds the `pending` member to a state serialized without it (it is the last member, and
/// skipped when empty), as serializing the state with it would.
fn with_pending(state: &mut Vec<u8>, pending: &[StagedObject]) -> serde_json::Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    if state.last() == Some(&b'}') {
        state.pop();
        state.extend_from_slice(b",\"pending\":");
        serde_json::to_writer(&mut *state, pending)?;
        state.push(b'}');
    }
    Ok(())
}

async fn stage_all(
    deps: &Deps,
    objects: Vec<(String, Vec<u8>)>,
) -> Result<Vec<StagedObject>, StoreError> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    stream::iter(objects)
        .map(|(key, bytes)| async move { deps.store.stage(&key, bytes).await })
        .buffered(deps.settings.write_concurrency.max(1))
        .try_collect()
        .await
}
