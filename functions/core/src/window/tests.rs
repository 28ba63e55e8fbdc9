//! Property tests of the engine against a brute-force reference, and split invariance across
//! snapshot/restore.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::metrics::Sample;
use super::*;

/// A trade, as the engine sees it: price (weighted by quantity) and quantity, metrics 0 and 1.
#[derive(Debug, Clone)]
struct Event {
    key: String,
    event_time_ms: i64,
    price: f64,
    quantity: i64,
}

fn push(engine: &mut WindowEngine, e: &Event) -> Placement {
    let samples = [
        Some(Sample::new(e.price, e.quantity as f64)),
        Some(Sample::new(e.quantity as f64, 1.0)),
    ];
    engine.push(0, &e.key, e.event_time_ms, None, &samples)
}

const BASE: i64 = 1_795_000_000_000;

fn trade(key: &str, t: i64, price: f64, id: usize) -> Event {
    Event {
        event_time_ms: t,
        key: key.to_string(),
        price,
        quantity: 1 + (id as i64 % 7),
    }
}

/// Arrival-ordered events: mostly increasing time with jitter, some far behind (late).
fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (
            0usize..3,
            0i64..4_000,
            prop::bool::weighted(0.1),
            0i64..20_000,
            1.0f64..500.0,
        ),
        1..150,
    )
    .prop_map(|steps| {
        let mut t = BASE;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (k, gap, back, back_by, price))| {
                t += gap;
                let at = if back { t - back_by } else { t };
                trade(["A", "B", "C"][k], at, (price * 100.0).round() / 100.0, i)
            })
            .collect()
    })
}

fn config(spec: WindowSpec, lateness: i64) -> EngineConfig {
    EngineConfig {
        streams: vec![StreamWindows {
            name: "trades".into(),
            windows: vec![spec],
            metrics: vec![
                MetricShape {
                    name: "price".into(),
                    weighted: true,
                    rollup_only: false,
                },
                MetricShape {
                    name: "quantity".into(),
                    weighted: false,
                    rollup_only: false,
                },
            ],
            rollups: vec![],
            allowed_lateness_ms: lateness,
            max_clock_skew_ms: 30_000,
        }],
    }
}

fn arb_spec() -> impl Strategy<Value = WindowSpec> {
    prop_oneof![
        (1i64..20).prop_map(|s| WindowSpec::Tumbling { size_ms: s * 1000 }),
        (1i64..10, 1i64..5).prop_map(|(h, f)| WindowSpec::Hopping {
            size_ms: h * f * 1000,
            hop_ms: h * 1000
        }),
        (1i64..20).prop_map(|s| WindowSpec::Sliding { size_ms: s * 1000 }),
        (1i64..15).prop_map(|g| WindowSpec::Session {
            gap_ms: g * 1000,
            max_ms: i64::MAX / 8
        }),
    ]
}

/// (key, start, end) → (count, min, max, first, last) of `price`, from first principles.
type Expected = BTreeMap<(String, i64, i64), (i64, f64, f64, f64, f64)>;
/// (event time, arrival index, price) of one event.
type Item = (i64, usize, f64);

