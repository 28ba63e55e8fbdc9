//! Fault injection for the commit (issue "Every event exactly once"): the real handler on real
//! Kinesis payloads over an object store that fails chosen writes, delivered in random batch
//! sizes with retries and redeliveries, and the lake afterwards compared with a one-pass
//! reference (the same records in one batch, no faults): each raw event once, each window row
//! once, equal aggregates. Rows are read back with arrow-rs.
//!
//! Fault classes are switched on one by one as the fixes land; [`ENABLED`] lists those that
//! must pass today, [`PENDING`] those the commit protocol does not survive yet.
//!
//! `SLUICE_FAULT_SCHEDULES=N` explores N schedules (default 20, what CI runs); the seed of a
//! failing schedule is in the panic message.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use async_trait::async_trait;
use sluice_aggregate::payload::kinesis_event;
use sluice_aggregate::{Deps, Settings, handle};
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};
use sluice_core::lake::decode_parquet;
use sluice_core::rng::Rng;
use sluice_infra::metrics::Metrics;
use sluice_infra::sink::LogRecord;
use sluice_infra::store::{ETag, LocalDirStore, Object, ObjectStore, Precondition, StoreError};

/// A fault the harness injects, and whether the commit survives it today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// A write fails (throttled `PutObject`, a timeout) and Lambda retries the same batch.
    FailedWriteSameRetry,
    /// A batch that succeeded is delivered again (Lambda's at-least-once delivery).
    Redelivery,
    /// After a failed write Lambda retries with other boundaries (bisect, or a grown batch).
    FailedWriteOtherBoundaries,
}

/// Must leave the lake equal to the reference, today.
const ENABLED: &[Fault] = &[Fault::FailedWriteSameRetry, Fault::Redelivery];
/// Known to break the guarantee until the commit protocol changes (issue "Every event exactly
/// once", item 1): listed so the harness says what it does not yet explore.
const PENDING: &[Fault] = &[Fault::FailedWriteOtherBoundaries];

/// The real local store, whose `n`-th write (put or put_if, counted from when it is armed)
/// fails once; reads, listing and conditional puts are the local store's own.
struct FaultyStore {
    inner: LocalDirStore,
    _dir: tempfile::TempDir,
    writes: AtomicUsize,
    fail_at: std::sync::Mutex<Option<usize>>,
}

impl FaultyStore {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self {
            inner: LocalDirStore::new(dir.path()),
            _dir: dir,
            writes: AtomicUsize::new(0),
            fail_at: std::sync::Mutex::new(None),
        }
    }

    fn arm(&self, at: Option<usize>) {
        *self.fail_at.lock().unwrap() = at.map(|n| n + self.writes.load(Ordering::SeqCst));
    }

    fn check(&self, key: &str) -> Result<(), StoreError> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        let mut fail = self.fail_at.lock().unwrap();
        if *fail == Some(n) {
            *fail = None;
            return Err(StoreError::Backend {
                key: key.to_string(),
                message: "injected: SlowDown".into(),
                retryable: true,
            });
        }
        Ok(())
    }

    async fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for key in self.inner.list("").await.unwrap() {
            if let Some(object) = self.inner.get(&key).await.unwrap() {
                out.insert(key, object.body);
            }
        }
        out
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<ETag, StoreError> {
        self.check(key)?;
        self.inner.put(key, body).await
    }

    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Precondition,
    ) -> Result<ETag, StoreError> {
        self.check(key)?;
        self.inner.put_if(key, body, condition).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix).await
    }

    fn location(&self) -> String {
        format!("{} (fault injection)", self.inner.location())
    }
}

const ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/sluice-faults";

/// Trades and clickstream (a rollup) over eight minutes of one shard, in arrival order.
fn records() -> Vec<LogRecord> {
    let start = 1_795_496_400_000;
    let mut events = Vec::new();
    for scenario in [Scenario::Trades, Scenario::Clickstream] {
        let mut g = Generator::new(GeneratorConfig::new(scenario, 21, 1.0, start));
        g.generate_until(start + 8 * 60_000, &mut events, &mut Vec::new());
    }
    events.sort_by_key(|e| e.event_time_ms);
    events
        .iter()
        .enumerate()
        .map(|(i, e)| LogRecord {
            shard: 0,
            sequence: 10_000 + i as u64,
            arrival_ms: e.event_time_ms + 500,
            partition_key: e.key.clone(),
            data: e.to_json(),
        })
        .collect()
}

fn deps(store: Arc<FaultyStore>) -> Deps {
    Deps {
        store,
        settings: Settings::default(),
        metrics: Arc::new(Metrics::default()),
    }
}

/// Delivers `batch` until the handler commits it (a batch item failure or an error is what
/// Lambda retries); returns how many attempts it took.
async fn deliver(deps: &Deps, batch: &[LogRecord]) -> usize {
    let payload = serde_json::to_vec(&kinesis_event(ARN, batch)).unwrap();
    for attempt in 1..=10 {
        match handle(&payload, deps).await {
            Ok(r) if r.batch_item_failures.is_empty() => return attempt,
            _ => continue,
        }
    }
    panic!("a batch failed ten times in a row")
}

/// One cell as text, for comparing rows across lakes.
fn cell(column: &dyn Array, row: usize) -> String {
    if column.is_null(row) {
        return "NULL".into();
    }
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(row).to_string(),
        DataType::Int64 => column.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::Float64 => format!("{:?}", column.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(_, _) => column
            .as_primitive::<TimestampMillisecondType>()
            .value(row)
            .to_string(),
        DataType::Binary => format!("{:?}", column.as_binary::<i32>().value(row)),
        other => format!("<{other}>"),
    }
}

