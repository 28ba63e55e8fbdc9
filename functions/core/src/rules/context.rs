//! One window or anomaly row as the variables a rule's condition reads.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use evalexpr::{Context, DefaultNumericTypes, EvalexprError, EvalexprResult, Value};

use super::Source;
use crate::schema::ColumnType;

/// One row as evalexpr variables.
pub struct RowContext {
    names: Vec<&'static str>,
    values: Vec<Value<DefaultNumericTypes>>,
}

impl RowContext {
    pub(super) fn sample(source: Source, threshold: Option<f64>) -> Self {
        let table = source.table();
        let mut ctx = RowContext {
            names: Vec::new(),
            values: Vec::new(),
        };
        for c in table.columns.iter() {
            let v = match c.ty {
                ColumnType::String | ColumnType::Binary => Value::String("x".into()),
                ColumnType::Int64 | ColumnType::TimestampMs => Value::Int(1),
                ColumnType::Float64 => Value::Float(1.0),
                ColumnType::Bool => Value::Boolean(true),
            };
            ctx.push(c.name.as_ref(), v);
        }
        ctx.push("scenario", Value::String("trades".into()));
        ctx.push("stream", Value::String("trades".into()));
        ctx.finish(source, threshold);
        ctx
    }

    fn push(&mut self, name: &'static str, value: Value<DefaultNumericTypes>) {
        self.names.push(name);
        self.values.push(value);
    }

    /// Sets the `threshold` variable: each rule brings its own.
    pub(super) fn set_threshold(&mut self, threshold: Option<f64>) {
        if let Some(i) = self.names.iter().position(|n| *n == "threshold") {
            self.values[i] = Value::Float(threshold.unwrap_or(f64::NAN));
        }
    }

    fn finish(&mut self, source: Source, threshold: Option<f64>) {
        self.push("threshold", Value::Float(threshold.unwrap_or(f64::NAN)));
        let rollup = self.text("scope") == crate::window::Scope::Rollup.as_str();
        self.push("is_rollup", Value::Boolean(rollup));
        if source == Source::Windows {
            let first = self.float("first").unwrap_or(0.0);
            let last = self.float("last").unwrap_or(0.0);
            let change = if first != 0.0 {
                (last - first) / first
            } else {
                0.0
            };
            self.push("change", Value::Float(change));
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value<DefaultNumericTypes>> {
        self.names
            .iter()
            .position(|n| *n == name)
            .map(|i| &self.values[i])
    }

    pub(super) fn float(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub(super) fn text(&self, name: &str) -> String {
        match self.get(name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    pub(super) fn int(&self, name: &str) -> i64 {
        match self.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }
}

impl Context for RowContext {
    type NumericTypes = DefaultNumericTypes;

    fn get_value(&self, identifier: &str) -> Option<&Value<DefaultNumericTypes>> {
        self.get(identifier)
    }

    fn call_function(
        &self,
        identifier: &str,
        _argument: &Value<DefaultNumericTypes>,
    ) -> evalexpr::error::EvalexprResultValue<DefaultNumericTypes> {
        Err(EvalexprError::FunctionIdentifierNotFound(
            identifier.to_string(),
        ))
    }

    fn are_builtin_functions_disabled(&self) -> bool {
        false
    }

    fn set_builtin_functions_disabled(
        &mut self,
        _disabled: bool,
    ) -> EvalexprResult<(), DefaultNumericTypes> {
        Err(EvalexprError::CustomMessage(
            "builtin functions cannot be disabled".into(),
        ))
    }
}

/// One cell as a rule variable, for whatever types a valid Parquet writer may have used for the
/// table's columns (sluice writes Utf8, Int64, Float64 and millisecond timestamps; other
/// writers, or arrow-rs reading another writer's file, give large or view strings, 32-bit
/// numbers, second/micro/nanosecond timestamps). Nulls of numbers are NaN, so comparisons with
/// them are false rather than errors; `None` for a type no rule reads.
fn cell(column: &dyn Array, row: usize) -> Option<Value<DefaultNumericTypes>> {
    let number = |v: Option<f64>| Value::Float(v.unwrap_or(f64::NAN));
    if column.is_null(row) {
        return match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                Some(Value::String(String::new()))
            }
            DataType::Boolean => Some(Value::Boolean(false)),
            _ => Some(number(None)),
        };
    }
    Some(match column.data_type() {
        DataType::Utf8 => Value::String(column.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Value::String(column.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Value::String(column.as_string_view().value(row).to_string()),
        DataType::Boolean => Value::Boolean(column.as_boolean().value(row)),
        DataType::Int64 => Value::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Int32 => Value::Int(i64::from(column.as_primitive::<Int32Type>().value(row))),
        DataType::Float64 => Value::Float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => {
            Value::Float(f64::from(column.as_primitive::<Float32Type>().value(row)))
        }
        // Rules compare times in UTC milliseconds, whatever unit the file stored.
        DataType::Timestamp(unit, _) => Value::Int(match unit {
            TimeUnit::Second => column.as_primitive::<TimestampSecondType>().value(row) * 1_000,
            TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => column
                .as_primitive::<TimestampMicrosecondType>()
                .value(row)
                .div_euclid(1_000),
            TimeUnit::Nanosecond => column
                .as_primitive::<TimestampNanosecondType>()
                .value(row)
                .div_euclid(1_000_000),
        }),
        _ => return None,
    })
}

/// Turns every row of a windows/anomalies batch into a rule context. Nulls become NaN (floats)
/// so comparisons with them are false rather than errors.
pub fn rows(
    batch: &RecordBatch,
    scenario: &str,
    source: Source,
    threshold: Option<f64>,
) -> Vec<RowContext> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let mut ctx = RowContext {
                names: Vec::with_capacity(schema.fields().len() + 3),
                values: Vec::with_capacity(schema.fields().len() + 3),
            };
            for (field, column) in schema.fields().iter().zip(batch.columns()) {
                let Some(name) = source
                    .table()
                    .columns
                    .iter()
                    .find(|c| c.name == field.name().as_str())
                    .map(|c| c.name.as_ref())
                else {
                    continue;
                };
                let Some(value) = cell(column.as_ref(), row) else {
                    continue;
                };
                ctx.push(name, value);
            }
            ctx.push("scenario", Value::String(scenario.to_string()));
            ctx.push("stream", Value::String(scenario.to_string()));
            ctx.finish(source, threshold);
            ctx
        })
        .collect()
}