fn reference(events: &[Event], spec: WindowSpec, lateness: i64) -> Expected {
    // Late = older than (max seen so far - lateness) when it arrived.
    let mut max_seen: Option<i64> = None;
    let mut kept: Vec<(usize, &Event)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let late = max_seen.is_some_and(|m| e.event_time_ms < m - lateness);
        if !late {
            max_seen = Some(max_seen.map_or(e.event_time_ms, |m| m.max(e.event_time_ms)));
            kept.push((i, e));
        }
    }
    let price = |e: &Event| e.price;
    let mut groups: BTreeMap<(String, i64, i64), Vec<Item>> = BTreeMap::new();
    let mut by_key: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    for (i, e) in &kept {
        by_key
            .entry(&e.key)
            .or_default()
            .push((e.event_time_ms, *i, price(e)));
    }
    for (key, mut items) in by_key {
        items.sort_by_key(|x| (x.0, x.1));
        match spec {
            WindowSpec::Tumbling { size_ms } | WindowSpec::Hopping { size_ms, .. } => {
                let hop = match spec {
                    WindowSpec::Hopping { hop_ms, .. } => hop_ms,
                    _ => size_ms,
                };
                for it in &items {
                    // Every aligned start s with s <= t < s + size, by brute force.
                    let mut s = (it.0 - size_ms).div_euclid(hop) * hop;
                    while s <= it.0 {
                        if it.0 < s + size_ms {
                            groups
                                .entry((key.to_string(), s, s + size_ms))
                                .or_default()
                                .push(*it);
                        }
                        s += hop;
                    }
                }
            }
            WindowSpec::Sliding { size_ms } => {
                for it in &items {
                    let t = it.0;
                    let members: Vec<_> = items
                        .iter()
                        .filter(|x| x.0 > t - size_ms && x.0 <= t)
                        .copied()
                        .collect();
                    groups.insert((key.to_string(), t - size_ms, t), members);
                }
            }
            WindowSpec::Session { gap_ms, .. } => {
                let mut current: Vec<Item> = Vec::new();
                for it in &items {
                    if let Some(last) = current.last()
                        && it.0 - last.0 >= gap_ms
                    {
                        let (first, last) = (current[0].0, current[current.len() - 1].0);
                        groups.insert(
                            (key.to_string(), first, last + gap_ms),
                            std::mem::take(&mut current),
                        );
                    }
                    current.push(*it);
                }
                if !current.is_empty() {
                    let (first, last) = (current[0].0, current[current.len() - 1].0);
                    groups.insert((key.to_string(), first, last + gap_ms), current);
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(k, mut items)| {
            items.sort_by_key(|x| (x.0, x.1));
            let min = items.iter().map(|x| x.2).fold(f64::INFINITY, f64::min);
            let max = items.iter().map(|x| x.2).fold(f64::NEG_INFINITY, f64::max);
            (
                k,
                (
                    items.len() as i64,
                    min,
                    max,
                    items[0].2,
                    items[items.len() - 1].2,
                ),
            )
        })
        .collect()
}

fn run_engine(events: &[Event], cfg: &EngineConfig, split: usize) -> (Vec<ClosedWindow>, usize) {
    let mut engine = WindowEngine::new(cfg.clone());
    let mut out = Vec::new();
    let mut late = 0;
    for (i, e) in events.iter().enumerate() {
        if i == split {
            engine.advance(&mut out);
            let json = serde_json::to_string(&engine.snapshot()).unwrap();
            engine = WindowEngine::restore(cfg.clone(), serde_json::from_str(&json).unwrap());
        }
        if push(&mut engine, e) != Placement::Assigned {
            late += 1;
        }
        if i % 17 == 0 {
            engine.advance(&mut out);
        }
    }
    engine.flush(&mut out);
    (out, late)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn engine_matches_brute_force(events in arb_events(), spec in arb_spec(), lateness in 0i64..10_000) {
        let cfg = config(spec, lateness);
        let (closed, _) = run_engine(&events, &cfg, usize::MAX);
        let got: Expected = closed
            .iter()
            .filter(|w| w.metric == 0)
            .map(|w| {
                let a = &w.aggregates;
                ((w.key.clone(), w.start_ms, w.end_ms), (a.count, a.min, a.max, a.first, a.last))
            })
            .collect();
        prop_assert_eq!(got.len(), closed.iter().filter(|w| w.metric == 0).count(), "a window was emitted twice");
        prop_assert_eq!(got, reference(&events, spec, lateness));
    }

    #[test]
    fn closed_windows_come_out_in_end_key_window_metric_order(events in arb_events(), spec in arb_spec(), lateness in 0i64..10_000) {
        let cfg = config(spec, lateness);
        let mut engine = WindowEngine::new(cfg);
        for e in &events {
            push(&mut engine, e);
        }
        let mut out = Vec::new();
        engine.flush(&mut out);
        let order: Vec<_> = out
            .iter()
            .map(|w| (w.end_ms, w.stream, w.scope, w.key.clone(), w.window_index, w.start_ms, w.metric))
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(order, sorted);
    }

    #[test]
    fn snapshot_restore_anywhere_changes_nothing(events in arb_events(), spec in arb_spec(), lateness in 0i64..10_000, split in 0usize..150) {
        let cfg = config(spec, lateness);
        let (whole, late_whole) = run_engine(&events, &cfg, usize::MAX);
        let (parts, late_parts) = run_engine(&events, &cfg, split);
        prop_assert_eq!(late_whole, late_parts);
        prop_assert_eq!(whole, parts);
    }
}

#[test]
fn late_events_are_reported_not_merged() {
    let cfg = config(WindowSpec::Tumbling { size_ms: 10_000 }, 1_000);
    let mut engine = WindowEngine::new(cfg);
    assert_eq!(
        push(&mut engine, &trade("A", BASE + 20_000, 1.0, 0)),
        Placement::Assigned
    );
    assert_eq!(
        push(&mut engine, &trade("A", BASE + 5_000, 2.0, 1)),
        Placement::Late {
            watermark_ms: BASE + 19_000
        }
    );
    let mut out = Vec::new();
    engine.flush(&mut out);
    assert_eq!(out.iter().filter(|w| w.metric == 0).count(), 1);
    assert_eq!(out[0].aggregates.count, 1);
}

#[test]
fn windows_close_only_when_the_watermark_passes_their_end() {
    let cfg = config(WindowSpec::Tumbling { size_ms: 10_000 }, 2_000);
    let mut engine = WindowEngine::new(cfg);
    let mut out = Vec::new();
    push(&mut engine, &trade("A", BASE + 1_000, 1.0, 0));
    push(&mut engine, &trade("A", BASE + 11_000, 1.0, 1));
    engine.advance(&mut out);
    assert!(
        out.is_empty(),
        "watermark {:?} is before the first window's end",
        engine.watermark_ms(0)
    );
    push(&mut engine, &trade("A", BASE + 12_000, 1.0, 2));
    engine.advance(&mut out);
    assert_eq!(out.len(), 2, "price and quantity of [BASE, BASE+10s)");
    assert_eq!((out[0].start_ms, out[0].end_ms), (BASE, BASE + 10_000));
}
