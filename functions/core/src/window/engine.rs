//! The window engine: open windows per key, the watermark, and the state that survives
//! invocations.
//!
//! Shaped like Vector's aggregate transform and Arroyo's window operators: [`WindowEngine::push`]
//! records one event and says whether it was late, [`WindowEngine::advance`] closes every window
//! the watermark has passed (in end-time order), and [`WindowEngine::snapshot`] /
//! [`WindowEngine::restore`] move the open windows through an object store between Lambda
//! invocations.
//!
//! Tumbling and hopping windows share one mechanism: events go into *panes* one hop wide, and a
//! window is the merge of the `size / hop` panes it spans when it closes. Each event therefore
//! touches one pane per metric whatever the overlap (Flink's "slicing").

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::accumulator::Accumulator;
use super::assign::{bin_start, joins_session};
use super::metrics::{Samples, is_weighted, metric_names, samples};
use super::{ClosedWindow, EngineConfig, ROLLUP_KEY, WindowSpec};
use crate::event::{Event, Scenario};

/// Where an event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Assigned,
    /// Older than the watermark: in no window, reported in the `late` output.
    Late {
        watermark_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pane {
    start_ms: i64,
    accs: Vec<Accumulator>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session {
    first_ms: i64,
    last_ms: i64,
    accs: Vec<Accumulator>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Buffered {
    t_ms: i64,
    ordinal: u64,
    samples: Samples,
}

/// Open windows of one key for one window definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Open {
    /// Tumbling and hopping. Invariant: panes sorted by start; no pane starts before
    /// `next_end_ms - size` (those windows are closed).
    Panes {
        panes: VecDeque<Pane>,
        next_end_ms: Option<i64>,
    },
    /// Invariant: sessions sorted by first event and pairwise more than `gap` apart.
    Sessions { sessions: Vec<Session> },
    /// Invariant: buffer sorted by (time, arrival); holds every event a not-yet-emitted
    /// window can still need.
    Sliding {
        buffer: VecDeque<Buffered>,
        emitted_through_ms: Option<i64>,
    },
}

impl Open {
    fn new(spec: &WindowSpec) -> Self {
        match spec {
            WindowSpec::Tumbling { .. } | WindowSpec::Hopping { .. } => Open::Panes {
                panes: VecDeque::new(),
                next_end_ms: None,
            },
            WindowSpec::Session { .. } => Open::Sessions {
                sessions: Vec::new(),
            },
            WindowSpec::Sliding { .. } => Open::Sliding {
                buffer: VecDeque::new(),
                emitted_through_ms: None,
            },
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Open::Panes { panes, .. } => panes.is_empty(),
            Open::Sessions { sessions } => sessions.is_empty(),
            Open::Sliding { buffer, .. } => buffer.is_empty(),
        }
    }
}

fn add_samples(accs: &mut [Accumulator], t: i64, ordinal: u64, samples: &Samples) {
    for (acc, sample) in accs.iter_mut().zip(samples) {
        if let Some(s) = sample {
            acc.add(t, ordinal, s.value, s.weight);
        }
    }
}

/// Serializable engine state: open windows, the watermark's source and the arrival counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    /// Largest event time seen, per scenario (index = `Scenario as usize`).
    max_event_time_ms: [Option<i64>; 3],
    arrivals: u64,
    /// Sorted by (scenario, key) so equal states serialize to equal bytes.
    keys: Vec<KeyEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyEntry {
    scenario: Scenario,
    key: String,
    open: Vec<Open>,
}

pub struct WindowEngine {
    config: EngineConfig,
    /// Per scenario, the indices of the window definitions that apply to it.
    defs_for: [Vec<usize>; 3],
    /// Per scenario: each is its own producer, so one running ahead must not make another's
    /// events late.
    max_event_time_ms: [Option<i64>; 3],
    arrivals: u64,
    /// Per scenario: key → open windows, aligned with `defs_for`.
    keys: [HashMap<String, Vec<Open>>; 3],
}

fn slot(scenario: Scenario) -> usize {
    scenario as usize
}

impl WindowEngine {
    pub fn new(config: EngineConfig) -> Self {
        Self::restore(config, WindowState::default())
    }

    pub fn restore(config: EngineConfig, state: WindowState) -> Self {
        let mut defs_for: [Vec<usize>; 3] = Default::default();
        for (i, def) in config.windows.iter().enumerate() {
            for s in &def.scenarios {
                defs_for[slot(*s)].push(i);
            }
        }
        let mut keys: [HashMap<String, Vec<Open>>; 3] = Default::default();
        for entry in state.keys {
            keys[slot(entry.scenario)].insert(entry.key, entry.open);
        }
        Self {
            config,
            defs_for,
            max_event_time_ms: state.max_event_time_ms,
            arrivals: state.arrivals,
            keys,
        }
    }

    pub fn snapshot(&self) -> WindowState {
        let mut keys: Vec<KeyEntry> = Scenario::ALL
            .iter()
            .flat_map(|s| {
                self.keys[slot(*s)].iter().map(|(k, open)| KeyEntry {
                    scenario: *s,
                    key: k.clone(),
                    open: open.clone(),
                })
            })
            .collect();
        keys.sort_by(|a, b| (a.scenario, &a.key).cmp(&(b.scenario, &b.key)));
        WindowState {
            max_event_time_ms: self.max_event_time_ms,
            arrivals: self.arrivals,
            keys,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Largest event time seen in `scenario` minus the allowed lateness; `None` before the
    /// scenario's first event.
    pub fn watermark_ms(&self, scenario: Scenario) -> Option<i64> {
        self.max_event_time_ms[slot(scenario)].map(|m| m - self.config.allowed_lateness_ms)
    }

    /// Number of keys with open windows (for state-size reporting).
    pub fn open_keys(&self) -> usize {
        self.keys.iter().map(HashMap::len).sum()
    }

    /// Records one event. The late decision is made here and only here, per event, so it does
    /// not depend on how the stream was cut into batches.
    pub fn push(&mut self, event: &Event) -> Placement {
        let t = event.event_time_ms;
        let scenario = event.scenario();
        if let Some(w) = self.watermark_ms(scenario)
            && t < w
        {
            return Placement::Late { watermark_ms: w };
        }
        let max = &mut self.max_event_time_ms[slot(scenario)];
        *max = Some(max.map_or(t, |m| m.max(t)));
        let ordinal = self.arrivals;
        self.arrivals += 1;
        let samples = samples(event);
        self.add(scenario, &event.key, t, ordinal, &samples);
        if self.config.rollup.contains(&scenario) {
            self.add(scenario, ROLLUP_KEY, t, ordinal, &samples);
        }
        Placement::Assigned
    }

    fn add(&mut self, scenario: Scenario, key: &str, t: i64, ordinal: u64, samples: &Samples) {
        let defs = &self.defs_for[slot(scenario)];
        if defs.is_empty() {
            return;
        }
        let n_metrics = metric_names(scenario).len();
        let map = &mut self.keys[slot(scenario)];
        if !map.contains_key(key) {
            let open = defs
                .iter()
                .map(|&d| Open::new(&self.config.windows[d].spec))
                .collect();
            map.insert(key.to_string(), open);
        }
        let Some(opens) = map.get_mut(key) else {
            return;
        };
        for (open, &d) in opens.iter_mut().zip(defs) {
            match (open, &self.config.windows[d].spec) {
                (
                    Open::Panes { panes, .. },
                    WindowSpec::Tumbling { size_ms: width }
                    | WindowSpec::Hopping { hop_ms: width, .. },
                ) => {
                    let start = bin_start(t, *width);
                    let at = match panes.iter().rposition(|p| p.start_ms <= start) {
                        Some(i) if panes[i].start_ms == start => i,
                        Some(i) => {
                            panes.insert(
                                i + 1,
                                Pane {
                                    start_ms: start,
                                    accs: vec![Accumulator::default(); n_metrics],
                                },
                            );
                            i + 1
                        }
                        None => {
                            panes.push_front(Pane {
                                start_ms: start,
                                accs: vec![Accumulator::default(); n_metrics],
                            });
                            0
                        }
                    };
                    add_samples(&mut panes[at].accs, t, ordinal, samples);
                }
                (Open::Sessions { sessions }, WindowSpec::Session { gap_ms, max_ms }) => {
                    add_to_sessions(sessions, *gap_ms, *max_ms, t, ordinal, samples, n_metrics);
                }
                (Open::Sliding { buffer, .. }, WindowSpec::Sliding { .. }) => {
                    let at = buffer
                        .iter()
                        .rposition(|b| (b.t_ms, b.ordinal) <= (t, ordinal))
                        .map_or(0, |i| i + 1);
                    buffer.insert(
                        at,
                        Buffered {
                            t_ms: t,
                            ordinal,
                            samples: *samples,
                        },
                    );
                }
                // Open states are created from their spec, so the pairs always match.
                _ => {}
            }
        }
    }

    /// Closes every window whose end the watermark has reached, appending them in
    /// (end, scenario, key, window) order.
    pub fn advance(&mut self, out: &mut Vec<ClosedWindow>) {
        let watermarks = Scenario::ALL.map(|s| self.watermark_ms(s));
        self.close_until(watermarks, out);
    }

    /// End of data: a watermark beyond any event time closes everything that is open.
    pub fn flush(&mut self, out: &mut Vec<ClosedWindow>) {
        self.close_until([Some(i64::MAX / 4); 3], out);
    }

    fn close_until(&mut self, watermarks: [Option<i64>; 3], out: &mut Vec<ClosedWindow>) {
        let first_new = out.len();
        for scenario in Scenario::ALL {
            let Some(watermark) = watermarks[slot(scenario)] else {
                continue;
            };
            let defs = &self.defs_for[slot(scenario)];
            let names = metric_names(scenario);
            let map = &mut self.keys[slot(scenario)];
            for (key, opens) in map.iter_mut() {
                for (open, &d) in opens.iter_mut().zip(defs) {
                    let mut emit = |start_ms: i64, end_ms: i64, accs: &[Accumulator]| {
                        for (m, acc) in accs.iter().enumerate() {
                            if acc.count() > 0 {
                                out.push(ClosedWindow {
                                    scenario,
                                    key: key.clone(),
                                    window_index: d,
                                    start_ms,
                                    end_ms,
                                    metric: names[m],
                                    aggregates: acc.finish(is_weighted(scenario, m)),
                                });
                            }
                        }
                    };
                    close_open(
                        open,
                        &self.config.windows[d].spec,
                        watermark,
                        names.len(),
                        &mut emit,
                    );
                }
            }
            map.retain(|_, opens| !opens.iter().all(Open::is_empty));
        }
        // Stable: metrics of one window keep their declared order.
        out[first_new..].sort_by(|a, b| {
            (a.end_ms, a.scenario, &a.key, a.window_index).cmp(&(
                b.end_ms,
                b.scenario,
                &b.key,
                b.window_index,
            ))
        });
    }
}

fn add_to_sessions(
    sessions: &mut Vec<Session>,
    gap: i64,
    max: i64,
    t: i64,
    ordinal: u64,
    samples: &Samples,
    n_metrics: usize,
) {
    let joined: Vec<usize> = (0..sessions.len())
        .filter(|&i| joins_session(t, sessions[i].first_ms, sessions[i].last_ms, gap))
        .collect();
    let span = |idx: &[usize]| {
        let first = idx
            .iter()
            .map(|&i| sessions[i].first_ms)
            .min()
            .unwrap_or(t)
            .min(t);
        let last = idx
            .iter()
            .map(|&i| sessions[i].last_ms)
            .max()
            .unwrap_or(t)
            .max(t);
        (first, last)
    };
    let (first, last) = span(&joined);
    let target = if !joined.is_empty() && last - first <= max {
        // The event bridges every session it touches: merge them into the first.
        let keep = joined[0];
        for &i in joined[1..].iter().rev() {
            let other = sessions.remove(i);
            for (a, b) in sessions[keep].accs.iter_mut().zip(&other.accs) {
                a.merge(b);
            }
        }
        sessions[keep].first_ms = first;
        sessions[keep].last_ms = last;
        Some(keep)
    } else {
        // Too long to merge everything: extend one session if that stays within max.
        joined.iter().copied().find(|&i| {
            let s = &sessions[i];
            s.last_ms.max(t) - s.first_ms.min(t) <= max
        })
    };
    let i = match target {
        Some(i) => {
            let s = &mut sessions[i];
            s.first_ms = s.first_ms.min(t);
            s.last_ms = s.last_ms.max(t);
            i
        }
        None => {
            let at = sessions.partition_point(|s| s.first_ms <= t);
            sessions.insert(
                at,
                Session {
                    first_ms: t,
                    last_ms: t,
                    accs: vec![Accumulator::default(); n_metrics],
                },
            );
            at
        }
    };
    add_samples(&mut sessions[i].accs, t, ordinal, samples);
    sessions.sort_by_key(|s| s.first_ms);
}

fn close_open(
    open: &mut Open,
    spec: &WindowSpec,
    watermark: i64,
    n_metrics: usize,
    emit: &mut impl FnMut(i64, i64, &[Accumulator]),
) {
    match (open, *spec) {
        (Open::Panes { panes, next_end_ms }, WindowSpec::Tumbling { size_ms })
        | (Open::Panes { panes, next_end_ms }, WindowSpec::Hopping { size_ms, .. }) => {
            let hop = match *spec {
                WindowSpec::Hopping { hop_ms, .. } => hop_ms,
                _ => size_ms,
            };
            while let Some(front) = panes.front() {
                let end = next_end_ms.map_or(front.start_ms + hop, |n| n.max(front.start_ms + hop));
                if end > watermark {
                    break;
                }
                let mut merged = vec![Accumulator::default(); n_metrics];
                for pane in panes.iter().take_while(|p| p.start_ms < end) {
                    if pane.start_ms >= end - size_ms {
                        for (a, b) in merged.iter_mut().zip(&pane.accs) {
                            a.merge(b);
                        }
                    }
                }
                emit(end - size_ms, end, &merged);
                *next_end_ms = Some(end + hop);
                while panes
                    .front()
                    .is_some_and(|p| p.start_ms < end + hop - size_ms)
                {
                    panes.pop_front();
                }
            }
        }
        (Open::Sessions { sessions }, WindowSpec::Session { gap_ms, .. }) => {
            sessions.retain(|s| {
                let end = s.last_ms + gap_ms;
                if end <= watermark {
                    emit(s.first_ms, end, &s.accs);
                    false
                } else {
                    true
                }
            });
        }
        (
            Open::Sliding {
                buffer,
                emitted_through_ms,
            },
            WindowSpec::Sliding { size_ms },
        ) => {
            let mut i = 0;
            while i < buffer.len() {
                let t = buffer[i].t_ms;
                if t >= watermark {
                    break;
                }
                // Skip to the last buffered event at this time: the window ends with it.
                let mut j = i;
                while j + 1 < buffer.len() && buffer[j + 1].t_ms == t {
                    j += 1;
                }
                if emitted_through_ms.is_none_or(|e| t > e) {
                    let mut accs = vec![Accumulator::default(); n_metrics];
                    for b in buffer
                        .range(..=j)
                        .rev()
                        .take_while(|b| b.t_ms > t - size_ms)
                    {
                        add_samples(&mut accs, b.t_ms, b.ordinal, &b.samples);
                    }
                    emit(t - size_ms, t, &accs);
                    *emitted_through_ms = Some(t);
                }
                i = j + 1;
            }
            // Windows still to come end at or after the watermark, so they reach back no
            // further than watermark - size.
            let horizon = watermark.saturating_sub(size_ms);
            while buffer.front().is_some_and(|b| b.t_ms <= horizon) {
                buffer.pop_front();
            }
        }
        _ => {}
    }
}
