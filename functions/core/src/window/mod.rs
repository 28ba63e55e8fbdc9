//! Event-time windows per key: where windows are computed.
//!
//! # Layout
//! - [`assign`]: pure bin math (epoch-aligned starts, session joins).
//! - [`accumulator`]: mergeable count/sum/min/max/avg/stddev/first/last/weighted-avg.
//! - [`sketch`]: mergeable percentiles (DDSketch) and distinct counts (HyperLogLog).
//! - [`metrics`]: which numbers an event contributes to its windows (from its definition).
//! - [`engine`]: open windows, the watermark and late events.
//! - [`state`]: the serializable snapshot, per stream and window definition.
//!
//! # Semantics
//! Windows are `[start, end)`, aligned to the Unix epoch and labelled by their end (Azure Stream
//! Analytics uses `(start, end]`; results differ only for events exactly on a boundary). The
//! watermark is the largest event time seen minus the allowed lateness, kept per stream (each
//! stream is its own producer). An event older than its stream's watermark is
//! *late*: it goes to the `late` output and into no window, so every window's
//! content is fixed once the watermark passes its end and never changes afterwards. Sliding
//! windows are the exception to half-open labelling: one is emitted for each distinct event time
//! `t` of a key and covers `(t - size, t]`, ending at (and including) the event that made it.

pub mod accumulator;
pub mod assign;
pub mod engine;
pub mod metrics;
pub mod sketch;
pub mod state;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::{format_duration_ms, parse_duration_ms};

pub use accumulator::{Accumulator, Aggregates};
pub use engine::{Placement, WindowEngine};
pub use state::{Discarded, WindowState};

/// One kind of window and its sizes, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowSpec {
    Tumbling {
        size_ms: i64,
    },
    /// Windows of `size_ms` starting every `hop_ms`; `size_ms` must be a multiple of `hop_ms`.
    Hopping {
        size_ms: i64,
        hop_ms: i64,
    },
    /// One window per distinct event time `t`, covering `(t - size_ms, t]`.
    Sliding {
        size_ms: i64,
    },
    /// Events closer than `gap_ms` share a session, which never spans more than `max_ms`.
    Session {
        gap_ms: i64,
        max_ms: i64,
    },
}

#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error(
        "window spec {0:?} not understood (expected tumbling:1m, hopping:5m/1m, sliding:30s or session:5m[/1h])"
    )]
    Syntax(String),
    #[error("window spec {0:?}: {1}")]
    Invalid(String, &'static str),
}

