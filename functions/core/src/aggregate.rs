//! The aggregate function's pure core: the decoder, the window engine and the detectors of a
//! set of stream definitions, with one snapshot.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::detect::{
    Anomaly, DetectConfig, DetectorBank, DetectorKind, DetectorState, Keys, SeriesDef, SeriesNames,
    Transform,
};
use crate::stream::{Decoder, Detect, DetectScope, Record, StreamDef, StreamSet};
use crate::window::metrics::{Samples, samples, sketch_flags};
use crate::window::{
    ClosedWindow, Discarded, EngineConfig, MetricShape, Placement, RollupShape, StreamWindows,
    WindowEngine, WindowSpec, WindowState,
};

/// Default allowed lateness for streams whose definition sets none (`--lateness`).
pub const DEFAULT_ALLOWED_LATENESS_MS: i64 = 5_000;

/// A configuration that cannot run.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("allowed lateness must not be negative")]
    NegativeLateness,
    #[error("window {window}: {reason}")]
    Window {
        window: String,
        reason: &'static str,
    },
}

/// What the aggregate function computes: the stream definitions, plus windows added to every
/// stream and the default lateness, resolved into engine and detector configurations.
#[derive(Debug, Clone)]
pub struct AggregateConfig {
    decoder: Decoder,
    pub engine: EngineConfig,
    pub detect: DetectConfig,
    /// Detector series whose last window ended longer ago than this (in event time, behind
    /// the stream's watermark) are evicted; default [`DEFAULT_SERIES_TTL_MS`].
    pub series_ttl_ms: i64,
}

/// Default of [`AggregateConfig::series_ttl_ms`]: one day.
pub const DEFAULT_SERIES_TTL_MS: i64 = 24 * 3_600_000;

impl AggregateConfig {
    /// `extra_windows` are added to every stream that does not already declare them;
    /// `default_lateness_ms` applies to streams whose definition sets no `allowed_lateness`.
    pub fn new(
        streams: StreamSet,
        extra_windows: &[WindowSpec],
        default_lateness_ms: i64,
    ) -> Result<Self, ConfigError> {
        if default_lateness_ms < 0 {
            return Err(ConfigError::NegativeLateness);
        }
        for w in extra_windows {
            w.validate().map_err(|reason| ConfigError::Window {
                window: w.name(),
                reason,
            })?;
        }
        let mut engine = EngineConfig {
            streams: Vec::new(),
        };
        let mut detect = DetectConfig {
            series: Vec::new(),
            detectors: vec![DetectorKind::DEFAULT],
        };
        for (s, def) in streams.streams().iter().enumerate() {
            let mut windows = def.windows.clone();
            for w in extra_windows {
                if !windows.contains(w) {
                    windows.push(*w);
                }
            }
            engine
                .streams
                .push(stream_windows(def, windows.clone(), default_lateness_ms));
            for (m, metric) in def.metrics.iter().enumerate() {
                let transform = match metric.detect {
                    Detect::None => continue,
                    Detect::Level => Transform::Level,
                    Detect::Returns => Transform::Return,
                };
                let Some(window_index) = metric
                    .detect_window
                    .and_then(|w| windows.iter().position(|x| *x == w))
                else {
                    continue;
                };
                detect.series.push(SeriesDef {
                    stream: s,
                    metric: m,
                    window_index,
                    reduce: metric.detect_on,
                    transform,
                    keys: match metric.detect_scope {
                        DetectScope::Keys => Keys::Keys,
                        DetectScope::Rollups => Keys::Rollups,
                        DetectScope::All => Keys::All,
                    },
                });
            }
        }
        Ok(Self {
            decoder: Decoder::new(streams),
            engine,
            detect,
            series_ttl_ms: DEFAULT_SERIES_TTL_MS,
        })
    }

    /// Accepts event times from `from_ms` on (see [`Decoder::with_accepted_from`]).
    pub fn with_accepted_from(mut self, from_ms: i64) -> Self {
        self.decoder = self.decoder.with_accepted_from(from_ms);
        self
    }

    /// The shipped definitions with the default lateness.
    pub fn builtin() -> Self {
        Self::new(StreamSet::builtin(), &[], DEFAULT_ALLOWED_LATENESS_MS)
            .expect("the shipped definitions make a valid configuration")
    }

