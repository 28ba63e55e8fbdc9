//! Streaming anomaly detectors, one instance per (stream, key, metric) series.
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
pub mod period;
pub mod spike_dip;
pub mod windowed_gaussian;
pub mod zscore;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::stream::Aggregate;
use crate::window::{ClosedWindow, Scope};

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
/// (`spike`, `burst`, `level_shift`; `cycle_spike` and `cycle_break` when the series was judged
/// against its cycle's profile); the others their own name.
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
            Calibrated::run(calibrated::Params::default(), timestamps, values).0
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

/// Which aggregate of a window becomes the detector's point; `None` when the window lacks it
/// (a standard deviation of one value).
fn reduce(on: Aggregate, w: &ClosedWindow) -> Option<f64> {
    let a = &w.aggregates;
    match on {
        Aggregate::Count => Some(a.count as f64),
        Aggregate::Sum => Some(a.sum),
        Aggregate::Min => Some(a.min),
        Aggregate::Max => Some(a.max),
        Aggregate::Avg => Some(a.avg),
        Aggregate::Stddev => a.stddev,
        Aggregate::First => Some(a.first),
        Aggregate::Last => Some(a.last),
        // Sketch-based aggregates are not detector inputs yet.
        _ => None,
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

/// One detected series kind: a metric of a stream reduced to one number per window of one
/// window definition, for its keys, its rollups or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesDef {
    /// Index of the stream (as in [`crate::window::EngineConfig::streams`]).
    pub stream: usize,
    /// Index of the metric in the stream's metrics.
    pub metric: usize,
    /// Index of the window in the stream's windows.
    pub window_index: usize,
    #[serde(with = "aggregate_name")]
    pub reduce: Aggregate,
    #[serde(default)]
    pub transform: Transform,
    pub keys: Keys,
}

impl SeriesDef {
    /// What the detectors of this series are fed, as text: a detector's state is only reused
    /// for the same input.
    fn shape(&self, names: &SeriesNames, detectors: &[DetectorKind]) -> String {
        let kinds: Vec<&str> = detectors.iter().map(|d| d.as_str()).collect();
        format!(
            "{}:{}:{:?}:{}",
            names
                .windows
                .get(self.window_index)
                .map_or("?", String::as_str),
            self.reduce.as_str(),
            self.transform,
            kinds.join("+")
        )
    }
}

/// The names a stream's detector state is kept under.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesNames {
    pub stream: String,
    pub metrics: Vec<String>,
    pub windows: Vec<String>,
    pub rollups: Vec<String>,
}

mod aggregate_name {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use crate::stream::Aggregate;

