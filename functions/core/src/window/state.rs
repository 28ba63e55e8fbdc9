//! The engine's serializable snapshot, organised per stream and per window definition so that a
//! configuration change keeps what did not change: a restored engine takes the state of every
//! (stream, window) it still computes with the same metrics, starts added ones empty, and
//! reports what it had to discard.
//!
//! State written before stream definitions existed (one list of open windows per
//! (scenario, key), aligned with that release's built-in windows) is read too: see
//! [`WindowState::migrate_legacy`].

use serde::{Deserialize, Serialize};

use super::engine::Open;
use super::{EngineConfig, WindowSpec};

/// Serializable engine state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    pub(super) arrivals: u64,
    /// Sorted by name so equal states serialize to equal bytes.
    #[serde(default)]
    pub(super) streams: Vec<StreamState>,
    /// The layout before stream definitions: largest event time per scenario (trades,
    /// telemetry, clickstream).
    #[serde(default, skip_serializing)]
    max_event_time_ms: Option<[Option<i64>; 3]>,
    /// The layout before stream definitions: open windows per (scenario, key).
    #[serde(default, skip_serializing)]
    keys: Option<Vec<LegacyKeyEntry>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct StreamState {
    pub name: String,
    pub max_event_time_ms: Option<i64>,
    /// Latest arrival of the stream's events, for the sweep's idle test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_arrival_ms: Option<i64>,
    /// The watermark a sweep moved forward while the stream was idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_watermark_ms: Option<i64>,
    pub windows: Vec<WindowDefState>,
}

/// The open windows of one window definition of a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct WindowDefState {
    pub spec: WindowSpec,
    /// Metric names the accumulators are aligned with: state built for other metrics is not
    /// reused.
    pub metrics: Vec<String>,
    /// Sorted by key; only keys with open windows.
    pub keys: Vec<KeyOpen>,
    /// By rollup name; only rollups with open windows.
    #[serde(default)]
    pub rollups: Vec<KeyOpen>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct KeyOpen {
    pub key: String,
    pub open: Open,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LegacyKeyEntry {
    scenario: String,
    key: String,
    open: Vec<Open>,
}

/// State a restore could not keep, for the operator to hear about (the events behind it stay in
/// raw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discarded {
    /// The window is no longer computed for the stream.
    WindowRemoved {
        stream: String,
        window: String,
        open_windows: usize,
    },
    /// The window is still computed, but for another list of metrics.
    MetricsChanged {
        stream: String,
        window: String,
        open_windows: usize,
    },
    /// The stream is no longer loaded.
    StreamRemoved { stream: String, open_windows: usize },
}

impl std::fmt::Display for Discarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Discarded::WindowRemoved {
                stream,
                window,
                open_windows,
            } => write!(
                f,
                "stream {stream}: window {window} is no longer configured; {open_windows} open window(s) discarded (their events stay in raw)"
            ),
            Discarded::MetricsChanged {
                stream,
                window,
                open_windows,
            } => write!(
                f,
                "stream {stream}: the metrics changed; {open_windows} open window(s) of {window} restart empty (their events stay in raw)"
            ),
            Discarded::StreamRemoved {
                stream,
                open_windows,
            } => write!(
                f,
                "stream {stream} is no longer loaded; {open_windows} open window(s) discarded (their events stay in raw)"
            ),
        }
    }
}

impl WindowDefState {
    pub fn open_windows(&self) -> usize {
        self.keys.len() + self.rollups.len()
    }
}

