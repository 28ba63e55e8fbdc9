//! Rule evaluation over a windows file: the shipped rules on every row of one hour of trade
//! windows, as the alert function runs them on each new object.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_alert::load_rules;
use sluice_core::aggregate::{AggregateConfig, Aggregator, Output};
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};
use sluice_core::lake;
use sluice_core::rules::Source;

fn evaluate(c: &mut Criterion) {
    let start = 1_795_496_400_000;
    let mut generator = Generator::new(GeneratorConfig::new(Scenario::Trades, 42, 200.0, start));
    let config = AggregateConfig::builtin();
    let mut aggregator = Aggregator::new(&config);
    let (mut events, mut truth, mut out) = (Vec::new(), Vec::new(), Output::default());
    generator.generate_until(start + 3_600_000, &mut events, &mut truth);
    for e in &events {
        let record = config
            .decoder()
            .decode(&e.to_json(), None)
            .expect("a valid trade");
        aggregator.push(&record, None);
    }
    aggregator.flush(&mut out);
    let rows: Vec<_> = out.windows.iter().collect();
    let batch = lake::windows_batch(
        &rows,
        config.streams().streams(),
        &config.engine,
        "shardId-000000000000",
    )
    .expect("windows batch");
    // Read back from Parquet, as the alert function gets it.
    let batches =
        lake::decode_parquet(lake::encode_parquet(&batch).expect("encode")).expect("decode");
    let rules = load_rules(None, config.streams()).expect("default rules");
    let mut group = c.benchmark_group("alert");
    group.throughput(Throughput::Elements(batch.num_rows() as u64));
    eprintln!(
        "{} window rows in {} record batches",
        batch.num_rows(),
        batches.len()
    );
    group.sample_size(20);
    group.bench_function("evaluate_windows_hour", |b| {
        b.iter(|| {
            batches
                .iter()
                .map(|batch| {
                    rules
                        .evaluate(batch, "trades", Source::Windows, "bench")
                        .0
                        .len()
                })
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
