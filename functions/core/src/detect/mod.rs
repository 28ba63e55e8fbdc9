//! Streaming anomaly detectors, one instance per (scenario, key, metric) series.
//!
//! # Layout
//! - [`calibrated`]: the default: spikes, dips, level shifts, bursts and breaks of the daily
//!   pattern, combined into one score calibrated to each series' own history.
//! - [`spike_dip`]: robust distance from the recent median (spikes and dips).
//! - [`change_point`]: two-sided CUSUM (level shifts).
//! - [`zscore`]: exponentially weighted z-score.
//! - [`windowed_gaussian`]: NAB's baseline, shipped to compare against.
//! - [`DetectorBank`]: feeds closed windows into per-series detectors and keeps their state.
//!
//! Every detector sees one point at a time, in order, and never looks ahead. Every score is in
//! [0, 1] on one scale: 0.5 is the detector's own threshold and the score approaches 1 as the
//! evidence grows (`r²/(1+r²)` for a ratio `r` of statistic to threshold). A point is flagged
//! when its score reaches 0.5, so the rule "anomaly score ≥ X" means the same for every detector.

pub mod calibrated;
pub mod change_point;
pub mod spike_dip;
pub mod windowed_gaussian;
pub mod zscore;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::Scenario;
use crate::window::{ClosedWindow, ROLLUP_KEY, WindowSpec};

pub use calibrated::Calibrated;
pub use change_point::ChangePoint;
pub use spike_dip::SpikeDip;
pub use windowed_gaussian::WindowedGaussian;
pub use zscore::ZScore;

/// Score at which a point is flagged.
pub const FLAG_SCORE: f64 = 0.5;

/// Maps statistic / threshold onto [0, 1]; 1.0 → 0.5.
pub fn score_from_ratio(ratio: f64) -> f64 {
    if !ratio.is_finite() {
        return if ratio.is_nan() { 0.0 } else { 1.0 };
    }
    // r²/(1+r²): 0.5 at the threshold, and strictly increasing all the way up, so even extreme
    // points stay ordered (an exponential squash rounds to 1.0 past ~7× and ties them).
    let r2 = ratio * ratio;
    r2 / (1.0 + r2)
}

/// Smallest spread a detector divides by: a constant series must not make every later change
/// infinitely surprising, nor a zero baseline divide by zero.
pub fn spread_floor(level: f64) -> f64 {
    // 1% of the level: quantised, mostly flat series (a CPU gauge stuck at 0.13) would otherwise
    // make every last-digit change look like a many-sigma event.
    (level.abs() * 1e-2).max(1e-9)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Spike,
    Dip,
    LevelUp,
    LevelDown,
}

impl Direction {
    /// Spike for a deviation above the baseline (or on it), dip below.
    pub fn of_deviation(deviation: f64) -> Self {
        if deviation >= 0.0 {
            Direction::Spike
        } else {
            Direction::Dip
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Spike => "spike",
            Direction::Dip => "dip",
            Direction::LevelUp => "level_up",
            Direction::LevelDown => "level_down",
        }
    }
}

/// One detector's opinion of one point, with what it compared the point to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub score: f64,
    pub direction: Direction,
    pub value: f64,
    pub baseline: f64,
    pub spread: f64,
}

impl Verdict {
    pub fn quiet(value: f64, baseline: f64, spread: f64) -> Self {
        Self {
            score: 0.0,
            direction: Direction::Spike,
            value,
            baseline,
            spread,
        }
    }