    pub fn serialize<S: Serializer>(a: &Aggregate, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(a.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Aggregate, D::Error> {
        let text = String::deserialize(d)?;
        Aggregate::parse(&text)
            .ok_or_else(|| de::Error::custom(format!("unknown aggregate {text:?}")))
    }
}

/// Which series of a metric get detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keys {
    /// Every key (not rollups).
    Keys,
    /// Only the stream's rollups (for sparse keys such as individual shoppers).
    Rollups,
    All,
}

impl Keys {
    fn admits(self, scope: Scope) -> bool {
        matches!(
            (self, scope),
            (Keys::All, _) | (Keys::Keys, Scope::Key) | (Keys::Rollups, Scope::Rollup)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectConfig {
    pub series: Vec<SeriesDef>,
    pub detectors: Vec<DetectorKind>,
}

/// A flagged point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub stream: usize,
    pub key: String,
    pub scope: Scope,
    pub metric: usize,
    /// Index of the window (in the stream's windows) whose rows form the series.
    pub window_index: usize,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub detector: DetectorKind,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SeriesEntry {
    /// `scenario` in state written before stream definitions.
    #[serde(alias = "scenario")]
    stream: String,
    key: String,
    #[serde(default = "key_scope")]
    scope: Scope,
    metric: String,
    points: u64,
    /// The previous reduced value (for [`Transform::Return`]).
    #[serde(default)]
    previous: Option<f64>,
    detectors: Vec<Detector>,
    /// What the detectors were fed ([`SeriesDef::shape`]): baselines learnt from other input
    /// are not reused. Absent in state written before stream definitions.
    #[serde(default)]
    shape: Option<String>,
    /// End of the last window the series was fed (ms), for evicting idle series. Absent in
    /// state written before eviction: such a series' idle time counts from its next eviction
    /// pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_end_ms: Option<i64>,
}

fn key_scope() -> Scope {
    Scope::Key
}

/// Serializable detector state: every series' detectors, sorted for stable bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectorState {
    series: Vec<SeriesEntry>,
}

/// Detectors for every (stream, scope, key, metric) series the config names.
pub struct DetectorBank {
    config: DetectConfig,
    /// Per stream, the names its state is kept under.
    names: Vec<SeriesNames>,
    series: HashMap<(usize, Scope, String, usize), SeriesEntry>,
}

impl DetectorBank {
    /// `names` gives each stream's name and metric names (the engine's config), so state is
    /// kept by name and survives a reordering.
    /// Restores the series of `state` that `config` still detects the same way (same window,
    /// aggregate, transform and detectors); others restart. Returns the bank and how many
    /// series' baselines were discarded.
    pub fn restore(
        config: DetectConfig,
        names: Vec<SeriesNames>,
        state: DetectorState,
    ) -> (Self, usize) {
        let total = state.series.len();
        let series: HashMap<_, _> = state
            .series
            .into_iter()
            .filter_map(|mut e| {
                let s = names.iter().position(|n| n.stream == e.stream)?;
                let m = names[s].metrics.iter().position(|n| *n == e.metric)?;
                // State from before stream definitions named the rollup `*`.
                if e.scope == Scope::Key && e.key == "*" {
                    e.scope = Scope::Rollup;
                    e.key = names[s].rollups.first()?.clone();
                }
                let def = config
                    .series
                    .iter()
                    .find(|d| d.stream == s && d.metric == m && d.keys.admits(e.scope))?;
                let shape = def.shape(&names[s], &config.detectors);
                if e.shape.as_ref().is_some_and(|old| *old != shape) {
                    return None;
                }
                e.shape = Some(shape);
                Some(((s, e.scope, e.key.clone(), m), e))
            })
            .collect();
        let discarded = total - series.len();
        let bank = Self {
            config,
            names,
            series,
        };
        (bank, discarded)
    }

    /// Drops the series of every stream whose last window ended more than `ttl_ms` before the
    /// stream's watermark (`watermarks[stream]`): a key that stopped trading, a host that was
    /// retired. Its baseline restarts if the key comes back. Returns how many were dropped.
    pub fn evict_idle(&mut self, watermarks: &[Option<i64>], ttl_ms: i64) -> usize {
        let before = self.series.len();
        self.series.retain(|(stream, ..), entry| {
            let Some(w) = watermarks.get(*stream).copied().flatten() else {
                return true;
            };
            let last = *entry.last_end_ms.get_or_insert(w);
            last >= w.saturating_sub(ttl_ms)
        });
        before - self.series.len()
    }

    /// How many series have detectors.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn snapshot(&self) -> DetectorState {
        let mut series: Vec<SeriesEntry> = self.series.values().cloned().collect();
        series.sort_by(|a, b| {
            (&a.stream, a.scope, &a.key, &a.metric).cmp(&(&b.stream, b.scope, &b.key, &b.metric))
        });
        DetectorState { series }
    }

    /// Feeds closed windows (in the end-time order the engine closes them) to the series that
    /// watch them and appends what was flagged.
    pub fn observe(&mut self, closed: &[ClosedWindow], out: &mut Vec<Anomaly>) {
        for w in closed {
            let Some(def) = self.config.series.iter().find(|s| {
                s.stream == w.stream
                    && s.metric == w.metric
                    && s.window_index == w.window_index
                    && s.keys.admits(w.scope)
            }) else {
                continue;
            };
            let Some(reduced) = reduce(def.reduce, w) else {
                continue;
            };
            let detectors = &self.config.detectors;
            let names = &self.names;
            let shape = def.shape(&names[w.stream], detectors);
            let entry = self
                .series
                .entry((w.stream, w.scope, w.key.clone(), w.metric))
                .or_insert_with(|| SeriesEntry {
                    stream: names[w.stream].stream.clone(),
                    key: w.key.clone(),
                    scope: w.scope,
                    metric: names[w.stream].metrics[w.metric].clone(),
                    points: 0,
                    previous: None,
                    detectors: detectors.iter().map(|k| k.build()).collect(),
                    shape: Some(shape),
                    last_end_ms: None,
                });
            entry.last_end_ms = Some(entry.last_end_ms.map_or(w.end_ms, |e| e.max(w.end_ms)));
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
                        stream: w.stream,
                        key: w.key.clone(),
                        scope: w.scope,
                        metric: w.metric,
                        window_index: w.window_index,
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