/// Table (the key's first segment and stream partition) → every row as text, sorted, with the
/// columns `ignore` leaves out (lineage that differs with batch boundaries).
fn rows(objects: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<String>> {
    let ignore = ["sequence_number", "arrival_time"];
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, bytes) in objects.iter().filter(|(k, _)| k.ends_with(".parquet")) {
        let table = key.split('/').take(2).collect::<Vec<_>>().join("/");
        for batch in decode_parquet(bytes.clone()).unwrap() {
            out.entry(table.clone())
                .or_default()
                .extend(row_texts(&batch, &ignore));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn row_texts(batch: &RecordBatch, ignore: &[&str]) -> Vec<String> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            schema
                .fields()
                .iter()
                .zip(batch.columns())
                .filter(|(f, _)| !ignore.contains(&f.name().as_str()))
                .map(|(f, c)| format!("{}={}", f.name(), cell(c.as_ref(), row)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Processes every record once, in batches of the given sizes, injecting `faults`; returns the
/// lake's rows and how many faults fired.
async fn run(
    records: &[LogRecord],
    sizes: &[usize],
    faults: &[Fault],
    rng: &mut Rng,
) -> (BTreeMap<String, Vec<String>>, usize) {
    let store = Arc::new(FaultyStore::new());
    let deps = deps(store.clone());
    let mut fired = 0;
    let mut at = 0;
    for &size in sizes {
        let batch = &records[at..(at + size).min(records.len())];
        at += batch.len();
        if batch.is_empty() {
            break;
        }
        if faults.contains(&Fault::FailedWriteSameRetry) && rng.chance(0.6) {
            // Fail one of the batch's writes (its objects, then its state: the state is last).
            store.arm(Some(rng.below(8)));
        }
        let attempts = deliver(&deps, batch).await;
        fired += attempts - 1;
        store.arm(None);
        if faults.contains(&Fault::Redelivery) && rng.chance(0.3) {
            assert_eq!(
                deliver(&deps, batch).await,
                1,
                "a redelivery is accepted at once"
            );
            fired += 1;
        }
    }
    assert_eq!(at, records.len());
    sluice_aggregate::flush(&deps, Some(ARN), "shardId-000000000000")
        .await
        .unwrap();
    (rows(&store.objects().await), fired)
}

#[tokio::test]
async fn the_lake_equals_a_one_pass_reference_under_every_enabled_fault() {
    assert!(
        ENABLED.iter().all(|f| !PENDING.contains(f)),
        "a fault is either enabled or pending"
    );
    eprintln!("fault classes enabled: {ENABLED:?}; pending: {PENDING:?}");
    let records = records();
    let n = records.len();
    let mut rng = Rng::new(1);
    let (reference, _) = run(&records, &[n], &[], &mut rng).await;
    assert!(reference.keys().any(|t| t.starts_with("raw/")));
    assert!(reference.keys().any(|t| t.starts_with("windows/")));
    let schedules: u64 = std::env::var("SLUICE_FAULT_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut total_faults = 0;
    for seed in 0..schedules {
        let mut rng = Rng::new(1_000 + seed);
        let mut sizes = Vec::new();
        let mut left = n;
        while left > 0 {
            let size = 1 + rng.below(120);
            sizes.push(size.min(left));
            left -= size.min(left);
        }
        let (lake, fired) = run(&records, &sizes, ENABLED, &mut rng).await;
        total_faults += fired;
        for (table, want) in &reference {
            let got = lake.get(table).cloned().unwrap_or_default();
            assert!(
                got == *want,
                "schedule {seed} (batches {sizes:?}): table {table} has {} rows, the reference {}",
                got.len(),
                want.len()
            );
        }
        assert_eq!(
            lake.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "schedule {seed}: tables differ"
        );
    }
    eprintln!(
        "{schedules} schedules, {total_faults} faults injected, lake equal to the reference each time"
    );
    assert!(
        total_faults > schedules as usize,
        "the schedules injected faults"
    );
}

/// Issue "Every event exactly once", example 1, with the right value: a batch whose state commit
/// fails, retried as two halves, must leave each event once. Today the first attempt's objects
/// stay beside the halves' (600 raw rows); run with `--run-ignored` to see it fail until the
/// commit protocol lands and [`Fault::FailedWriteOtherBoundaries`] moves to [`ENABLED`].
#[tokio::test]
#[ignore = "pending: the commit protocol of issue 16 (item 1)"]
async fn a_retry_with_other_boundaries_leaves_each_event_once() {
    assert!(PENDING.contains(&Fault::FailedWriteOtherBoundaries));
    let records = records();
    assert!(records.len() >= 300);
    let batch = &records[..300];
    let store = Arc::new(FaultyStore::new());
    let deps = deps(store.clone());
    // Count the writes of a clean attempt to fail its last one: the state commit.
    let probe = Arc::new(FaultyStore::new());
    deliver(&self::deps(probe.clone()), batch).await;
    let writes = probe.writes.load(Ordering::SeqCst);
    store.arm(Some(writes - 1));
    let payload = serde_json::to_vec(&kinesis_event(ARN, batch)).unwrap();
    let first = handle(&payload, &deps).await.unwrap();
    assert!(
        !first.batch_item_failures.is_empty(),
        "the state commit failed"
    );
    deliver(&deps, &batch[..150]).await;
    deliver(&deps, &batch[150..]).await;
    let lake = rows(&store.objects().await);
    let raw: usize = lake
        .iter()
        .filter(|(t, _)| t.starts_with("raw/"))
        .map(|(_, r)| r.len())
        .sum();
    assert_eq!(raw, 300, "each of the 300 events once");
}
