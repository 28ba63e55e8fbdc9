//! Spike and dip: how far a point sits from the median of the recent history, in robust
//! standard deviations (1.4826 × median absolute deviation). In the spirit of Azure Stream
//! Analytics' ANOMALYDETECTION_SPIKEANDDIP: a bounded history window, two-sided.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Direction, Verdict, score_from_ratio, spread_floor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpikeDip {
    history: VecDeque<f64>,
    capacity: usize,
    threshold: f64,
    warmup: usize,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

impl SpikeDip {
    pub fn new(capacity: usize, threshold: f64, warmup: usize) -> Self {
        Self {
            history: VecDeque::with_capacity(capacity),
            capacity,
            threshold,
            warmup,
        }
    }

    pub fn update(&mut self, x: f64) -> Verdict {
        let verdict = if self.history.len() >= self.warmup.max(1) {
            let mut sorted: Vec<f64> = self.history.iter().copied().collect();
            sorted.sort_by(f64::total_cmp);
            let med = median(&sorted);
            let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - med).abs()).collect();
            deviations.sort_by(f64::total_cmp);
            // MAD is 0 when over half the history is one value; the mean absolute deviation
            // (× 1.2533 ≈ σ for normal data) still measures the spread of the rest.
            let mad = 1.4826 * median(&deviations);
            let mean_ad = 1.2533 * deviations.iter().sum::<f64>() / deviations.len() as f64;
            let spread = if mad > 0.0 { mad } else { mean_ad }.max(spread_floor(med));
            let z = (x - med) / spread;
            Verdict {
                score: score_from_ratio(z.abs() / self.threshold),
                direction: Direction::of_deviation(z),
                value: x,
                baseline: med,
                spread,
            }
        } else {
            Verdict::quiet(x, x, 0.0)
        };
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(x);
        verdict
    }
}