    pub fn flagged(&self) -> bool {
        self.score >= FLAG_SCORE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Calibrated,
    SpikeDip,
    ChangePoint,
    Zscore,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 4] = [
        DetectorKind::Calibrated,
        DetectorKind::SpikeDip,
        DetectorKind::ChangePoint,
        DetectorKind::Zscore,
    ];
    /// What the aggregate function runs unless configured otherwise, and what `sluice detect`
    /// calls `default`.
    pub const DEFAULT: DetectorKind = DetectorKind::Calibrated;

    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Calibrated => "calibrated",
            DetectorKind::SpikeDip => "spike_dip",
            DetectorKind::ChangePoint => "change_point",
            DetectorKind::Zscore => "zscore",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// A fresh detector with the shipped parameters (not tuned per series).
    pub fn build(self) -> Detector {
        match self {
            DetectorKind::Calibrated => Detector::Calibrated(Box::default()),
            DetectorKind::SpikeDip => Detector::SpikeDip(SpikeDip::new(60, 6.0, 12)),
            DetectorKind::ChangePoint => Detector::ChangePoint(ChangePoint::new(60, 0.75, 8.0, 12)),
            DetectorKind::Zscore => Detector::Zscore(ZScore::new(30, 5.0, 12)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Detector {
    /// Boxed: its state is a few hundred bytes, the others' a few dozen.
    Calibrated(Box<Calibrated>),
    SpikeDip(SpikeDip),
    ChangePoint(ChangePoint),
    Zscore(ZScore),
}

impl Detector {
    pub fn kind(&self) -> DetectorKind {
        match self {
            Detector::Calibrated(_) => DetectorKind::Calibrated,
            Detector::SpikeDip(_) => DetectorKind::SpikeDip,
            Detector::ChangePoint(_) => DetectorKind::ChangePoint,
            Detector::Zscore(_) => DetectorKind::Zscore,
        }
    }

    /// Scores the point at `t_ms` (UTC ms; the window start in the pipeline). Only the default
    /// detector uses the time, for its daily profile.
    pub fn update(&mut self, t_ms: i64, value: f64) -> Verdict {
        match self {
            Detector::Calibrated(d) => d.update(t_ms, value),
            Detector::SpikeDip(d) => d.update(value),
            Detector::ChangePoint(d) => d.update(value),
            Detector::Zscore(d) => d.update(value),
        }
    }
}

/// What `sluice detect` can run on a plain `timestamp,value` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesDetector {
    Single(DetectorKind),
    /// NAB's windowed Gaussian baseline (6,400 points), for comparison.
    WindowedGaussian,
}

impl SeriesDetector {
    pub const ALL: [SeriesDetector; 5] = [
        SeriesDetector::Single(DetectorKind::Calibrated),
        SeriesDetector::Single(DetectorKind::SpikeDip),
        SeriesDetector::Single(DetectorKind::ChangePoint),
        SeriesDetector::Single(DetectorKind::Zscore),
        SeriesDetector::WindowedGaussian,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SeriesDetector::Single(k) => k.as_str(),
            SeriesDetector::WindowedGaussian => "windowed_gaussian",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "default" => Some(SeriesDetector::Single(DetectorKind::DEFAULT)),
            "windowed_gaussian" => Some(SeriesDetector::WindowedGaussian),
            other => DetectorKind::parse(other).map(SeriesDetector::Single),
        }
    }
}

/// What fired on a point: the default detector names the kind of evidence that dominated
/// (`spike`, `burst`, `level_shift`; `daily_spike` and `daily_pattern_break` when the series was
/// judged against its daily profile); the others their own name.
pub type Fired = &'static str;

/// Scores a series one point at a time, in order, with no look-ahead: each point's verdict and
/// what produced it.
pub fn score_series(
    detector: SeriesDetector,
    timestamps: &[i64],
    values: &[f64],
) -> Vec<(Verdict, Fired)> {
    let points = timestamps.iter().zip(values);
    match detector {
        SeriesDetector::Single(DetectorKind::Calibrated) => {
            let mut d = Calibrated::default();
            points
                .map(|(&t, &x)| {
                    let verdict = d.update(t, x);
                    (verdict, d.evidence().strongest())
                })
                .collect()
        }
        SeriesDetector::Single(kind) => {
            let mut d = kind.build();
            points
                .map(|(&t, &x)| (d.update(t, x), kind.as_str()))
                .collect()
        }
        SeriesDetector::WindowedGaussian => {
            let mut d = WindowedGaussian::new(6400);
            points
                .map(|(_, &x)| (d.update(x), "windowed_gaussian"))
                .collect()
        }
    }
}

/// Which aggregate of a window becomes the detector's point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduce {
    Last,
    Avg,
    Sum,
    Max,
    Count,
}

impl Reduce {
    fn apply(self, w: &ClosedWindow) -> f64 {
        let a = &w.aggregates;
        match self {
            Reduce::Last => a.last,
            Reduce::Avg => a.avg,
            Reduce::Sum => a.sum,
            Reduce::Max => a.max,
            Reduce::Count => a.count as f64,
        }
    }
}

/// What the detectors see of the reduced value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The value itself (CPU, error counts, volumes).
    #[default]
    Level,
    /// Relative change from the series' previous point: for prices, whose level is a random walk
    /// that a level detector would flag all day long.
    Return,
}

