//! Finding a series' cycle, one point at a time and in bounded memory, instead of assuming a day.
//!
//! The series is kept as means of blocks of `block` points in a ring of at most [`BLOCKS`]
//! values. While no cycle is known the ring holds the whole history: when it fills, neighbouring
//! blocks are merged and `block` doubles, so a cycle of any length can be found once three of
//! them have been seen. Once a cycle is found the ring stops coarsening and slides.
//!
//! A cycle is, once three of them are in the ring, the first peak of the sample autocorrelation of the linearly detrended block means
//! (Box & Jenkins; the "first peak after the first zero crossing" rule of pitch detection,
//! e.g. de Cheveigné & Kawahara 2002, YIN) that is at least [`MIN_CORRELATION`] high. The
//! autocorrelation must first fall below zero: a trend or a random walk, whose autocorrelation
//! decays without oscillating, has no cycle, and the autocorrelation must be as high at twice the
//! lag, which a detrended random walk's chance swings rarely are. The peak's lag is refined to a fraction of a block by
//! fitting a parabola through it and its neighbours.

use serde::{Deserialize, Serialize};

/// Ring size: 1 KiB of state.
pub const BLOCKS: usize = 256;
/// Shortest cycle, in blocks, that can be told from noise.
const MIN_LAG: usize = 8;
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
    /// Points per cycle (fractional: the peak is interpolated).
    pub points: f64,
    /// Autocorrelation at that lag, in (0.5, 1].
    pub correlation: f64,
}

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodFinder {
    /// Points per block (a power of two).
    block: u32,
    /// Points in the block being filled, and their sum.
    filled: u32,
    sum: f64,
    /// Block means, oldest first.
    ring: Vec<f32>,
    /// Blocks completed since the last search.
    since_search: u32,
    found: Option<Period>,
}

impl Default for PeriodFinder {
    fn default() -> Self {
        Self {
            block: 1,
            filled: 0,
            sum: 0.0,
            ring: Vec::new(),
            since_search: 0,
            found: None,
        }
    }
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

    /// Learns one point; returns true when the cycle changed (found, or found to be another).
    pub fn push(&mut self, x: f64) -> bool {
        self.sum += x;
        self.filled += 1;
        if self.filled < self.block {
            return false;
        }
        let mean = (self.sum / f64::from(self.block)) as f32;
        (self.filled, self.sum) = (0, 0.0);
        if self.ring.len() == BLOCKS {
            if self.found.is_some() {
                self.ring.remove(0);
            } else {
                // Coarsen: merge neighbours, so the ring covers twice the time.
                self.ring = self
                    .ring
                    .chunks(2)
                    .map(|pair| pair.iter().sum::<f32>() / pair.len() as f32)
                    .collect();
                self.ring.reserve_exact(BLOCKS - self.ring.len());
                self.block = self.block.saturating_mul(2);
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
            (Some(old), Some(new)) => (new.points / old.points - 1.0).abs() > 0.05,
            _ => false,
        };
        if changed {
            self.found = next;
        }
        changed
    }

    /// The ring's block means with `block` points each, oldest first, for seeding a profile.
    pub fn blocks(&self) -> (u32, &[f32]) {
        (self.block, &self.ring)
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
        let mut previous = r(1);
        let mut lag = 2;
        while lag < max_lag {
            let current = r(lag);
            trough = trough.min(current);
            if trough < 0.0 && lag > MIN_LAG {
                let next = r(lag + 1);
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
                        points: (lag as f64 + offset) * f64::from(self.block),
                        correlation: current.min(1.0),
                    });
                }
            }
            previous = current;
            lag += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn find(series: impl Iterator<Item = f64>) -> Option<Period> {
        let mut f = PeriodFinder::default();
        for x in series {
            f.push(x);
        }
        f.period()
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
            assert!(
                (p.points / period - 1.0).abs() < 0.02,
                "{period}: found {p:?}"
            );
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
        assert!((p.points / 288.0 - 1.0).abs() < 0.02, "{p:?}");
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
    fn state_is_bounded_whatever_the_length() {
        let mut f = PeriodFinder::default();
        for i in 0..1_000_000 {
            f.push((i % 977) as f64);
        }
        assert!(f.state_bytes() <= 1200, "{}", f.state_bytes());
    }
}
