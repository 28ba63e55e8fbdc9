//! The numbers an event contributes to its windows: one optional sample per metric of its
//! stream definition, in the definition's order.

use serde::{Deserialize, Serialize};

use super::sketch::stable_hash;
use crate::stream::{MetricSource, Record, StreamDef, Value};

/// One metric's value in one event; `weight` feeds the weighted average (quantity for VWAP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    pub weight: f64,
    /// Which sketches the metric keeps ([`Sample::QUANTILES`], [`Sample::DISTINCT`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sketches: u8,
    /// [`stable_hash`] of the value's text, for the distinct count.
    #[serde(default, skip_serializing_if = "is_zero_hash")]
    pub hash: u64,
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

fn is_zero_hash(v: &u64) -> bool {
    *v == 0
}

impl Sample {
    pub const QUANTILES: u8 = 1;
    pub const DISTINCT: u8 = 2;

    /// A plain sample: no sketches.
    pub fn new(value: f64, weight: f64) -> Self {
        Self {
            value,
            weight,
            sketches: 0,
            hash: 0,
        }
    }

    pub fn wants_quantiles(&self) -> bool {
        self.sketches & Self::QUANTILES != 0
    }

    pub fn wants_distinct(&self) -> bool {
        self.sketches & Self::DISTINCT != 0
    }
}

/// One entry per metric of the stream; `None` where the event does not contribute.
pub type Samples = Vec<Option<Sample>>;

/// The sketches each metric of `def` keeps ([`Sample::QUANTILES`], [`Sample::DISTINCT`]), in
/// metric order: computed once per configuration, not per event.
pub fn sketch_flags(def: &StreamDef) -> Vec<u8> {
    def.metrics
        .iter()
        .map(|m| {
            let mut flags = 0;
            if m.wants_quantiles() {
                flags |= Sample::QUANTILES;
            }
            if m.wants_distinct() {
                flags |= Sample::DISTINCT;
            }
            flags
        })
        .collect()
}

/// Fills `out` with the samples of `record` (cleared first, so a buffer can be reused);
/// `flags` is [`sketch_flags`] of `def`.
///
/// A metric contributes when its `when` condition holds and its field is not null; a metric of
/// a non-numeric field contributes 1 (it can only count). A null weight weighs 0.
pub fn samples(def: &StreamDef, flags: &[u8], record: &Record, out: &mut Samples) {
    out.clear();
    out.extend(def.metrics.iter().zip(flags).map(|(m, &sketches)| {
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
        let mut hash = 0;
        if sketches & Sample::DISTINCT != 0 {
            hash = match m.source {
                MetricSource::Constant(v) => stable_hash(&v.to_le_bytes()),
                MetricSource::Field(i) => value_hash(def, record, i),
            };
        }
        Some(Sample {
            value,
            weight,
            sketches,
            hash,
        })
    }));
}

/// The hash a distinct count sees of field `i`: of its text for strings and enumerations, of
/// its bits for numbers, so `1` and `1.0` of a double field are one value.
pub fn value_hash(def: &StreamDef, record: &Record, i: usize) -> u64 {
    match &record.values[i] {
        Value::Double(v) => stable_hash(&v.to_bits().to_le_bytes()),
        Value::Long(v) => stable_hash(&(*v as f64).to_bits().to_le_bytes()),
        Value::Time(v) => stable_hash(&v.to_le_bytes()),
        Value::Bool(b) => stable_hash(&[u8::from(*b)]),
        v => stable_hash(v.as_str(def, i).unwrap_or_default().as_bytes()),
    }
}
