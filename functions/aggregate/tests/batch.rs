//! The aggregate handler on real Kinesis payloads with a real (directory) object store:
//! quarantine with bytes and reasons, byte-identical redelivery, and failure reporting.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use aws_lambda_events::event::kinesis::KinesisEvent;
use sluice_aggregate::payload::kinesis_event;
use sluice_aggregate::{Deps, Settings, handle};
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};
use sluice_core::lake::decode_parquet;
use sluice_infra::metrics::Metrics;
use sluice_infra::sink::LogRecord;
use sluice_infra::store::{LocalDirStore, ObjectStore};

mod common;
use common::{Failure, FaultyStore};

/// Where the generated batches' shard keeps its state generations.
const STATE_DIR: &str = "state/aggregate/sluice-events/shardId-000000000001";

const FIXTURE: &str = include_str!("fixtures/kinesis-mixed.json");

fn deps(store: Arc<dyn ObjectStore>) -> Deps {
    Deps::new(store, Settings::default(), Arc::new(Metrics::default()))
}

/// Every file under `dir`, path → bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// A batch of generated trades and telemetry spanning several minutes, as Lambda delivers it.
fn generated_batch(minutes: i64) -> KinesisEvent {
    let start = 1_795_496_400_000; // 2026-11-24T05:00:00Z
    let mut events = Vec::new();
    for scenario in [Scenario::Trades, Scenario::Telemetry] {
        let mut g = Generator::new(GeneratorConfig::new(scenario, 9, 20.0, start));
        g.generate_until(start + minutes * 60_000, &mut events, &mut Vec::new());
    }
    let records: Vec<LogRecord> = events
        .iter()
        .enumerate()
        .map(|(i, e)| LogRecord {
            shard: 1,
            sequence: 1000 + i as u64,
            arrival_ms: start + minutes * 60_000,
            partition_key: e.key.clone(),
            data: e.to_json(),
        })
        .collect();
    kinesis_event(
        "arn:aws:kinesis:us-east-1:123456789012:stream/sluice-events",
        &records,
    )
}

/// The bytes Lambda delivers for `event`.
fn payload(event: &KinesisEvent) -> Vec<u8> {
    serde_json::to_vec(event).unwrap()
}

#[test]
fn fixture_is_a_real_kinesis_event_and_round_trips() {
    let event: KinesisEvent = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(event.records.len(), 8);
    let again: KinesisEvent =
        serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
    assert_eq!(event, again);
}

#[tokio::test]
async fn garbage_records_are_quarantined_with_their_bytes_and_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let deps = deps(Arc::new(LocalDirStore::new(dir.path())));
    let event: KinesisEvent = serde_json::from_str(FIXTURE).unwrap();
    let response = handle(&payload(&event), &deps).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "undecodable records are not failures"
    );

    let store = LocalDirStore::new(dir.path());
    let mut quarantined: BTreeMap<String, (Vec<u8>, String, String)> = BTreeMap::new();
    for key in store.list("quarantine/").await.unwrap() {
        let scenario = key
            .split('/')
            .nth(1)
            .unwrap()
            .trim_start_matches("scenario=")
            .to_string();
        let bytes = store.get(&key).await.unwrap().unwrap().body;
        for batch in decode_parquet(bytes).unwrap() {
            let seq = batch
                .column_by_name("sequence_number")
                .unwrap()
                .as_string::<i32>();
            let raw = batch.column_by_name("raw").unwrap().as_binary::<i32>();
            let code = batch
                .column_by_name("reason_code")
                .unwrap()
                .as_string::<i32>();
            let reason = batch.column_by_name("reason").unwrap().as_string::<i32>();
            for i in 0..batch.num_rows() {
                let tail = seq.value(i)[seq.value(i).len() - 1..].to_string();
                let entry = (
                    raw.value(i).to_vec(),
                    code.value(i).to_string(),
                    format!("{scenario} {}", reason.value(i)),
                );
                quarantined.insert(tail, entry);
            }
        }
    }
    // Exactly the garbage records (2, 4, 5, 6, 8), each with its exact bytes.
    assert_eq!(
        quarantined.keys().cloned().collect::<Vec<_>>(),
        vec!["2", "4", "5", "6", "8"]
    );
    for (i, record) in event.records.iter().enumerate() {
        let n = (i + 1).to_string();
        if let Some((raw, _, _)) = quarantined.get(&n) {
            assert_eq!(raw, &record.kinesis.data.0, "record {n} bytes");
        }
    }
    let code = |n: &str| quarantined[n].1.as_str();
    let reason = |n: &str| quarantined[n].2.as_str();
    assert_eq!(code("2"), "malformed_json");
    assert_eq!(code("4"), "missing_field");
    assert!(reason("4").contains("`price`"), "{}", reason("4"));
    assert_eq!(code("5"), "invalid_value");
    assert!(
        reason("5").contains("price") && reason("5").contains("-3"),
        "{}",
        reason("5")
    );
    assert_eq!(code("6"), "wrong_type");
    assert!(
        reason("6").starts_with("telemetry "),
        "partitioned by the scenario it claims: {}",
        reason("6")
    );
    assert!(reason("8").starts_with("unknown "), "{}", reason("8"));

    // The three good trades are in the raw table.
    let mut raw_rows = 0;
    for key in store.list("raw/scenario=trades/").await.unwrap() {
        for b in decode_parquet(store.get(&key).await.unwrap().unwrap().body).unwrap() {
            raw_rows += b.num_rows();
            let q = b
                .column_by_name("quantity")
                .unwrap()
                .as_primitive::<Int64Type>();
            assert!(q.iter().all(|v| v == Some(100)));
        }
    }
    assert_eq!(raw_rows, 3);
    let m = deps.metrics.snapshot();
    assert_eq!((m.records_in, m.events_in, m.quarantined), (8, 3, 5));
}

