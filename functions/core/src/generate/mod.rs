//! Seeded synthetic event streams with planted, labelled anomalies.
//!
//! A [`Generator`] is a state machine in event time: `generate_until(t)` emits every event up
//! to `t` and the anomalies it planted on the way, then stops. Its whole state serializes, so
//! the generate function can continue a stream across invocations, and the same seed always
//! produces the same events, byte for byte.
//!
//! Ground truth ([`PlantedAnomaly`]) is returned beside the events, never inside them: the
//! detectors must not be able to see it.
//!
//! Arrivals are a Poisson process at `rate_per_s`. A small share of events arrive out of order
//! (1% up to 2 s behind, 0.02% minutes behind) so the watermark and the `late` output are
//! exercised by every run, as they are by real producers.

mod clickstream;
mod telemetry;
mod trades;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Scenario};
use crate::rng::Rng;
use crate::time::{MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND};

pub use clickstream::ClickstreamModel;
pub use telemetry::TelemetryModel;
pub use trades::TradesModel;

/// What a planted anomaly does to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Trades: price jumps up by `magnitude` (fraction) and reverts at the end.
    PriceSpike,
    /// Trades: price drops by `magnitude` (fraction) and reverts at the end.
    PriceCrash,
    /// Trades: quantities multiplied by `magnitude`.
    VolumeBurst,
    /// Telemetry: CPU pinned near `magnitude` percent.
    CpuSpike,
    /// Telemetry: errors arrive at `magnitude` per sample, latency triples.
    ErrorStorm,
    /// Clickstream: one user makes about `magnitude` expensive purchases.
    FraudBurst,
}

impl AnomalyKind {
    pub fn for_scenario(scenario: Scenario) -> &'static [AnomalyKind] {
        match scenario {
            Scenario::Trades => &[
                AnomalyKind::PriceSpike,
                AnomalyKind::PriceCrash,
                AnomalyKind::VolumeBurst,
            ],
            Scenario::Telemetry => &[AnomalyKind::CpuSpike, AnomalyKind::ErrorStorm],
            Scenario::Clickstream => &[AnomalyKind::FraudBurst],
        }
    }
}

/// Ground truth: an anomaly the generator put into the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlantedAnomaly {
    pub scenario: Scenario,
    pub key: String,
    pub kind: AnomalyKind,
    /// First event time affected (inclusive), UTC ms.
    pub start_ms: i64,
    /// Last event time affected (exclusive), UTC ms.
    pub end_ms: i64,
    pub magnitude: f64,
}

/// How a stream is shaped. Everything else follows from the seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    pub scenario: Scenario,
    pub seed: u64,
    /// Mean events per second of event time, across all keys.
    pub rate_per_s: f64,
    /// Event time of the first event, UTC ms.
    pub start_ms: i64,
    /// Event time before which nothing is planted, so detectors have a baseline to learn (ten
    /// minutes: sixty 10-second windows, the history the default detector needs before it can
    /// call anything rare).
    pub warmup_ms: i64,
    /// Mean gap between planted anomalies.
    pub mean_anomaly_gap_ms: i64,
}

/// Mean gap between planted incidents: two hours, a few a day per stream, as real incidents come.
/// (Every five minutes, as planted before, a stream's incidents were its normal: the default
/// detector's rarity gate learnt to ignore them.) The first comes right after the warm-up, so a
/// short demo still shows one per stream.
pub const MEAN_INCIDENT_GAP_MS: i64 = 2 * MS_PER_HOUR;

impl GeneratorConfig {
    /// This configuration with its planting changed where given: the warm-up before the first
    /// incident and the mean gap between incidents, in ms (tests and fixtures that need several
    /// incidents in a few minutes of event time ask for them).
    pub fn with_planting(self, warmup_ms: Option<i64>, mean_gap_ms: Option<i64>) -> Self {
        Self {
            warmup_ms: warmup_ms.unwrap_or(self.warmup_ms),
            mean_anomaly_gap_ms: mean_gap_ms.unwrap_or(self.mean_anomaly_gap_ms),
            ..self
        }
    }

