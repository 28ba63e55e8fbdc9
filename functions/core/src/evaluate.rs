//! How well the detectors find the anomalies the generators planted.
//!
//! A planted anomaly counts as found when a flag for its key (or a stream-wide rollup)
//! falls on a window overlapping the anomaly, allowing one detection window of delay. A flag is
//! a true positive when it overlaps some planted anomaly that way. Flags are counted once per
//! (key, window), however many metrics or detectors raised them.

use std::collections::BTreeSet;

use crate::aggregate::{AggregateConfig, Aggregator, Output};
use crate::detect::{Anomaly, DetectorKind};
use crate::event::Scenario;
use crate::generate::{Generator, GeneratorConfig, PlantedAnomaly};
use crate::window::Scope;

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub planted: usize,
    pub found: usize,
    pub flags: usize,
    pub true_flags: usize,
}

impl Score {
    pub fn precision(&self) -> f64 {
        if self.flags == 0 {
            0.0
        } else {
            self.true_flags as f64 / self.flags as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.planted == 0 {
            0.0
        } else {
            self.found as f64 / self.planted as f64
        }
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn overlaps(a: &Anomaly, truth: &PlantedAnomaly, grace_ms: i64) -> bool {
    (a.key == truth.key || a.scope == Scope::Rollup)
        && a.window_start_ms < truth.end_ms + grace_ms
        && a.window_end_ms > truth.start_ms
}

/// Scores `anomalies` (optionally only one detector's) against `truth`, both of one scenario's
/// run ([`run_scenario`]).
pub fn score(
    truth: &[PlantedAnomaly],
    anomalies: &[Anomaly],
    detector: Option<DetectorKind>,
    grace_ms: i64,
) -> Score {
    let chosen: Vec<&Anomaly> = anomalies
        .iter()
        .filter(|a| detector.is_none_or(|d| a.detector == d))
        .collect();
    let flags: BTreeSet<(usize, Scope, &str, i64)> = chosen
        .iter()
        .map(|a| (a.stream, a.scope, a.key.as_str(), a.window_end_ms))
        .collect();
    let true_flags: BTreeSet<(usize, Scope, &str, i64)> = chosen
        .iter()
        .filter(|a| truth.iter().any(|t| overlaps(a, t, grace_ms)))
        .map(|a| (a.stream, a.scope, a.key.as_str(), a.window_end_ms))
        .collect();
    let found = truth
        .iter()
        .filter(|t| chosen.iter().any(|a| overlaps(a, t, grace_ms)))
        .count();
    Score {
        planted: truth.len(),
        found,
        flags: flags.len(),
        true_flags: true_flags.len(),
    }
}

/// Generates `minutes` of a scenario and runs it through the aggregator in one-second batches,
/// as the pipeline would (each event encoded and decoded by its stream definition, which
/// `config` must hold). Returns the ground truth and every flag raised.
pub fn run_scenario(
    scenario: Scenario,
    seed: u64,
    rate_per_s: f64,
    start_ms: i64,
    minutes: i64,
    config: &AggregateConfig,
) -> (Vec<PlantedAnomaly>, Vec<Anomaly>) {
    let mut generator = Generator::new(GeneratorConfig::new(scenario, seed, rate_per_s, start_ms));
    let mut aggregator = Aggregator::new(config);
    let (mut truth, mut out) = (Vec::new(), Output::default());
    let mut events = Vec::new();
    let end = start_ms + minutes * 60_000;
    let mut t = start_ms;
    while t < end {
        t += 1_000;
        events.clear();
        generator.generate_until(t, &mut events, &mut truth);
        for e in &events {
            // Events the definitions refuse are not the detectors' concern here.
            if let Ok(record) = config.decoder().decode(&e.to_json(), None) {
                aggregator.push(&record, None);
            }
        }
        aggregator.advance(&mut out);
        out.windows.clear();
    }
    aggregator.flush(&mut out);
    (truth, out.anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detectors_find_planted_trade_anomalies() {
        let mut config = AggregateConfig::builtin();
        config.detect.detectors = DetectorKind::ALL.to_vec();
        let (truth, anomalies) =
            run_scenario(Scenario::Trades, 1, 10.0, 1_795_000_000_000, 720, &config);
        // Twelve hours: incidents come about every two hours.
        let s = score(&truth, &anomalies, None, 10_000);
        assert!(s.planted >= 4, "{s:?}");
        assert!(s.recall() >= 0.5, "{s:?}");
        // Every detector together flags the market's own jumps too; the default is precise.
        let default = score(&truth, &anomalies, Some(DetectorKind::Calibrated), 10_000);
        assert!(default.precision() > 0.1, "{default:?}");
    }

    #[test]
    fn scoring_counts_overlap_and_key() {
        use crate::detect::{Direction, Verdict};
        use crate::generate::AnomalyKind;
        let truth = vec![PlantedAnomaly {
            scenario: Scenario::Trades,
            key: "TSLA".into(),
            kind: AnomalyKind::PriceSpike,
            start_ms: 100_000,
            end_ms: 130_000,
            magnitude: 0.1,
        }];
        let flag = |key: &str, end: i64| Anomaly {
            stream: 0,
            key: key.into(),
            scope: Scope::Key,
            metric: 0,
            window_index: 0,
            window_start_ms: end - 10_000,
            window_end_ms: end,
            detector: DetectorKind::SpikeDip,
            verdict: Verdict {
                score: 0.9,
                direction: Direction::Spike,
                value: 1.0,
                baseline: 1.0,
                spread: 1.0,
            },
        };
        let flags = vec![
            flag("TSLA", 110_000),
            flag("TSLA", 120_000),
            flag("AAPL", 110_000),
            flag("TSLA", 500_000),
        ];
        let s = score(&truth, &flags, None, 10_000);
        assert_eq!(
            s,
            Score {
                planted: 1,
                found: 1,
                flags: 4,
                true_flags: 2
            }
        );
        assert_eq!(
            score(&truth, &flags, Some(DetectorKind::Zscore), 10_000).found,
            0
        );
    }
}
