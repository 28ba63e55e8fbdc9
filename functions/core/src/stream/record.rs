//! A decoded event of any stream: its values aligned with the definition's fields.

use super::{FieldType, StreamDef};

/// One field's value. Enumeration values are kept as their index into the field's `values`,
/// so the shipped streams' `side`, `action`, … cost no allocation per event.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Absent or JSON null (nullable fields only).
    Null,
    Str(String),
    /// Index into [`super::FieldDef::values`].
    Enum(u32),
    Double(f64),
    Long(i64),
    Bool(bool),
    /// UTC milliseconds.
    Time(i64),
}

impl Value {
    /// The value as a number, for metrics and weights (`None` for null and non-numbers).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Double(v) => Some(v),
            Value::Long(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The text of a string or enumeration value of field `field` of `def`.
    pub fn as_str<'a>(&'a self, def: &'a StreamDef, field: usize) -> Option<&'a str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Enum(i) => def.fields[field]
                .values
                .as_ref()
                .and_then(|v| v.get(*i as usize))
                .map(String::as_str),
            _ => None,
        }
    }
}

/// A validated event of stream `stream` (an index into the [`super::StreamSet`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub stream: usize,
    /// The event-time field's value, UTC milliseconds.
    pub event_time_ms: i64,
    /// Aligned with [`StreamDef::fields`]; each value has its field's type or is `Null`.
    pub values: Vec<Value>,
}

impl Record {
    /// The key field's value as text (a long key in decimal): borrowed, so no key is copied
    /// per event.
    pub fn key<'a>(&'a self, def: &'a StreamDef) -> std::borrow::Cow<'a, str> {
        match &self.values[def.key] {
            Value::Long(v) => std::borrow::Cow::Owned(v.to_string()),
            v => std::borrow::Cow::Borrowed(v.as_str(def, def.key).unwrap_or_default()),
        }
    }

    /// Whether condition `(field, values)` holds: the field's text is one of `values`.
    pub fn matches(&self, def: &StreamDef, field: usize, values: &[String]) -> bool {
        self.values[field]
            .as_str(def, field)
            .is_some_and(|v| values.iter().any(|w| w == v))
    }

    /// The dedup field's value as text, when the stream declares one.
    pub fn dedup_id<'a>(&'a self, def: &'a StreamDef) -> Option<std::borrow::Cow<'a, str>> {
        let i = def.dedup?;
        match &self.values[i] {
            Value::Long(v) => Some(std::borrow::Cow::Owned(v.to_string())),
            v => v.as_str(def, i).map(std::borrow::Cow::Borrowed),
        }
    }
}

impl FieldType {
    /// What a producer must send, for messages.
    pub fn expected(self) -> &'static str {
        match self {
            FieldType::String => "a string",
            FieldType::Double => "a number",
            FieldType::Long => "a whole number",
            FieldType::Bool => "true or false",
            FieldType::Timestamp => "a timestamp",
        }
    }
}
