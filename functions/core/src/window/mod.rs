//! Event-time windows per key: where windows are computed.
//!
//! # Layout
//! - [`assign`]: pure bin math (epoch-aligned starts, session joins).
//! - [`accumulator`]: mergeable count/sum/min/max/avg/stddev/first/last/weighted-avg.
//! - [`metrics`]: which numbers each scenario contributes to its windows.
//! - [`engine`]: open windows, the watermark, late events, and the serializable state.
//!
//! # Semantics
//! Windows are `[start, end)`, aligned to the Unix epoch and labelled by their end (Azure Stream
//! Analytics uses `(start, end]`; results differ only for events exactly on a boundary). The
//! watermark is the largest event time seen minus the allowed lateness, kept per scenario (each
//! scenario is its own producer). An event older than its scenario's watermark is
//! *late*: it goes to the `late` output and into no window, so every window's
//! content is fixed once the watermark passes its end and never changes afterwards. Sliding
//! windows are the exception to half-open labelling: one is emitted for each distinct event time
//! `t` of a key and covers `(t - size, t]`, ending at (and including) the event that made it.

pub mod accumulator;
pub mod assign;
pub mod engine;
pub mod metrics;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::event::Scenario;
use crate::time::{format_duration_ms, parse_duration_ms};

pub use accumulator::{Accumulator, Aggregates};
pub use engine::{Placement, WindowEngine, WindowState};

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

/// A window definition and the scenarios it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDef {
    pub spec: WindowSpec,
    pub scenarios: Vec<Scenario>,
}

/// What the engine computes. The same config must be used to restore a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    pub windows: Vec<WindowDef>,
    /// How far behind the largest event time seen an event may be and still count.
    pub allowed_lateness_ms: i64,
    /// Scenarios whose events also feed a scenario-wide key `*` (e.g. all users' purchases).
    pub rollup: Vec<Scenario>,
}

/// The key every event of a rolled-up scenario also contributes to, inside one engine.
///
/// An engine sees one shard, so its rollup is that shard's part of the scenario total. The
/// aggregate function labels those rows `*@<shard>` ([`rollup_label`]); summing the partials
/// gives the scenario-wide figure (a cross-shard merge stage would be needed for one row).
pub const ROLLUP_KEY: &str = "*";

/// The key rollup rows carry in the lake: `*@<shard>`.
pub fn rollup_label(shard_id: &str) -> String {
    format!("{ROLLUP_KEY}@{shard_id}")
}

/// Whether a key names a rollup (engine-internal `*` or a lake label `*@<shard>`).
pub fn is_rollup(key: &str) -> bool {
    key.starts_with(ROLLUP_KEY)
}

impl EngineConfig {
    /// Tumbling 10 s (the detectors' input) and 1 min everywhere, hopping 5 min every minute for
    /// trades (moving statistics), 5-minute sessions for clickstream, clickstream rolled up.
    pub fn default_windows() -> Self {
        use Scenario::*;
        let all = vec![Trades, Telemetry, Clickstream];
        EngineConfig {
            windows: vec![
                WindowDef {
                    spec: WindowSpec::Tumbling { size_ms: 10_000 },
                    scenarios: all.clone(),
                },
                WindowDef {
                    spec: WindowSpec::Tumbling { size_ms: 60_000 },
                    scenarios: all,
                },
                WindowDef {
                    spec: WindowSpec::Hopping {
                        size_ms: 300_000,
                        hop_ms: 60_000,
                    },
                    scenarios: vec![Trades],
                },
                WindowDef {
                    spec: WindowSpec::Session {
                        gap_ms: 300_000,
                        max_ms: 4 * 3_600_000,
                    },
                    scenarios: vec![Clickstream],
                },
            ],
            allowed_lateness_ms: 5_000,
            rollup: vec![Clickstream],
        }
    }
}

/// One closed window's aggregates for one metric of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub scenario: Scenario,
    pub key: String,
    /// Index of the window definition in [`EngineConfig::windows`].
    pub window_index: usize,
    pub start_ms: i64,
    pub end_ms: i64,
    pub metric: &'static str,
    pub aggregates: Aggregates,
}