/// The built-in windows and metrics of the release before stream definitions, per scenario in
/// its order (trades, telemetry, clickstream): what a legacy key's list of open windows is
/// aligned with. Windows it added with `--window` followed these and cannot be told apart
/// from the state alone; they are discarded.
fn legacy_layout(scenario: &str) -> Option<(Vec<WindowSpec>, Vec<&'static str>)> {
    let t10 = WindowSpec::Tumbling { size_ms: 10_000 };
    let t1m = WindowSpec::Tumbling { size_ms: 60_000 };
    Some(match scenario {
        "trades" => (
            vec![
                t10,
                t1m,
                WindowSpec::Hopping {
                    size_ms: 300_000,
                    hop_ms: 60_000,
                },
            ],
            vec!["price", "quantity"],
        ),
        "telemetry" => (
            vec![t10, t1m],
            vec!["cpu_pct", "mem_pct", "error_count", "latency_ms"],
        ),
        "clickstream" => (
            vec![
                t10,
                t1m,
                WindowSpec::Session {
                    gap_ms: 300_000,
                    max_ms: 4 * 3_600_000,
                },
            ],
            vec!["actions", "purchase_amount"],
        ),
        _ => return None,
    })
}

/// The legacy rollup key, renamed to the stream's first rollup.
const LEGACY_ROLLUP_KEY: &str = "*";

impl WindowState {
    /// (stream, key) of every key with an open window (rollups excluded: every shard holds its
    /// part of those by design).
    pub fn open_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.streams.iter().flat_map(|s| {
            s.windows.iter().flat_map(move |w| {
                w.keys
                    .iter()
                    .map(move |k| (s.name.as_str(), k.key.as_str()))
            })
        })
    }

    pub(super) fn new(arrivals: u64, streams: Vec<StreamState>) -> Self {
        Self {
            arrivals,
            streams,
            ..Self::default()
        }
    }

    /// Rewrites state of the legacy layout into per-stream, per-window entries. The legacy
    /// rollup key `*` becomes the stream's first rollup in `config` (the shipped clickstream
    /// definition's `all`). Returns what could not be placed.
    pub fn migrate_legacy(&mut self, config: &EngineConfig) -> Vec<Discarded> {
        let mut notes = Vec::new();
        let (Some(max), Some(keys)) = (self.max_event_time_ms.take(), self.keys.take()) else {
            return notes;
        };
        let mut streams: Vec<StreamState> = Vec::new();
        for (i, scenario) in ["trades", "telemetry", "clickstream"].iter().enumerate() {
            let Some((specs, metrics)) = legacy_layout(scenario) else {
                continue;
            };
            let rollup = config
                .streams
                .iter()
                .find(|s| s.name == *scenario)
                .and_then(|s| s.rollups.first())
                .map(|r| r.name.clone());
            let mut windows: Vec<WindowDefState> = specs
                .iter()
                .map(|spec| WindowDefState {
                    spec: *spec,
                    metrics: metrics.iter().map(|m| m.to_string()).collect(),
                    keys: Vec::new(),
                    rollups: Vec::new(),
                })
                .collect();
            let mut extra = 0;
            for entry in keys.iter().filter(|e| e.scenario == *scenario) {
                extra += entry.open.len().saturating_sub(specs.len());
                for (w, open) in windows.iter_mut().zip(&entry.open) {
                    if open.is_empty() {
                        continue;
                    }
                    match (&rollup, entry.key == LEGACY_ROLLUP_KEY) {
                        (Some(name), true) => w.rollups.push(KeyOpen {
                            key: name.clone(),
                            open: open.clone(),
                        }),
                        (None, true) => {}
                        (_, false) => w.keys.push(KeyOpen {
                            key: entry.key.clone(),
                            open: open.clone(),
                        }),
                    }
                }
            }
            if extra > 0 {
                notes.push(Discarded::WindowRemoved {
                    stream: scenario.to_string(),
                    window: "(windows added with --window before stream definitions)".into(),
                    open_windows: extra,
                });
            }
            if max[i].is_some() {
                streams.push(StreamState {
                    name: scenario.to_string(),
                    max_event_time_ms: max[i],
                    last_arrival_ms: None,
                    idle_watermark_ms: None,
                    windows,
                });
            }
        }
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        self.streams = streams;
        notes
    }
}