/// Which keys of a scenario get detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keys {
    All,
    /// Only the scenario-wide `*` key (for sparse keys such as individual shoppers).
    RollupOnly,
}

/// One detected series: a metric of a scenario reduced to one number per detection window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDef {
    pub scenario: Scenario,
    pub metric: String,
    pub reduce: Reduce,
    #[serde(default)]
    pub transform: Transform,
    pub keys: Keys,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectConfig {
    /// The window whose closed rows feed the detectors (must be one of the engine's windows).
    pub window: WindowSpec,
    pub series: Vec<SeriesDef>,
    pub detectors: Vec<DetectorKind>,
}

impl DetectConfig {
    pub fn default_series() -> Self {
        use Scenario::*;
        let s = |scenario, metric: &str, reduce, keys| SeriesDef {
            scenario,
            metric: metric.to_string(),
            reduce,
            transform: Transform::Level,
            keys,
        };
        DetectConfig {
            window: WindowSpec::Tumbling { size_ms: 10_000 },
            series: vec![
                SeriesDef {
                    transform: Transform::Return,
                    ..s(Trades, "price", Reduce::Last, Keys::All)
                },
                s(Trades, "quantity", Reduce::Sum, Keys::All),
                s(Telemetry, "cpu_pct", Reduce::Avg, Keys::All),
                s(Telemetry, "error_count", Reduce::Sum, Keys::All),
                s(Telemetry, "latency_ms", Reduce::Avg, Keys::All),
                s(
                    Clickstream,
                    "purchase_amount",
                    Reduce::Sum,
                    Keys::RollupOnly,
                ),
            ],
            detectors: vec![DetectorKind::DEFAULT],
        }
    }
}

/// A flagged point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub scenario: Scenario,
    pub key: String,
    pub metric: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub detector: DetectorKind,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeriesEntry {
    scenario: Scenario,
    key: String,
    metric: String,
    points: u64,
    /// The previous reduced value (for [`Transform::Return`]).
    #[serde(default)]
    previous: Option<f64>,
    detectors: Vec<Detector>,
}

/// Serializable detector state: every series' detectors, sorted for stable bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    series: Vec<SeriesEntry>,
}

/// Detectors for every (scenario, key, metric) series the config names.
pub struct DetectorBank {
    config: DetectConfig,
    window_index: Option<usize>,
    series: HashMap<(Scenario, String, String), SeriesEntry>,
}

impl DetectorBank {
    /// `windows` is the engine's list of window specs, to find the detection window's index.
    pub fn restore(config: DetectConfig, windows: &[WindowSpec], state: DetectorState) -> Self {
        let window_index = windows.iter().position(|w| *w == config.window);
        let series = state
            .series
            .into_iter()
            .map(|e| ((e.scenario, e.key.clone(), e.metric.clone()), e))
            .collect();
        Self {
            config,
            window_index,
            series,
        }
    }

    /// The window whose rows feed the detectors.
    pub fn window(&self) -> WindowSpec {
        self.config.window
    }

    pub fn snapshot(&self) -> DetectorState {
        let mut series: Vec<SeriesEntry> = self.series.values().cloned().collect();
        series
            .sort_by(|a, b| (a.scenario, &a.key, &a.metric).cmp(&(b.scenario, &b.key, &b.metric)));
        DetectorState { series }
    }