    pub fn streams(&self) -> &StreamSet {
        self.decoder.streams()
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// A stable fingerprint of what shapes the state (windows, metrics, lateness, detectors),
    /// so state built under another configuration is not misread.
    pub fn fingerprint(&self) -> String {
        use md5::{Digest, Md5};
        let json = serde_json::to_vec(&(&self.engine, &self.detect)).unwrap_or_default();
        Md5::digest(json)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn stream_windows(
    def: &StreamDef,
    windows: Vec<WindowSpec>,
    default_lateness_ms: i64,
) -> StreamWindows {
    StreamWindows {
        name: def.name.clone(),
        windows,
        metrics: def
            .metrics
            .iter()
            .map(|m| MetricShape {
                name: m.name.clone(),
                weighted: m.weight.is_some(),
                rollup_only: m.rollup_only,
            })
            .collect(),
        rollups: def
            .rollups
            .iter()
            .map(|r| RollupShape {
                name: r.name.clone(),
                metrics: r.metrics.clone(),
            })
            .collect(),
        allowed_lateness_ms: def.allowed_lateness_ms.unwrap_or(default_lateness_ms),
        max_clock_skew_ms: def.max_clock_skew_ms,
    }
}

/// Everything the aggregate function carries from one invocation to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AggregatorState {
    pub windows: WindowState,
    pub detectors: DetectorState,
}

/// What a restore could not keep.
#[derive(Debug, Default, PartialEq)]
pub struct Restored {
    pub windows_discarded: Vec<Discarded>,
    /// Detector series whose baselines were learnt from other input (another window, aggregate
    /// or detector) and restart.
    pub baselines_discarded: usize,
}

/// What closed during one call.
#[derive(Debug, Default)]
pub struct Output {
    pub windows: Vec<ClosedWindow>,
    pub anomalies: Vec<Anomaly>,
}

pub struct Aggregator<'c> {
    config: &'c AggregateConfig,
    engine: WindowEngine,
    detectors: DetectorBank,
    samples: Samples,
    /// Per stream, [`sketch_flags`] of its metrics.
    sketch_flags: Vec<Vec<u8>>,
}

impl<'c> Aggregator<'c> {
    pub fn new(config: &'c AggregateConfig) -> Self {
        Self::restore(config, AggregatorState::default())
    }

    pub fn restore(config: &'c AggregateConfig, state: AggregatorState) -> Self {
        Self::restore_noting(config, state).0
    }

    /// Restores what of `state` the configuration still computes the same way (see
    /// [`WindowEngine::restore_noting`] and [`DetectorBank::restore`]) and says what it
    /// discarded.
    pub fn restore_noting(config: &'c AggregateConfig, state: AggregatorState) -> (Self, Restored) {
        let names = config
            .engine
            .streams
            .iter()
            .map(|s| SeriesNames {
                stream: s.name.clone(),
                metrics: s.metrics.iter().map(|m| m.name.clone()).collect(),
                windows: s.windows.iter().map(|w| w.name()).collect(),
                rollups: s.rollups.iter().map(|r| r.name.clone()).collect(),
            })
            .collect();
        let (detectors, baselines_discarded) =
            DetectorBank::restore(config.detect.clone(), names, state.detectors);
        let (engine, windows_discarded) =
            WindowEngine::restore_noting(config.engine.clone(), state.windows);
        let aggregator = Self {
            config,
            detectors,
            engine,
            samples: Vec::new(),
            sketch_flags: config
                .streams()
                .streams()
                .iter()
                .map(sketch_flags)
                .collect(),
        };
        let restored = Restored {
            windows_discarded,
            baselines_discarded,
        };
        (aggregator, restored)
    }

    pub fn snapshot(&self) -> AggregatorState {
        AggregatorState {
            windows: self.engine.snapshot(),
            detectors: self.detectors.snapshot(),
        }
    }

    /// Places one decoded record, which arrived at `arrival_ms` when known, in its windows (or
    /// reports it late).
    pub fn push(&mut self, record: &Record, arrival_ms: Option<i64>) -> Placement {
        let def = &self.config.streams().streams()[record.stream];
        samples(
            def,
            &self.sketch_flags[record.stream],
            record,
            &mut self.samples,
        );
        let key = record.key(def);
        self.engine.push(
            record.stream,
            &key,
            record.event_time_ms,
            arrival_ms,
            &self.samples,
        )
    }

    /// Closes what the watermark has passed and runs the detectors on it.
    pub fn advance(&mut self, out: &mut Output) {
        let from = out.windows.len();
        self.engine.advance(&mut out.windows);
        self.detectors
            .observe(&out.windows[from..], &mut out.anomalies);
    }

    /// A sweep at wall-clock `now_ms`: moves the watermark of streams idle for longer than
    /// `idle_timeout_ms` (see [`WindowEngine::advance_idle`]), then closes and detects what it
    /// passed. Returns how many streams it moved.
    pub fn advance_idle(&mut self, now_ms: i64, idle_timeout_ms: i64, out: &mut Output) -> usize {
        let moved = self.engine.advance_idle(now_ms, idle_timeout_ms);
        if moved > 0 {
            self.advance(out);
        }
        moved
    }

    /// Evicts detector series idle for longer than the configured time (see
    /// [`DetectorBank::evict_idle`]); returns how many.
    pub fn evict_idle_series(&mut self) -> usize {
        let watermarks: Vec<Option<i64>> = (0..self.config.engine.streams.len())
            .map(|s| self.engine.watermark_ms(s))
            .collect();
        self.detectors
            .evict_idle(&watermarks, self.config.series_ttl_ms)
    }

    /// Latest arrival of any stream's events (ms), when known.
    pub fn last_arrival_ms(&self) -> Option<i64> {
        self.engine.last_arrival_ms()
    }

    /// End of data: closes every open window.
    pub fn flush(&mut self, out: &mut Output) {
        let from = out.windows.len();
        self.engine.flush(&mut out.windows);
        self.detectors
            .observe(&out.windows[from..], &mut out.anomalies);
    }

    pub fn watermark_ms(&self, stream: usize) -> Option<i64> {
        self.engine.watermark_ms(stream)
    }
}