#[tokio::test]
async fn redelivered_batch_leaves_the_lake_byte_for_byte_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let deps = deps(Arc::new(LocalDirStore::new(dir.path())));
    let batch = generated_batch(4);
    handle(&payload(&batch), &deps).await.unwrap();
    let first = snapshot(dir.path());
    assert!(
        first.keys().any(|k| k.starts_with("windows/")),
        "windows closed: {:?}",
        first.keys().collect::<Vec<_>>()
    );
    assert!(
        first
            .keys()
            .any(|k| k.starts_with("raw/scenario=telemetry/"))
    );

    // Same batch again: every record is at or below the committed sequence number.
    let response = handle(&payload(&batch), &deps).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(snapshot(dir.path()), first);
    assert_eq!(
        deps.metrics.snapshot().duplicates_skipped,
        batch.records.len() as u64
    );

    // The state lost (as if never committed): the batch is processed again and publishes
    // exactly the same objects, and the same state but for the names of its staged uploads.
    std::fs::remove_dir_all(dir.path().join(STATE_DIR)).unwrap();
    handle(&payload(&batch), &deps).await.unwrap();
    assert_eq!(
        without_upload_ids(snapshot(dir.path())),
        without_upload_ids(first)
    );
}

/// A snapshot whose state objects have the upload ids of their staged objects blanked.
fn without_upload_ids(mut files: BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    for (key, bytes) in files.iter_mut().filter(|(k, _)| k.starts_with("state/")) {
        let mut state: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        let pending = state["pending"].as_array_mut();
        assert!(
            pending.is_some_and(|p| !p.is_empty()),
            "{key} lists its objects"
        );
        for staged in state["pending"].as_array_mut().unwrap() {
            staged["upload_id"] = serde_json::Value::Null;
        }
        *bytes = serde_json::to_vec(&state).unwrap();
    }
    files
}

#[tokio::test]
async fn an_unavailable_store_fails_the_batch_from_its_first_record_and_commits_nothing() {
    let store = Arc::new(FaultyStore::default());
    store.arm(Some(0), Failure::Before);
    let deps = deps(store.clone());
    let batch = generated_batch(3);
    let response = handle(&payload(&batch), &deps).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].sequence(),
        Some(batch.records[0].kinesis.sequence_number.as_str())
    );
    assert!(
        !store.root().join("state").exists(),
        "no state committed after a failed write"
    );
    assert_eq!(
        deps.metrics.snapshot().events_in,
        0,
        "nothing counted as processed"
    );
}

#[tokio::test]
async fn a_concurrent_commit_is_detected_not_overwritten() {
    let store = Arc::new(FaultyStore::default());
    let deps = deps(store.clone());
    let batch = generated_batch(3);
    let (first, second) = batch.records.split_at(batch.records.len() / 2);
    let mut a = KinesisEvent::default();
    a.records = first.to_vec();
    let mut b = KinesisEvent::default();
    b.records = second.to_vec();
    handle(&payload(&a), &deps).await.unwrap();
    let state = std::fs::read(
        store
            .root()
            .join(format!("{STATE_DIR}/00000000000000000001.json")),
    )
    .unwrap();

    store
        .stale_state
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let response = handle(&payload(&b), &deps).await.unwrap();
    assert_eq!(
        response.batch_item_failures.len(),
        1,
        "the losing writer reports its batch for retry"
    );
    let after = std::fs::read(
        store
            .root()
            .join(format!("{STATE_DIR}/00000000000000000001.json")),
    )
    .unwrap();
    assert_eq!(state, after, "the winner's state is intact");
}