    pub fn new(scenario: Scenario, seed: u64, rate_per_s: f64, start_ms: i64) -> Self {
        Self {
            scenario,
            seed,
            rate_per_s,
            start_ms,
            warmup_ms: 10 * MS_PER_MINUTE,
            mean_anomaly_gap_ms: MEAN_INCIDENT_GAP_MS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Model {
    Trades(TradesModel),
    Telemetry(TelemetryModel),
    Clickstream(ClickstreamModel),
}

/// The scenario models share this shape; `Model` dispatches to them.
pub(crate) trait ScenarioModel {
    fn next_event(&mut self, t_ms: i64, event_id: String, rng: &mut Rng) -> Event;
    fn plant(
        &mut self,
        kind: AnomalyKind,
        t_ms: i64,
        rate_per_s: f64,
        rng: &mut Rng,
    ) -> PlantedAnomaly;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    config: GeneratorConfig,
    /// Event time of the next event, kept fractional so high rates do not drift.
    next_ms: f64,
    next_plant_ms: i64,
    emitted: u64,
    rng: Rng,
    model: Model,
}

/// Share of events delivered slightly out of order, and how far.
const JITTER_SHARE: f64 = 0.01;
const JITTER_MAX_MS: f64 = 2_000.0;
/// Share of events delivered minutes late: beyond any sensible allowed lateness.
const STRAGGLER_SHARE: f64 = 0.0002;

impl Generator {
    pub fn new(config: GeneratorConfig) -> Self {
        let mut rng = Rng::derive(config.seed, config.scenario.as_str());
        let model = match config.scenario {
            Scenario::Trades => Model::Trades(TradesModel::new(config.seed, &mut rng)),
            Scenario::Telemetry => Model::Telemetry(TelemetryModel::new(config.seed, &mut rng)),
            Scenario::Clickstream => {
                Model::Clickstream(ClickstreamModel::new(config.seed, &mut rng))
            }
        };
        Self {
            next_ms: config.start_ms as f64,
            next_plant_ms: config.start_ms + config.warmup_ms,
            emitted: 0,
            rng,
            model,
            config,
        }
    }

    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Event time the next call continues from.
    pub fn clock_ms(&self) -> i64 {
        self.next_ms as i64
    }

    pub fn events_emitted(&self) -> u64 {
        self.emitted
    }

    /// Exactly `count` events (and what was planted among them), generated a second of event
    /// time at a time; returns the event time reached. For benchmarks and fixed-size batches.
    pub fn generate_count(
        &mut self,
        count: usize,
        out: &mut Vec<Event>,
        truth: &mut Vec<PlantedAnomaly>,
    ) -> i64 {
        let target = out.len() + count;
        let mut until = self.next_ms as i64;
        while out.len() < target {
            until += MS_PER_SECOND;
            self.generate_until(until, out, truth);
        }
        out.truncate(target);
        until
    }

    /// Appends every event with event time before `end_ms` (before any out-of-order shift) to
    /// `out`, and every anomaly planted among them to `truth`.
    pub fn generate_until(
        &mut self,
        end_ms: i64,
        out: &mut Vec<Event>,
        truth: &mut Vec<PlantedAnomaly>,
    ) {
        let mean_gap_ms = MS_PER_SECOND as f64 / self.config.rate_per_s.max(1e-9);
        let prefix = match self.config.scenario {
            Scenario::Trades => "t",
            Scenario::Telemetry => "m",
            Scenario::Clickstream => "c",
        };
        while (self.next_ms as i64) < end_ms {
            let t = self.next_ms as i64;
            self.next_ms += self.rng.exponential(mean_gap_ms);
            if t >= self.next_plant_ms {
                let kinds = AnomalyKind::for_scenario(self.config.scenario);
                let kind = kinds[self.rng.below(kinds.len())];
                let rate = self.config.rate_per_s;
                let planted = match &mut self.model {
                    Model::Trades(m) => m.plant(kind, t, rate, &mut self.rng),
                    Model::Telemetry(m) => m.plant(kind, t, rate, &mut self.rng),
                    Model::Clickstream(m) => m.plant(kind, t, rate, &mut self.rng),
                };
                let gap = self
                    .rng
                    .exponential(self.config.mean_anomaly_gap_ms as f64)
                    .max(2.0 * MS_PER_MINUTE as f64);
                self.next_plant_ms = planted.end_ms + gap as i64;
                truth.push(planted);
            }
            let id = format!("{prefix}-{:x}-{}", self.config.seed, self.emitted);
            self.emitted += 1;
            let mut event = match &mut self.model {
                Model::Trades(m) => m.next_event(t, id, &mut self.rng),
                Model::Telemetry(m) => m.next_event(t, id, &mut self.rng),
                Model::Clickstream(m) => m.next_event(t, id, &mut self.rng),
            };
            let u = self.rng.uniform();
            if u < STRAGGLER_SHARE {
                event.event_time_ms -= self.rng.range(60_000.0, 180_000.0) as i64;
            } else if u < STRAGGLER_SHARE + JITTER_SHARE {
                event.event_time_ms -= self.rng.range(0.0, JITTER_MAX_MS) as i64;
            }
            out.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Payload;
    use crate::stream::{Decoder, StreamSet};

    const START: i64 = 1_795_000_000_000;

    /// `minutes` of `scenario`, with incidents planted every few minutes after six (not every
    /// two hours after ten) so that a short run has several.
    fn run(scenario: Scenario, minutes: i64) -> (Vec<Event>, Vec<PlantedAnomaly>) {
        let mut g = Generator::new(dense(scenario, 7, 50.0));
        let (mut events, mut truth) = (Vec::new(), Vec::new());
        g.generate_until(START + minutes * MS_PER_MINUTE, &mut events, &mut truth);
        (events, truth)
    }

    #[test]
    fn same_seed_same_stream_split_or_not() {
        for scenario in Scenario::ALL {
            let (whole, whole_truth) = run(scenario, 20);
            let mut g = Generator::new(dense(scenario, 7, 50.0));
            let (mut parts, mut truth) = (Vec::new(), Vec::new());
            g.generate_until(START + 7 * MS_PER_MINUTE, &mut parts, &mut truth);
            let mut g: Generator =
                serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
            g.generate_until(START + 20 * MS_PER_MINUTE, &mut parts, &mut truth);
            assert_eq!(whole, parts, "{scenario}");
            assert_eq!(whole_truth, truth, "{scenario}");
        }
    }

    fn dense(scenario: Scenario, seed: u64, rate: f64) -> GeneratorConfig {
        GeneratorConfig::new(scenario, seed, rate, START)
            .with_planting(Some(6 * MS_PER_MINUTE), Some(5 * MS_PER_MINUTE))
    }

    #[test]
    fn incidents_are_hours_apart_by_default_and_the_first_follows_the_warm_up() {
        let mut g = Generator::new(GeneratorConfig::new(Scenario::Telemetry, 3, 5.0, START));
        let (mut events, mut truth) = (Vec::new(), Vec::new());
        g.generate_until(START + 48 * MS_PER_HOUR, &mut events, &mut truth);
        let per_day = truth.len() as f64 / 2.0;
        assert!(
            (4.0..=24.0).contains(&per_day),
            "{per_day} incidents a day: {truth:?}"
        );
        let first = truth[0].start_ms - START;
        assert!(
            (10 * MS_PER_MINUTE..11 * MS_PER_MINUTE).contains(&first),
            "first at {first} ms"
        );
    }

    #[test]
    fn every_event_passes_its_own_decoder_and_anomalies_are_planted() {
        let decoder = Decoder::new(StreamSet::builtin());
        for scenario in Scenario::ALL {
            let (events, truth) = run(scenario, 30);
            assert!(events.len() > 30 * 60 * 40, "{scenario}: {}", events.len());
            for e in &events {
                let r = decoder.decode(&e.to_json(), None).expect("a valid event");
                let def = &decoder.streams().streams()[r.stream];
                assert_eq!(
                    (def.name.as_str(), r.event_time_ms),
                    (scenario.as_str(), e.event_time_ms)
                );
            }
            assert!(truth.len() >= 2, "{scenario}: {truth:?}");
            assert!(
                truth
                    .iter()
                    .all(|a| a.scenario == scenario && a.start_ms >= START + 6 * MS_PER_MINUTE)
            );
            let ids: std::collections::HashSet<_> = events.iter().map(|e| &e.event_id).collect();
            assert_eq!(ids.len(), events.len());
        }
    }

    #[test]
    fn planted_price_shock_is_visible_in_the_prices() {
        let mut g = Generator::new(dense(Scenario::Trades, 11, 100.0));
        let (mut events, mut truth) = (Vec::new(), Vec::new());
        g.generate_until(START + 60 * MS_PER_MINUTE, &mut events, &mut truth);
        let shock = truth
            .iter()
            .find(|a| matches!(a.kind, AnomalyKind::PriceSpike | AnomalyKind::PriceCrash))
            .expect("a price anomaly in an hour");
        let prices = |lo: i64, hi: i64| -> Vec<f64> {
            events
                .iter()
                .filter(|e| e.key == shock.key && (lo..hi).contains(&e.event_time_ms))
                .map(|e| match &e.payload {
                    Payload::Trade(t) => t.price,
                    _ => unreachable!(),
                })
                .collect()
        };
        let before = prices(shock.start_ms - 10_000, shock.start_ms);
        let during = prices(shock.start_ms + 3_000, shock.end_ms);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let change = mean(&during) / mean(&before) - 1.0;
        assert!(
            change.abs() > shock.magnitude * 0.5,
            "change {change} for {shock:?}"
        );
        assert_eq!(change > 0.0, shock.kind == AnomalyKind::PriceSpike);
    }
}
