//! Generator throughput: events per second of wall time for each scenario, including the JSON
//! encoding the generate function sends to the stream.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice_core::event::Scenario;
use sluice_core::generate::{Generator, GeneratorConfig};

const EVENTS: u64 = 100_000;

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(20);
    for scenario in Scenario::ALL {
        // 10,000 events/s of event time: 100k events are 10 s of one producer's output.
        let config = GeneratorConfig::new(scenario, 42, 10_000.0, 1_795_496_400_000);
        group.bench_function(format!("{}/events", scenario.as_str()), |b| {
            b.iter(|| {
                let mut generator = Generator::new(config.clone());
                let (mut events, mut truth) = (Vec::with_capacity(EVENTS as usize), Vec::new());
                generator.generate_until(config.start_ms + 10_000, &mut events, &mut truth);
                events
            })
        });
        group.bench_function(format!("{}/events+json", scenario.as_str()), |b| {
            b.iter(|| {
                let mut generator = Generator::new(config.clone());
                let (mut events, mut truth) = (Vec::with_capacity(EVENTS as usize), Vec::new());
                generator.generate_until(config.start_ms + 10_000, &mut events, &mut truth);
                events.iter().map(|e| e.to_json().len()).sum::<usize>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
