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
use super::metrics::{Sample, Samples};
use super::state::{Discarded, KeyOpen, StreamState, WindowDefState, WindowState};
use super::{ClosedWindow, EngineConfig, Scope, WindowSpec};

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
pub(super) struct Pane {
    start_ms: i64,
    accs: Vec<Accumulator>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Session {
    first_ms: i64,
    last_ms: i64,
    accs: Vec<Accumulator>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Buffered {
    t_ms: i64,
    ordinal: u64,
    samples: Samples,
}

/// Open windows of one key for one window definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Open {
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
    pub(super) fn new(spec: &WindowSpec) -> Self {
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

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Open::Panes { panes, .. } => panes.is_empty(),
            Open::Sessions { sessions } => sessions.is_empty(),
            Open::Sliding { buffer, .. } => buffer.is_empty(),
        }
    }
}

fn add_samples(accs: &mut [Accumulator], t: i64, ordinal: u64, samples: &[Option<Sample>]) {
    for (acc, sample) in accs.iter_mut().zip(samples) {
        if let Some(s) = sample {
            acc.add_sample(t, ordinal, s);
        }
    }
}

/// One stream's live state.
#[derive(Debug, Default)]
struct Slot {
    /// Each stream is its own producer: one running ahead must not make another's events late.
    max_event_time_ms: Option<i64>,
    /// Latest arrival time of the stream's events (when known).
    last_arrival_ms: Option<i64>,
    /// The watermark a sweep set while the stream was idle: it only moves forward.
    idle_watermark_ms: Option<i64>,
    /// Key → open windows, aligned with the stream's windows.
    keys: HashMap<String, Vec<Open>>,
    /// Per rollup, aligned with the stream's windows (empty until its first event).
    rollups: Vec<Vec<Open>>,
}

pub struct WindowEngine {
    config: EngineConfig,
    arrivals: u64,
    slots: Vec<Slot>,
    /// Reused per event for rollup samples.
    scratch: Samples,
}

impl WindowEngine {
    pub fn new(config: EngineConfig) -> Self {
        Self::restore(config, WindowState::default())
    }

    /// Restores `state` under `config`. Streams the config no longer has are dropped; a stream
    /// whose state does not fit its config (another window or metric list) starts empty.
    pub fn restore(config: EngineConfig, state: WindowState) -> Self {
        Self::restore_noting(config, state).0
    }

    /// Restores `state` under `config`, keeping the open windows of every (stream, window
    /// definition) that `config` still computes with the same metrics; windows and streams
    /// `config` no longer has are discarded and reported. State of the layout before stream
    /// definitions is migrated first.
    pub fn restore_noting(config: EngineConfig, mut state: WindowState) -> (Self, Vec<Discarded>) {
        let mut notes = state.migrate_legacy(&config);
        let mut slots: Vec<Slot> = config
            .streams
            .iter()
            .map(|s| Slot {
                rollups: vec![Vec::new(); s.rollups.len()],
                ..Slot::default()
            })
            .collect();
        for st in state.streams {
            let Some(i) = config.streams.iter().position(|s| s.name == st.name) else {
                let open_windows = st.windows.iter().map(WindowDefState::open_windows).sum();
                if open_windows > 0 {
                    notes.push(Discarded::StreamRemoved {
                        stream: st.name,
                        open_windows,
                    });
                }
                continue;
            };
            let cfg = &config.streams[i];
            let slot = &mut slots[i];
            slot.max_event_time_ms = st.max_event_time_ms;
            slot.last_arrival_ms = st.last_arrival_ms;
            slot.idle_watermark_ms = st.idle_watermark_ms;
            let metrics: Vec<&str> = cfg.metrics.iter().map(|m| m.name.as_str()).collect();
            for w in st.windows {
                let Some(d) = cfg.windows.iter().position(|spec| *spec == w.spec) else {
                    if w.open_windows() > 0 {
                        notes.push(Discarded::WindowRemoved {
                            stream: cfg.name.clone(),
                            window: w.spec.name(),
                            open_windows: w.open_windows(),
                        });
                    }
                    continue;
                };
                if w.metrics != metrics {
                    if w.open_windows() > 0 {
                        notes.push(Discarded::MetricsChanged {
                            stream: cfg.name.clone(),
                            window: w.spec.name(),
                            open_windows: w.open_windows(),
                        });
                    }
                    continue;
                }
                for k in w.keys {
                    let opens = slot
                        .keys
                        .entry(k.key)
                        .or_insert_with(|| cfg.windows.iter().map(Open::new).collect());
                    opens[d] = k.open;
                }
                for r in w.rollups {
                    let Some(ri) = cfg.rollups.iter().position(|x| x.name == r.key) else {
                        continue;
                    };
                    let opens = &mut slot.rollups[ri];
                    if opens.is_empty() {
                        *opens = cfg.windows.iter().map(Open::new).collect();
                    }
                    opens[d] = r.open;
                }
            }
        }
        let engine = Self {
            config,
            arrivals: state.arrivals,
            slots,
            scratch: Vec::new(),
        };
        (engine, notes)
    }

