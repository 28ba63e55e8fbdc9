//! Finding a series' cycle, one point at a time and in bounded memory, instead of assuming a day.
//!
//! The series is kept as means of blocks of time (at first the sampling interval) in a ring of at
//! most [`BLOCKS`] values; a block without points repeats the one before (a gap, a missing value),
//! so the blocks stay a regular grid whatever the sampling does. While no cycle is known the ring
//! holds the whole history: when it fills, neighbouring blocks are merged and the block's length
//! doubles, so a cycle of any length can be found once three of them have been seen. Once a cycle
//! is found the ring stops coarsening and slides.
//!
//! A cycle is, once three of them are in the ring, the first peak of the sample autocorrelation
//! of the linearly detrended block means (Box & Jenkins; the "first peak after the first zero
//! crossing" rule of pitch detection, e.g. de Cheveigné & Kawahara 2002, YIN) that is at least
//! [`MIN_CORRELATION`] high. The autocorrelation must first fall below zero: a trend or a random
//! walk, whose autocorrelation decays without oscillating, has no cycle; and it must be as high
//! at twice the lag, which a detrended random walk's chance swings rarely are. The peak's lag is
//! refined to a fraction of a block by fitting a parabola through it and its neighbours.

use serde::{Deserialize, Serialize};

/// Ring size: 1 KiB of state.
pub const BLOCKS: usize = 256;
/// Cycles must be longer than this many blocks to be told from noise (a week of daily points is
/// seven).
const MIN_LAG: usize = 6;
/// Autocorrelation a cycle must reach at its period.
pub const MIN_CORRELATION: f64 = 0.5;
/// How far the autocorrelation must rise from its trough to its peak: a cycle swings from about
/// -1 to 1 (a sine) or -0.6 to 1 (a square wave); a detrended random walk's wanders less.
const MIN_PROMINENCE: f64 = 1.0;
/// Blocks of history before the first search.
const MIN_BLOCKS: usize = 96;

/// A cycle's length.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// Milliseconds per cycle (fractional: the peak is interpolated).
    pub ms: f64,
    /// Autocorrelation at that lag, in (0.5, 1].
    pub correlation: f64,
}

/// See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeriodFinder {
    /// A block's length in ms (0 until the first point).
    block_ms: i64,
    /// Start of the block being filled, UTC ms.
    block_start_ms: i64,
    /// Points in the block being filled, and their sum.
    filled: u32,
    sum: f64,
    /// Block means, oldest first.
    ring: Vec<f32>,
    /// Blocks completed since the last search.
    since_search: u32,
    found: Option<Period>,
}

impl PeriodFinder {
    /// The cycle found so far, if any.
    pub fn period(&self) -> Option<Period> {
        self.found
    }

