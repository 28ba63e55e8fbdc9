//! The windowed Gaussian baseline NAB ships: the tail probability of a point under a normal
//! fitted to the last `window` points. Shipped to compare against, not used by the pipeline.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{Direction, Verdict};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowedGaussian {
    window: usize,
    history: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

/// Upper-tail probability of the standard normal (Abramowitz–Stegun 7.1.26 erfc).
fn normal_tail(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * erfc
    } else {
        1.0 - 0.5 * erfc
    }
}

impl WindowedGaussian {
    pub fn new(window: usize) -> Self {
        Self {
            window,
            history: VecDeque::with_capacity(window),
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    pub fn update(&mut self, x: f64) -> Verdict {
        let n = self.history.len() as f64;
        let verdict = if n >= 2.0 {
            let mean = self.sum / n;
            let std = ((self.sum_sq / n - mean * mean).max(0.0)).sqrt().max(1e-9);
            let z = (x - mean) / std;
            Verdict {
                // 1 − two-sided tail: 0 for a typical point, → 1 for a rare one. NAB's own form,
                // 1 − one-sided tail, never goes below 0.5; this is a monotone rescaling of it, so
                // NAB scores are the same and our "0.5 = threshold" reading still holds.
                score: (1.0 - 2.0 * normal_tail(z.abs())).clamp(0.0, 1.0),
                direction: Direction::of_deviation(z),
                value: x,
                baseline: mean,
                spread: std,
            }
        } else {
            Verdict::quiet(x, x, 0.0)
        };
        if self.history.len() == self.window {
            let old = self.history.pop_front().unwrap_or(0.0);
            self.sum -= old;
            self.sum_sq -= old * old;
        }
        self.history.push_back(x);
        self.sum += x;
        self.sum_sq += x * x;
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_probability_is_right_and_scores_rise_with_surprise() {
        assert!((normal_tail(0.0) - 0.5).abs() < 1e-6);
        assert!((normal_tail(1.96) - 0.025).abs() < 1e-4);
        let mut d = WindowedGaussian::new(100);
        for i in 0..100 {
            d.update(10.0 + (i % 5) as f64 * 0.1);
        }
        let usual = d.update(10.2).score;
        let rare = d.update(30.0).score;
        assert!(rare > 0.999 && rare > usual, "{usual} {rare}");
    }
}