/// The generated batch cut into `n` consecutive batches.
fn split(event: &KinesisEvent, n: usize) -> Vec<KinesisEvent> {
    let size = event.records.len().div_ceil(n);
    event
        .records
        .chunks(size)
        .map(|c| {
            let mut e = KinesisEvent::default();
            e.records = c.to_vec();
            e
        })
        .collect()
}

/// Generation files of the shard, by name.
fn generations(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(STATE_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_commit_is_a_generation_and_the_two_before_the_newest_are_kept() {
    let store = Arc::new(FaultyStore::default());
    let deps = deps(store.clone());
    for batch in split(&generated_batch(4), 5) {
        let response = handle(&payload(&batch), &deps).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(
        generations(store.root()),
        [
            "00000000000000000003.json",
            "00000000000000000004.json",
            "00000000000000000005.json"
        ]
    );
}

#[tokio::test]
async fn an_unreadable_generation_is_moved_aside_and_the_previous_one_used() {
    let store = Arc::new(FaultyStore::default());
    let deps = deps(store.clone());
    let batches = split(&generated_batch(4), 3);
    handle(&payload(&batches[0]), &deps).await.unwrap();
    handle(&payload(&batches[1]), &deps).await.unwrap();
    let newest = store
        .root()
        .join(format!("{STATE_DIR}/00000000000000000002.json"));
    std::fs::write(&newest, b"{\"last_sequence\": tru").unwrap(); // truncated
    let response = handle(&payload(&batches[2]), &deps).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "the shard is not blocked"
    );
    assert_eq!(deps.metrics.snapshot().state_fallbacks, 1);
    let aside = store.root().join(
        "state/aggregate/_quarantine/sluice-events/shardId-000000000001/00000000000000000002.json",
    );
    assert_eq!(std::fs::read(aside).unwrap(), b"{\"last_sequence\": tru");
    // The next generation follows the lost one's number and continues from generation 1.
    let third: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            store
                .root()
                .join(format!("{STATE_DIR}/00000000000000000003.json")),
        )
        .unwrap(),
    )
    .unwrap();
    let last = batches[2].records.last().unwrap();
    assert_eq!(
        third["last_sequence"].as_str(),
        Some(last.kinesis.sequence_number.as_str())
    );
}

#[tokio::test]
async fn a_state_written_by_a_newer_release_is_refused_not_reset() {
    let store = Arc::new(FaultyStore::default());
    let deps = deps(store.clone());
    let batches = split(&generated_batch(4), 2);
    handle(&payload(&batches[0]), &deps).await.unwrap();
    let path = store
        .root()
        .join(format!("{STATE_DIR}/00000000000000000001.json"));
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    state["format"] = 99.into();
    std::fs::write(&path, serde_json::to_vec(&state).unwrap()).unwrap();
    let err = handle(&payload(&batches[1]), &deps).await.unwrap_err();
    assert!(!err.is_retryable());
    let message = err.to_string();
    assert!(
        message.contains("newer release") && message.contains("format 99"),
        "{message}"
    );
    assert_eq!(generations(store.root()), ["00000000000000000001.json"]);
}

/// One Kafka record of topic `trades`, partition 0, at `offset`, as Lambda's MSK event holds it.
fn msk_event(offset: i64) -> Vec<u8> {
    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode(
        br#"{"scenario":"trades","event_id":"m1","event_time":"2026-11-24T05:00:00Z","symbol":"AAPL","side":"BUY","price":1.0,"quantity":1,"trade_type":"LIMIT"}"#,
    );
    format!(
        r#"{{"eventSource":"aws:kafka","eventSourceArn":"arn:aws:kafka:us-east-1:123456789012:cluster/c/uuid-1","records":{{"trades-0":[{{"topic":"trades","partition":0,"offset":{offset},"timestamp":1795496400000,"timestampType":"LOG_APPEND_TIME","key":null,"value":"{value}","headers":[]}}]}}}}"#
    )
    .into_bytes()
}

#[tokio::test]
async fn a_failed_kafka_partition_fails_the_invocation_unless_partial_batches_are_read() {
    let store = Arc::new(FaultyStore::default());
    store.arm(Some(0), Failure::Before);
    let plain = deps(store.clone());
    assert!(
        handle(&msk_event(15), &plain).await.is_err(),
        "without provisioned pollers Lambda reads no partial batch response"
    );

    let settings = Settings {
        kafka_partial_batch: true,
        ..Settings::default()
    };
    let partial = Deps::new(store.clone(), settings, Arc::new(Metrics::default()));
    store.arm(Some(0), Failure::Before);
    let response = handle(&msk_event(16), &partial).await.unwrap();
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": {"partition": "trades-0", "offset": 16}}]})
    );
    let retried = handle(&msk_event(16), &partial).await.unwrap();
    assert!(retried.batch_item_failures.is_empty(), "the retry commits");
}
