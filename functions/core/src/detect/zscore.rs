//! Rolling z-score: distance from an exponentially weighted mean in units of the exponentially
//! weighted standard deviation.

use serde::{Deserialize, Serialize};

use super::{Direction, Verdict, score_from_ratio, spread_floor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZScore {
    alpha: f64,
    threshold: f64,
    warmup: u32,
    seen: u32,
    mean: f64,
    var: f64,
}

impl ZScore {
    /// `span` points of memory (α = 2 / (span + 1)); fires beyond `threshold` deviations.
    pub fn new(span: u32, threshold: f64, warmup: u32) -> Self {
        Self {
            alpha: 2.0 / (span as f64 + 1.0),
            threshold,
            warmup,
            seen: 0,
            mean: 0.0,
            var: 0.0,
        }
    }

    pub fn update(&mut self, x: f64) -> Verdict {
        if self.seen == 0 {
            self.seen = 1;
            self.mean = x;
            return Verdict::quiet(x, x, 0.0);
        }
        let std = self.var.sqrt().max(spread_floor(self.mean));
        let z = (x - self.mean) / std;
        let verdict = Verdict {
            score: if self.seen >= self.warmup {
                score_from_ratio(z.abs() / self.threshold)
            } else {
                0.0
            },
            direction: Direction::of_deviation(z),
            value: x,
            baseline: self.mean,
            spread: std,
        };
        // Learn from a clipped value so one outlier does not drag the baseline with it.
        let clipped = if self.seen >= self.warmup {
            x.clamp(
                self.mean - self.threshold * std,
                self.mean + self.threshold * std,
            )
        } else {
            x
        };
        let delta = clipped - self.mean;
        self.mean += self.alpha * delta;
        self.var = (1.0 - self.alpha) * (self.var + self.alpha * delta * delta);
        self.seen = self.seen.saturating_add(1);
        verdict
    }
}
