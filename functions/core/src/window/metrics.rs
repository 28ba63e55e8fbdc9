//! The numbers each scenario feeds into its windows, one row per metric per window.

use serde::{Deserialize, Serialize};

use crate::event::{Action, Event, Payload, Scenario};

/// Upper bound on metrics per scenario, so samples fit in a fixed array (no allocation per
/// event on the hot path).
pub const MAX_METRICS: usize = 4;

/// One metric's value in one event; `weight` feeds the weighted average (quantity for VWAP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    pub weight: f64,
}

pub type Samples = [Option<Sample>; MAX_METRICS];

/// Metric names of a scenario, in the order of [`samples`].
pub fn metric_names(scenario: Scenario) -> &'static [&'static str] {
    match scenario {
        Scenario::Trades => &["price", "quantity"],
        Scenario::Telemetry => &["cpu_pct", "mem_pct", "error_count", "latency_ms"],
        // `actions` counts every event (value 1); `purchase_amount` only purchases.
        Scenario::Clickstream => &["actions", "purchase_amount"],
    }
}

/// Whether a metric's weighted average is meaningful (price weighted by quantity = VWAP).
pub fn is_weighted(scenario: Scenario, metric_index: usize) -> bool {
    scenario == Scenario::Trades && metric_index == 0
}

fn plain(value: f64) -> Option<Sample> {
    Some(Sample { value, weight: 1.0 })
}

pub fn samples(event: &Event) -> Samples {
    match &event.payload {
        Payload::Trade(t) => [
            Some(Sample {
                value: t.price,
                weight: t.quantity as f64,
            }),
            plain(t.quantity as f64),
            None,
            None,
        ],
        Payload::Telemetry(t) => [
            plain(t.cpu_pct),
            plain(t.mem_pct),
            plain(t.error_count as f64),
            plain(t.latency_ms),
        ],
        Payload::Click(c) => [
            plain(1.0),
            match (c.action, c.amount) {
                (Action::Purchase, Some(a)) => plain(a),
                _ => None,
            },
            None,
            None,
        ],
    }
}