    /// Feeds the detection window's rows (in the end-time order the engine closes them) and
    /// appends what was flagged.
    pub fn observe(&mut self, closed: &[ClosedWindow], out: &mut Vec<Anomaly>) {
        let Some(index) = self.window_index else {
            return;
        };
        for w in closed.iter().filter(|w| w.window_index == index) {
            let Some(def) = self.config.series.iter().find(|s| {
                s.scenario == w.scenario
                    && s.metric == w.metric
                    && (s.keys == Keys::All || w.key == ROLLUP_KEY)
            }) else {
                continue;
            };
            let reduced = def.reduce.apply(w);
            let detectors = &self.config.detectors;
            let entry = self
                .series
                .entry((w.scenario, w.key.clone(), w.metric.to_string()))
                .or_insert_with(|| SeriesEntry {
                    scenario: w.scenario,
                    key: w.key.clone(),
                    metric: w.metric.to_string(),
                    points: 0,
                    previous: None,
                    detectors: detectors.iter().map(|k| k.build()).collect(),
                });
            let value = match def.transform {
                Transform::Level => reduced,
                Transform::Return => {
                    let previous = entry.previous.replace(reduced);
                    match previous {
                        Some(p) if p != 0.0 => reduced / p - 1.0,
                        // The first point of a return series has nothing to compare with.
                        _ => continue,
                    }
                }
            };
            entry.points += 1;
            for d in &mut entry.detectors {
                let verdict = d.update(w.start_ms, value);
                if verdict.flagged() {
                    out.push(Anomaly {
                        scenario: w.scenario,
                        key: w.key.clone(),
                        metric: w.metric.to_string(),
                        window_start_ms: w.start_ms,
                        window_end_ms: w.end_ms,
                        detector: d.kind(),
                        verdict,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn noisy(n: usize, level: f64, seed: u64) -> Vec<f64> {
        let mut r = Rng::new(seed);
        (0..n).map(|_| level + r.normal()).collect()
    }

    /// Points one minute apart.
    fn first_flag(kind: DetectorKind, series: &[f64]) -> Option<usize> {
        let mut d = kind.build();
        (0..)
            .zip(series)
            .position(|(i, &x)| d.update(i * 60_000, x).flagged())
    }

    #[test]
    fn score_scale() {
        assert_eq!(score_from_ratio(0.0), 0.0);
        assert!((score_from_ratio(1.0) - 0.5).abs() < 1e-12);
        assert!((score_from_ratio(3.0) - 0.9).abs() < 1e-12);
        assert!(
            score_from_ratio(100.0) < score_from_ratio(1000.0),
            "no saturation"
        );
        assert_eq!(score_from_ratio(f64::INFINITY), 1.0);
    }

    #[test]
    fn quiet_noise_is_not_flagged_and_a_spike_is() {
        let mut series = noisy(300, 100.0, 3);
        for kind in DetectorKind::ALL {
            assert_eq!(first_flag(kind, &series), None, "{kind:?} on noise");
        }
        series[200] += 30.0;
        assert_eq!(first_flag(DetectorKind::SpikeDip, &series), Some(200));
        assert_eq!(first_flag(DetectorKind::Zscore, &series), Some(200));
    }

    #[test]
    fn change_point_finds_a_level_shift_soon_after_it() {
        let mut series = noisy(200, 100.0, 5);
        for x in &mut series[120..] {
            *x += 3.0;
        }
        let at = first_flag(DetectorKind::ChangePoint, &series).expect("shift found");
        assert!((120..135).contains(&at), "found at {at}");
    }

    #[test]
    fn constant_series_then_a_change_does_not_break() {
        let mut series = vec![5.0; 100];
        series.extend([5.0, 9.0, 5.0]);
        for kind in DetectorKind::ALL {
            let mut d = kind.build();
            let verdicts: Vec<Verdict> = (0..)
                .zip(&series)
                .map(|(i, &x)| d.update(i * 60_000, x))
                .collect();
            assert!(
                verdicts
                    .iter()
                    .all(|v| v.score.is_finite() && (0.0..=1.0).contains(&v.score))
            );
            assert!(verdicts[..100].iter().all(|v| !v.flagged()), "{kind:?}");
        }
    }
}
