//! The numbers an event contributes to its windows: one optional sample per metric of its
//! stream definition, in the definition's order.

use serde::{Deserialize, Serialize};

use crate::stream::{MetricSource, Record, StreamDef, Value};

/// One metric's value in one event; `weight` feeds the weighted average (quantity for VWAP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    pub weight: f64,
}

/// One entry per metric of the stream; `None` where the event does not contribute.
pub type Samples = Vec<Option<Sample>>;

/// Fills `out` with the samples of `record` (cleared first, so a buffer can be reused).
///
/// A metric contributes when its `when` condition holds and its field is not null; a metric of
/// a non-numeric field contributes 1 (it can only count). A null weight weighs 0.
pub fn samples(def: &StreamDef, record: &Record, out: &mut Samples) {
    out.clear();
    out.extend(def.metrics.iter().map(|m| {
        if let Some(c) = &m.when
            && !record.matches(def, c.field, &c.values)
        {
            return None;
        }
        let value = match m.source {
            MetricSource::Constant(v) => v,
            MetricSource::Field(i) => match &record.values[i] {
                Value::Null => return None,
                v => v.as_f64().unwrap_or(1.0),
            },
        };
        let weight = m
            .weight
            .map_or(1.0, |w| record.values[w].as_f64().unwrap_or(0.0));
        Some(Sample { value, weight })
    }));
}
