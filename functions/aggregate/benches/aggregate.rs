//! The aggregate handler's work on a realistic batch: 10,000 trade records as Lambda delivers
//! them (base64 JSON in a Kinesis event), from the payload's bytes to Parquet bytes ready to
//! upload, windows and detectors on; and how it scales with batch size and key count. The
//! window-heavy batch is the performance issue's: 7,500 trades over 5 symbols and 30 minutes of
//! event time, a full Lambda batch in which many windows close; the many-key batch closes 14
//! times more window rows.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sluice_aggregate::payload::kinesis_payload;
use sluice_aggregate::{InRecord, KinesisBatch, Settings, process_shard};
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};
use sluice_infra::sink::LogRecord;

/// `records` trades at `rate` per second of event time, spread over `keys` keys if given, as a
/// payload.
fn payload(records: usize, rate: f64, keys: Option<usize>) -> Vec<u8> {
    let start = 1_795_496_400_000;
    let mut generator = Generator::new(GeneratorConfig::new(Scenario::Trades, 42, rate, start));
    let (mut events, mut truth) = (Vec::new(), Vec::new());
    let until = generator.generate_count(records, &mut events, &mut truth);
    let records: Vec<LogRecord> = events
        .iter_mut()
        .enumerate()
        .map(|(i, e)| {
            if let Some(keys) = keys {
                e.key = format!("key-{:04}", i % keys);
            }
            LogRecord {
                shard: 0,
                sequence: 1_000_000 + i as u64,
                arrival_ms: until,
                partition_key: e.key.clone(),
                data: e.to_json(),
            }
        })
        .collect();
    kinesis_payload("arn:aws:kinesis:eu-west-1:1:stream/sluice-events", &records)
}

fn run(settings: &Settings, bytes: &[u8]) -> usize {
    let batch = KinesisBatch::parse(bytes).expect("payload parses");
    let records: Vec<InRecord<'_>> = batch.records().map(|(_, _, r)| r).collect();
    let processed = process_shard(&settings.aggregate, None, "shardId-000000000000", &records)
        .expect("processed");
    processed.objects.iter().map(|(_, b)| b.len()).sum()
}

fn aggregate(c: &mut Criterion) {
    let settings = Settings::default();
    let mut group = c.benchmark_group("aggregate");
    group.sample_size(20);
    for records in [1_000, 10_000, 100_000] {
        let bytes = payload(records, 1_000.0, None);
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(BenchmarkId::new("trades", records), &bytes, |b, bytes| {
            b.iter(|| run(&settings, bytes))
        });
    }
    // The envelope alone: Kinesis JSON to records with their data base64-decoded.
    let bytes = payload(10_000, 1_000.0, None);
    group.throughput(Throughput::Elements(10_000));
    group.bench_with_input(BenchmarkId::new("envelope", 10_000), &bytes, |b, bytes| {
        b.iter(|| KinesisBatch::parse(bytes).expect("payload parses").len())
    });
    for keys in [5, 500] {
        let bytes = payload(10_000, 1_000.0, Some(keys));
        group.throughput(Throughput::Elements(10_000));
        group.bench_with_input(
            BenchmarkId::new("trades_10k_keys", keys),
            &bytes,
            |b, bytes| b.iter(|| run(&settings, bytes)),
        );
    }
    // (name, records, events per second of event time, keys): many keys over 8 minutes, where
    // closing and writing windows dominates (33,502 window rows close; the slowest case per
    // event in `bash bench/scaling.sh`), and the window-heavy Lambda batch.
    let shaped = [
        ("trades_500_keys_8_minutes", 10_000, 10_000.0 / 480.0, 500),
        ("trades_window_heavy", 7_500, 7_500.0 / 1_800.0, 5),
    ];
    for (name, records, rate, keys) in shaped {
        let bytes = payload(records, rate, Some(keys));
        group.throughput(Throughput::Elements(records as u64));
        group.bench_with_input(BenchmarkId::new(name, records), &bytes, |b, bytes| {
            b.iter(|| run(&settings, bytes))
        });
    }
    group.finish();
}

criterion_group!(benches, aggregate);
criterion_main!(benches);
