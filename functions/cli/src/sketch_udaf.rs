//! Aggregate functions that merge the sketches window rows carry (`quantile_sketch`,
//! `distinct_sketch`), so `windows_merged` gives the percentiles and distinct count of a window
//! spread over shards exactly as one shard would have: DDSketch and HyperLogLog merge without
//! loss. Athena has no user-defined aggregates; there those columns stay NULL for merged rows.
//!
//! `sluice_sketch_p50(quantile_sketch)` (and `_p90`, `_p95`, `_p99`) → DOUBLE;
//! `sluice_sketch_distinct(distinct_sketch)` → BIGINT. NULL when no row has a sketch.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, AggregateUDF, Volatility, create_udaf};
use datafusion::prelude::SessionContext;
use sluice_core::window::sketch::{Distinct, Quantiles};

/// What one function reads from the merged sketch.
#[derive(Debug, Clone, Copy)]
enum Reading {
    Quantile(f64),
    Distinct,
}

#[derive(Debug)]
struct SketchMerge {
    reading: Reading,
    quantiles: Quantiles,
    distinct: Distinct,
    seen: bool,
}

impl SketchMerge {
    fn absorb(&mut self, column: &ArrayRef) -> Result<()> {
        let bytes = column
            .as_any()
            .downcast_ref::<datafusion::arrow::array::BinaryArray>()
            .ok_or_else(|| DataFusionError::Internal("sketch column is not binary".into()))?;
        for i in 0..bytes.len() {
            if bytes.is_null(i) {
                continue;
            }
            let bad = |e: serde_json::Error| {
                DataFusionError::Execution(format!("unreadable sketch in the lake: {e}"))
            };
            match self.reading {
                Reading::Quantile(_) => {
                    let q: Quantiles = serde_json::from_slice(bytes.value(i)).map_err(bad)?;
                    self.quantiles.merge(&q);
                }
                Reading::Distinct => {
                    let d: Distinct = serde_json::from_slice(bytes.value(i)).map_err(bad)?;
                    self.distinct.merge(&d);
                }
            }
            self.seen = true;
        }
        Ok(())
    }

    fn sketch_bytes(&self) -> Result<Option<Vec<u8>>> {
        if !self.seen {
            return Ok(None);
        }
        let bytes = match self.reading {
            Reading::Quantile(_) => serde_json::to_vec(&self.quantiles),
            Reading::Distinct => serde_json::to_vec(&self.distinct),
        };
        bytes
            .map(Some)
            .map_err(|e| DataFusionError::Execution(e.to_string()))
    }
}

impl Accumulator for SketchMerge {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        values.iter().try_for_each(|c| self.absorb(c))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        states.iter().try_for_each(|c| self.absorb(c))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(self.sketch_bytes()?)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(match self.reading {
            Reading::Quantile(q) => {
                ScalarValue::Float64(self.seen.then(|| self.quantiles.quantile(q)).flatten())
            }
            Reading::Distinct => ScalarValue::Int64(
                self.seen
                    .then(|| i64::try_from(self.distinct.estimate()).unwrap_or(i64::MAX)),
            ),
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketch_bytes().ok().flatten().map_or(0, |b| b.len())
    }
}

fn udaf(name: &str, reading: Reading) -> AggregateUDF {
    let returns = match reading {
        Reading::Quantile(_) => DataType::Float64,
        Reading::Distinct => DataType::Int64,
    };
    create_udaf(
        name,
        vec![DataType::Binary],
        Arc::new(returns),
        Volatility::Immutable,
        Arc::new(move |_| {
            Ok(Box::new(SketchMerge {
                reading,
                quantiles: Quantiles::default(),
                distinct: Distinct::default(),
                seen: false,
            }))
        }),
        Arc::new(vec![DataType::Binary]),
    )
}

/// The functions, by the output column each computes and the sketch column it reads.
pub const MERGED: [(&str, &str, &str); 5] = [
    ("p50", "sluice_sketch_p50", "quantile_sketch"),
    ("p90", "sluice_sketch_p90", "quantile_sketch"),
    ("p95", "sluice_sketch_p95", "quantile_sketch"),
    ("p99", "sluice_sketch_p99", "quantile_sketch"),
    (
        "distinct_count",
        "sluice_sketch_distinct",
        "distinct_sketch",
    ),
];

/// Registers every sketch-merging function with `ctx`.
pub fn register(ctx: &SessionContext) {
    let readings = [
        Reading::Quantile(0.5),
        Reading::Quantile(0.9),
        Reading::Quantile(0.95),
        Reading::Quantile(0.99),
        Reading::Distinct,
    ];
    for ((_, name, _), reading) in MERGED.iter().zip(readings) {
        ctx.register_udaf(udaf(name, reading));
    }
}