impl WindowSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            WindowSpec::Tumbling { .. } => "tumbling",
            WindowSpec::Hopping { .. } => "hopping",
            WindowSpec::Sliding { .. } => "sliding",
            WindowSpec::Session { .. } => "session",
        }
    }

    /// The name rows carry in the `window` column, e.g. `tumbling_1m`, `hopping_5m_1m`.
    pub fn name(&self) -> String {
        let d = format_duration_ms;
        match *self {
            WindowSpec::Tumbling { size_ms } => format!("tumbling_{}", d(size_ms)),
            WindowSpec::Hopping { size_ms, hop_ms } => {
                format!("hopping_{}_{}", d(size_ms), d(hop_ms))
            }
            WindowSpec::Sliding { size_ms } => format!("sliding_{}", d(size_ms)),
            WindowSpec::Session { gap_ms, .. } => format!("session_{}", d(gap_ms)),
        }
    }

    /// Parses the command-line form: `tumbling:1m`, `hopping:5m/1m`, `sliding:30s`,
    /// `session:5m` or `session:5m/2h` (gap/max duration; max defaults to 24 × gap).
    pub fn parse(text: &str) -> Result<WindowSpec, SpecError> {
        let syntax = || SpecError::Syntax(text.to_string());
        let (kind, sizes) = text.split_once(':').ok_or_else(syntax)?;
        let mut parts = sizes.split('/');
        let first = parse_duration_ms(parts.next().ok_or_else(syntax)?).map_err(|_| syntax())?;
        let second = parts
            .next()
            .map(parse_duration_ms)
            .transpose()
            .map_err(|_| syntax())?;
        if parts.next().is_some() {
            return Err(syntax());
        }
        let spec = match (kind.trim(), second) {
            ("tumbling", None) => WindowSpec::Tumbling { size_ms: first },
            ("hopping", Some(hop_ms)) => WindowSpec::Hopping {
                size_ms: first,
                hop_ms,
            },
            ("sliding", None) => WindowSpec::Sliding { size_ms: first },
            ("session", max) => WindowSpec::Session {
                gap_ms: first,
                max_ms: max.unwrap_or(first * 24),
            },
            _ => return Err(syntax()),
        };
        spec.validate()
            .map_err(|why| SpecError::Invalid(text.into(), why))?;
        Ok(spec)
    }

    pub fn validate(&self) -> Result<(), &'static str> {
        match *self {
            WindowSpec::Tumbling { size_ms } | WindowSpec::Sliding { size_ms } if size_ms <= 0 => {
                Err("size must be positive")
            }
            WindowSpec::Hopping { size_ms, hop_ms } if hop_ms <= 0 || size_ms < hop_ms => {
                Err("hop must be positive and no larger than the size")
            }
            WindowSpec::Hopping { size_ms, hop_ms } if size_ms % hop_ms != 0 => {
                Err("size must be a multiple of the hop")
            }
            WindowSpec::Session { gap_ms, max_ms } if gap_ms <= 0 || max_ms < gap_ms => {
                Err("gap must be positive and no larger than the max duration")
            }
            _ => Ok(()),
        }
    }
}

/// What the engine computes for one stream: derived from its definition
/// ([`crate::stream::StreamDef`]) plus the command line's extra windows and default lateness.
/// The same config must be used to restore a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamWindows {
    /// The stream's name (its state is kept under it).
    pub name: String,
    pub windows: Vec<WindowSpec>,
    /// Metrics in sample order.
    pub metrics: Vec<MetricShape>,
    pub rollups: Vec<RollupShape>,
    /// How far behind the largest event time seen an event may be and still count.
    pub allowed_lateness_ms: i64,
    /// How far beyond its arrival an event may move the watermark.
    #[serde(default = "default_skew")]
    pub max_clock_skew_ms: i64,
}

fn default_skew() -> i64 {
    crate::stream::DEFAULT_MAX_CLOCK_SKEW_MS
}

/// One metric as the engine sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricShape {
    pub name: String,
    /// Whether its weighted average is meaningful (price weighted by quantity = VWAP).
    pub weighted: bool,
    /// Only rollups see it (a rollup's distinct count of a field).
    #[serde(default)]
    pub rollup_only: bool,
}

/// A stream-wide series fed by every event of the stream, for some of its metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollupShape {
    pub name: String,
    /// Indices into [`StreamWindows::metrics`].
    pub metrics: Vec<usize>,
}

/// What the engine computes, one entry per stream (index = the stream's index in its
/// [`crate::stream::StreamSet`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub streams: Vec<StreamWindows>,
}

/// Whether a window row is one key's or a rollup's (a stream-wide series named after the
/// rollup; rows of a rollup never collide with a user key of the same text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Key,
    Rollup,
}

impl Scope {
    /// The `scope` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Rollup => "rollup",
        }
    }
}

/// One closed window's aggregates for one metric of one key (or rollup).
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    /// Index of the stream in [`EngineConfig::streams`].
    pub stream: usize,
    /// The key, or the rollup's name when `scope` is [`Scope::Rollup`].
    pub key: String,
    pub scope: Scope,
    /// Index of the window in the stream's [`StreamWindows::windows`].
    pub window_index: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Index of the metric in the stream's [`StreamWindows::metrics`].
    pub metric: usize,
    pub aggregates: Aggregates,
}
