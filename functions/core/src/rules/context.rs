//! One window or anomaly row as the variables a rule's condition reads.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
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
                let value = match field.data_type() {
                    DataType::Utf8 => {
                        Value::String(column.as_string::<i32>().value(row).to_string())
                    }
                    DataType::Int64 if column.is_null(row) => Value::Float(f64::NAN),
                    DataType::Int64 => Value::Int(column.as_primitive::<Int64Type>().value(row)),
                    DataType::Float64 if column.is_null(row) => Value::Float(f64::NAN),
                    DataType::Float64 => {
                        Value::Float(column.as_primitive::<Float64Type>().value(row))
                    }
                    DataType::Timestamp(_, _) => {
                        Value::Int(column.as_primitive::<TimestampMillisecondType>().value(row))
                    }
                    _ => continue,
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