    pub fn snapshot(&self) -> WindowState {
        let mut streams: Vec<StreamState> = self
            .config
            .streams
            .iter()
            .zip(&self.slots)
            .filter(|(_, slot)| slot.max_event_time_ms.is_some())
            .map(|(cfg, slot)| {
                let metrics: Vec<String> = cfg.metrics.iter().map(|m| m.name.clone()).collect();
                let windows = cfg
                    .windows
                    .iter()
                    .enumerate()
                    .map(|(d, spec)| {
                        let mut keys: Vec<KeyOpen> = slot
                            .keys
                            .iter()
                            .filter(|(_, opens)| !opens[d].is_empty())
                            .map(|(k, opens)| KeyOpen {
                                key: k.clone(),
                                open: opens[d].clone(),
                            })
                            .collect();
                        keys.sort_by(|a, b| a.key.cmp(&b.key));
                        let rollups = cfg
                            .rollups
                            .iter()
                            .zip(&slot.rollups)
                            .filter(|(_, opens)| opens.get(d).is_some_and(|o| !o.is_empty()))
                            .map(|(r, opens)| KeyOpen {
                                key: r.name.clone(),
                                open: opens[d].clone(),
                            })
                            .collect();
                        WindowDefState {
                            spec: *spec,
                            metrics: metrics.clone(),
                            keys,
                            rollups,
                        }
                    })
                    .collect();
                StreamState {
                    name: cfg.name.clone(),
                    max_event_time_ms: slot.max_event_time_ms,
                    last_arrival_ms: slot.last_arrival_ms,
                    idle_watermark_ms: slot.idle_watermark_ms,
                    windows,
                }
            })
            .collect();
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        WindowState::new(self.arrivals, streams)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Largest event time seen in `stream` minus its allowed lateness, or what a sweep moved
    /// it to while the stream was idle if that is later; `None` before the stream's first
    /// event.
    pub fn watermark_ms(&self, stream: usize) -> Option<i64> {
        let lateness = self.config.streams.get(stream)?.allowed_lateness_ms;
        let slot = &self.slots[stream];
        let from_events = slot.max_event_time_ms.map(|m| m - lateness)?;
        Some(
            slot.idle_watermark_ms
                .map_or(from_events, |w| w.max(from_events)),
        )
    }

    /// Moves the watermark of every stream whose last event arrived more than
    /// `idle_timeout_ms` before `now_ms` as if event time had gone on with the wall clock since:
    /// `watermark = max(watermark, max_event_time + (now − last_arrival) − allowed_lateness)`.
    /// Returns how many streams it moved; [`WindowEngine::advance`] then closes what they
    /// passed. Streams whose arrival times are unknown are left alone.
    pub fn advance_idle(&mut self, now_ms: i64, idle_timeout_ms: i64) -> usize {
        let mut moved = 0;
        for (cfg, slot) in self.config.streams.iter().zip(&mut self.slots) {
            let (Some(max), Some(arrival)) = (slot.max_event_time_ms, slot.last_arrival_ms) else {
                continue;
            };
            let idle = now_ms.saturating_sub(arrival);
            if idle <= idle_timeout_ms {
                continue;
            }
            let floor = max
                .saturating_add(idle)
                .saturating_sub(cfg.allowed_lateness_ms);
            if slot.idle_watermark_ms.is_none_or(|w| floor > w) {
                slot.idle_watermark_ms = Some(floor);
                moved += 1;
            }
        }
        moved
    }

    /// Latest arrival of any stream's events (ms), when known.
    pub fn last_arrival_ms(&self) -> Option<i64> {
        self.slots.iter().filter_map(|s| s.last_arrival_ms).max()
    }

    /// Number of keys with open windows (for state-size reporting).
    pub fn open_keys(&self) -> usize {
        self.slots.iter().map(|s| s.keys.len()).sum()
    }

    /// Records one event of `stream` for `key` at `t_ms` with one sample per metric of the
    /// stream, which arrived at `arrival_ms` when known. The late decision is made here and only
    /// here, per event, so it does not depend on how the stream was cut into batches.
    ///
    /// Invariant: the largest event time behind the watermark never exceeds an event's arrival
    /// plus the stream's `max_clock_skew_ms`: an event stamped further ahead is placed in its
    /// own windows but moves the watermark only that far.
    pub fn push(
        &mut self,
        stream: usize,
        key: &str,
        t_ms: i64,
        arrival_ms: Option<i64>,
        samples: &[Option<Sample>],
    ) -> Placement {
        if let Some(w) = self.watermark_ms(stream)
            && t_ms < w
        {
            return Placement::Late { watermark_ms: w };
        }
        let bound = arrival_ms.map_or(t_ms, |a| {
            t_ms.min(a.saturating_add(self.config.streams[stream].max_clock_skew_ms))
        });
        let slot = &mut self.slots[stream];
        slot.max_event_time_ms = Some(slot.max_event_time_ms.map_or(bound, |m| m.max(bound)));
        if let Some(a) = arrival_ms {
            slot.last_arrival_ms = Some(slot.last_arrival_ms.map_or(a, |l| l.max(a)));
        }
        let ordinal = self.arrivals;
        self.arrivals += 1;
        let cfg = &self.config.streams[stream];
        if cfg.windows.is_empty() {
            return Placement::Assigned;
        }
        let n_metrics = cfg.metrics.len();
        if !slot.keys.contains_key(key) {
            slot.keys
                .insert(key.to_string(), cfg.windows.iter().map(Open::new).collect());
        }
        if let Some(opens) = slot.keys.get_mut(key) {
            if cfg.metrics.iter().any(|m| m.rollup_only) {
                self.scratch.clear();
                self.scratch.extend(
                    samples
                        .iter()
                        .zip(&cfg.metrics)
                        .map(|(s, m)| if m.rollup_only { None } else { *s }),
                );
                add(opens, &cfg.windows, t_ms, ordinal, &self.scratch, n_metrics);
            } else {
                add(opens, &cfg.windows, t_ms, ordinal, samples, n_metrics);
            }
        }
        for (r, rollup) in cfg.rollups.iter().enumerate() {
            self.scratch.clear();
            self.scratch.resize(n_metrics, None);
            for &m in &rollup.metrics {
                self.scratch[m] = samples[m];
            }
            let opens = &mut slot.rollups[r];
            if opens.is_empty() {
                *opens = cfg.windows.iter().map(Open::new).collect();
            }
            add(opens, &cfg.windows, t_ms, ordinal, &self.scratch, n_metrics);
        }
        Placement::Assigned
    }

    /// Closes every window whose end the watermark has reached, appending them in
    /// (end, stream, scope, key, window) order.
    pub fn advance(&mut self, out: &mut Vec<ClosedWindow>) {
        let watermarks: Vec<Option<i64>> = (0..self.slots.len())
            .map(|s| self.watermark_ms(s))
            .collect();
        self.close_until(&watermarks, out);
    }

    /// End of data: a watermark beyond any event time closes everything that is open.
    pub fn flush(&mut self, out: &mut Vec<ClosedWindow>) {
        let watermarks = vec![Some(i64::MAX / 4); self.slots.len()];
        self.close_until(&watermarks, out);
    }

    fn close_until(&mut self, watermarks: &[Option<i64>], out: &mut Vec<ClosedWindow>) {
        let first_new = out.len();
        for (stream, (cfg, slot)) in self.config.streams.iter().zip(&mut self.slots).enumerate() {
            let Some(watermark) = watermarks[stream] else {
                continue;
            };
            let n_metrics = cfg.metrics.len();
            let series = slot
                .keys
                .iter_mut()
                .map(|(k, opens)| (k.as_str(), Scope::Key, opens))
                .chain(
                    cfg.rollups
                        .iter()
                        .zip(slot.rollups.iter_mut())
                        .map(|(r, opens)| (r.name.as_str(), Scope::Rollup, opens)),
                );
            for (key, scope, opens) in series {
                for (d, (open, spec)) in opens.iter_mut().zip(&cfg.windows).enumerate() {
                    let mut emit = |start_ms: i64, end_ms: i64, accs: &[Accumulator]| {
                        for (m, acc) in accs.iter().enumerate() {
                            if acc.count() > 0 {
                                out.push(ClosedWindow {
                                    stream,
                                    key: key.to_string(),
                                    scope,
                                    window_index: d,
                                    start_ms,
                                    end_ms,
                                    metric: m,
                                    aggregates: acc.finish(cfg.metrics[m].weighted),
                                });
                            }
                        }
                    };
                    close_open(open, spec, watermark, n_metrics, &mut emit);
                }
            }
            slot.keys
                .retain(|_, opens| !opens.iter().all(Open::is_empty));
            for opens in &mut slot.rollups {
                if opens.iter().all(Open::is_empty) {
                    opens.clear();
                }
            }
        }
        sort_closed(out, first_new);
    }
}

/// Sorts `out[from..]` into (end, stream, scope, key, window) order, stably, so metrics of one
/// window keep their declared order. A closed window carries its aggregates and sketches
/// (hundreds of bytes), so the sort orders indices and then moves each window once, instead of
/// moving every window log n times.
fn sort_closed(out: &mut Vec<ClosedWindow>, from: usize) {
    let closed = out.split_off(from);
    let mut order: Vec<usize> = (0..closed.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&closed[a], &closed[b]);
        (a.end_ms, a.stream, a.scope, &a.key, a.window_index).cmp(&(
            b.end_ms,
            b.stream,
            b.scope,
            &b.key,
            b.window_index,
        ))
    });
    let mut slots: Vec<Option<ClosedWindow>> = closed.into_iter().map(Some).collect();
    out.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

/// Adds one event's samples to the open windows of one key (or rollup).
fn add(
    opens: &mut [Open],
    specs: &[WindowSpec],
    t: i64,
    ordinal: u64,
    samples: &[Option<Sample>],
    n_metrics: usize,
) {
    for (open, spec) in opens.iter_mut().zip(specs) {
        match (open, spec) {
            (
                Open::Panes { panes, .. },
                WindowSpec::Tumbling { size_ms: width } | WindowSpec::Hopping { hop_ms: width, .. },
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
                        samples: samples.to_vec(),
                    },
                );
            }
            // Open states are created from their spec, so the pairs always match.
            _ => {}
        }
    }
}

fn add_to_sessions(
    sessions: &mut Vec<Session>,
    gap: i64,
    max: i64,
    t: i64,
    ordinal: u64,
    samples: &[Option<Sample>],
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