    /// Bytes of state, heap included.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.ring.capacity() * std::mem::size_of::<f32>()
    }

    /// Learns the point `x` at `t_ms` (UTC ms) of a series sampled about every `interval_ms`;
    /// returns true when the cycle changed (found, or found to be another). Points out of order
    /// count in the block being filled.
    pub fn push(&mut self, t_ms: i64, x: f64, interval_ms: i64) -> bool {
        if self.block_ms <= 0 {
            if interval_ms <= 0 {
                return false;
            }
            (self.block_ms, self.block_start_ms) = (interval_ms, t_ms);
        }
        let mut changed = false;
        if t_ms - self.block_start_ms >= self.block_ms {
            let blocks = (t_ms - self.block_start_ms) / self.block_ms;
            if blocks > BLOCKS as i64 {
                // A gap longer than the ring: what came before no longer lines up.
                self.ring.clear();
                (self.filled, self.sum) = (0, 0.0);
                self.block_start_ms = t_ms;
            } else {
                let mean = if self.filled > 0 {
                    Some((self.sum / f64::from(self.filled)) as f32)
                } else {
                    self.ring.last().copied()
                };
                (self.filled, self.sum) = (0, 0.0);
                for _ in 0..blocks {
                    self.block_start_ms += self.block_ms;
                    if let Some(mean) = mean {
                        changed |= self.close(mean);
                    }
                }
            }
        }
        self.sum += x;
        self.filled += 1;
        changed
    }

    /// Appends a block's mean (coarsening or sliding a full ring) and searches when due.
    fn close(&mut self, mean: f32) -> bool {
        if self.ring.len() == BLOCKS {
            if self.found.is_some() {
                self.ring.remove(0);
            } else {
                // Coarsen: merge neighbours, so the ring covers twice the time. The block being
                // filled becomes one of the new length.
                self.ring = self
                    .ring
                    .chunks(2)
                    .map(|pair| pair.iter().sum::<f32>() / pair.len() as f32)
                    .collect();
                self.ring.reserve_exact(BLOCKS - self.ring.len());
                self.block_ms = self.block_ms.saturating_mul(2);
            }
        }
        self.ring.push(mean);
        self.since_search += 1;
        // Search often while nothing is known, rarely once a cycle is (to follow a change).
        let every = if self.found.is_some() { BLOCKS / 2 } else { 16 };
        if (self.since_search as usize) < every || self.ring.len() < MIN_BLOCKS {
            return false;
        }
        self.since_search = 0;
        let next = self.search();
        let changed = match (self.found, next) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => (new.ms / old.ms - 1.0).abs() > 0.05,
            _ => false,
        };
        if changed {
            self.found = next;
        }
        changed
    }

    /// The ring's block means, oldest first, and a block's length in ms: the last ends where the
    /// block being filled starts ([`PeriodFinder::filling_since_ms`]).
    pub fn blocks(&self) -> (i64, &[f32]) {
        (self.block_ms, &self.ring)
    }

    /// Start of the block being filled, UTC ms.
    pub fn filling_since_ms(&self) -> i64 {
        self.block_start_ms
    }

    fn search(&self) -> Option<Period> {
        let n = self.ring.len();
        // Detrend: least-squares line through the block means.
        let mean_i = (n as f64 - 1.0) / 2.0;
        let mean_y = self.ring.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let (mut sxy, mut sxx) = (0.0, 0.0);
        for (i, &v) in self.ring.iter().enumerate() {
            let di = i as f64 - mean_i;
            sxy += di * (f64::from(v) - mean_y);
            sxx += di * di;
        }
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        let y: Vec<f64> = self
            .ring
            .iter()
            .enumerate()
            .map(|(i, &v)| f64::from(v) - mean_y - slope * (i as f64 - mean_i))
            .collect();
        let variance: f64 = y.iter().map(|v| v * v).sum::<f64>() / n as f64;
        // What a line leaves is the block means' f32 rounding, not a cycle.
        let resolution = 1e-6 * (mean_y.abs() + (slope * n as f64).abs());
        if variance.sqrt() <= resolution {
            return None;
        }
        let r = |lag: usize| -> f64 {
            let pairs = n - lag;
            let s: f64 = y[lag..].iter().zip(&y[..pairs]).map(|(a, b)| a * b).sum();
            s / pairs as f64 / variance
        };
        // A cycle counts once it has repeated: three of them in the ring, the autocorrelation
        // high at the period and at twice it (a random walk's wanderings rarely line up twice).
        let max_lag = n / 3;
        let mut trough = f64::INFINITY;
        // Each lag's autocorrelation is computed once, as it moves from next to current to
        // previous.
        let (mut previous, mut current) = (r(1), r(2));
        for lag in 2..max_lag {
            let next = r(lag + 1);
            trough = trough.min(current);
            if trough < 0.0 && lag > MIN_LAG {
                let peak = current >= previous && current >= next;
                let repeats = || r(2 * lag) >= MIN_CORRELATION;
                if peak
                    && current >= MIN_CORRELATION
                    && current - trough >= MIN_PROMINENCE
                    && repeats()
                {
                    // Parabola through (lag-1, previous), (lag, current), (lag+1, next).
                    let curvature = previous - 2.0 * current + next;
                    let offset = if curvature < 0.0 {
                        (0.5 * (previous - next) / curvature).clamp(-0.5, 0.5)
                    } else {
                        0.0
                    };
                    return Some(Period {
                        ms: (lag as f64 + offset) * self.block_ms as f64,
                        correlation: current.min(1.0),
                    });
                }
            }
            (previous, current) = (current, next);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The cycle found in `series`, one point a minute, in points.
    fn find(series: impl Iterator<Item = f64>) -> Option<f64> {
        let mut f = PeriodFinder::default();
        for (i, x) in series.enumerate() {
            f.push(i as i64 * 60_000, x, 60_000);
        }
        f.period().map(|p| p.ms / 60_000.0)
    }

    #[test]
    fn a_sine_cycle_is_found_within_two_percent() {
        for (period, noise, len) in [(600.0, 2.0, 2400), (288.0, 5.0, 4000), (37.0, 1.0, 1000)] {
            let mut r = Rng::new(7);
            let p = find((0..len).map(|i| {
                200.0
                    + 20.0 * (std::f64::consts::TAU * i as f64 / period).sin()
                    + noise * r.normal()
            }))
            .unwrap_or_else(|| panic!("period {period} not found"));
            assert!((p / period - 1.0).abs() < 0.02, "{period}: found {p:?}");
        }
    }

    #[test]
    fn a_daily_square_wave_on_a_trend_is_found_at_one_day() {
        let mut r = Rng::new(3);
        let p = find((0..288 * 6).map(|i| {
            let hour = (i % 288) / 12;
            let level = if (8..18).contains(&hour) { 80.0 } else { 20.0 };
            level + 0.01 * i as f64 + r.normal()
        }))
        .expect("a day");
        assert!((p / 288.0 - 1.0).abs() < 0.02, "{p:?}");
    }

    #[test]
    fn noise_trends_random_walks_and_constants_have_no_cycle() {
        let mut r = Rng::new(11);
        assert_eq!(find((0..5000).map(|_| r.normal())), None);
        assert_eq!(find((0..5000).map(|i| i as f64 * 0.3)), None);
        let mut walk = 0.0;
        let mut r = Rng::new(12);
        for _ in 0..20 {
            assert_eq!(
                find((0..5000).map(|_| {
                    walk += r.normal();
                    walk
                })),
                None
            );
        }
        assert_eq!(find((0..5000).map(|_| 4.0)), None);
    }

    #[test]
    fn missing_points_and_irregular_sampling_do_not_move_the_cycle() {
        // A 600-minute cycle sampled every minute with jitter, a fifth of the points missing
        // (some in long runs), and a few stray points a second apart.
        let mut r = Rng::new(5);
        let mut f = PeriodFinder::default();
        let mut t = 0i64;
        for i in 0..4000 {
            t += 60_000 + (r.normal() * 5_000.0) as i64;
            let missing = r.chance(0.15) || (1000..1200).contains(&i);
            if missing {
                continue;
            }
            let x = 200.0 + 20.0 * (std::f64::consts::TAU * t as f64 / 36_000_000.0).sin();
            f.push(t, x + r.normal(), 60_000);
            if i % 500 == 0 {
                f.push(t + 1_000, x, 60_000);
            }
        }
        let p = f.period().expect("found").ms / 60_000.0;
        assert!((p / 600.0 - 1.0).abs() < 0.02, "{p}");
    }

    #[test]
    fn state_is_bounded_whatever_the_length() {
        let mut f = PeriodFinder::default();
        for i in 0..1_000_000 {
            f.push(i * 1000, (i % 977) as f64, 1000);
        }
        assert!(f.state_bytes() <= 1200, "{}", f.state_bytes());
    }
}
