//! Change point: a two-sided CUSUM of standardised deviations from a slowly adapting baseline.
//! It accumulates small persistent shifts that a spike detector ignores, in the spirit of Azure
//! Stream Analytics' ANOMALYDETECTION_CHANGEPOINT. After an alarm the baseline restarts from the
//! new level, so one shift is reported once.

use serde::{Deserialize, Serialize};

use super::{Direction, Verdict, score_from_ratio, spread_floor};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    alpha: f64,
    /// Allowance per point, in standard deviations: drift smaller than this is ignored.
    slack: f64,
    /// Decision interval: alarm when a cumulative sum exceeds it.
    threshold: f64,
    warmup: u32,
    seen: u32,
    mean: f64,
    var: f64,
    up: f64,
    down: f64,
}

impl ChangePoint {
    pub fn new(span: u32, slack: f64, threshold: f64, warmup: u32) -> Self {
        Self {
            alpha: 2.0 / (span as f64 + 1.0),
            slack,
            threshold,
            warmup,
            seen: 0,
            mean: 0.0,
            var: 0.0,
            up: 0.0,
            down: 0.0,
        }
    }

    pub fn update(&mut self, x: f64) -> Verdict {
        if self.seen == 0 {
            self.seen = 1;
            self.mean = x;
            return Verdict::quiet(x, x, 0.0);
        }
        let std = self.var.sqrt().max(spread_floor(self.mean));
        // Cap each point's contribution so one spike alone cannot look like a level shift.
        let z = ((x - self.mean) / std).clamp(-4.0, 4.0);
        let warmed = self.seen >= self.warmup;
        if warmed {
            self.up = (self.up + z - self.slack).max(0.0);
            self.down = (self.down - z - self.slack).max(0.0);
        }
        let (stat, direction) = if self.up >= self.down {
            (self.up, Direction::LevelUp)
        } else {
            (self.down, Direction::LevelDown)
        };
        let verdict = Verdict {
            score: score_from_ratio(stat / self.threshold),
            direction,
            value: x,
            baseline: self.mean,
            spread: std,
        };
        if warmed && stat >= self.threshold {
            // Restart at the new level: the shift has been reported.
            self.mean = x;
            self.up = 0.0;
            self.down = 0.0;
        } else {
            let delta = x - self.mean;
            self.mean += self.alpha * delta;
            self.var = (1.0 - self.alpha) * (self.var + self.alpha * delta * delta);
        }
        self.seen = self.seen.saturating_add(1);
        verdict
    }
}
