//! The decoder every stream shares: JSON bytes → a [`Record`] of the stream the record routes to,
//! or a [`Rejected`] whose reason names the field. The hot path of the aggregate function.
//!
//! One pass over the top-level object captures only the members some definition reads (strings
//! borrowed from the record unless JSON escapes forced a copy, everything else skipped without
//! allocating); then the record is routed, and each field of its definition is converted and
//! checked in declared order, so the first problem is the one reported.

use std::borrow::Cow;
use std::fmt;

use std::sync::atomic::{AtomicU16, Ordering};

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, TimeZone};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use smallvec::SmallVec;
use thiserror::Error;

use super::record::{Record, Value};
use super::{Ambiguous, FieldDef, FieldType, StreamSet, TimeFormat, TimeParse};
use crate::time::{Offset, parse_timestamp_ms};

/// Earliest and latest event time accepted (2000-01-01, 2100-01-01): anything outside is a
/// producer bug (seconds sent as milliseconds, a zeroed clock), not data.
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;
pub const MAX_EVENT_TIME_MS: i64 = 4_102_444_800_000;
/// How far an event may claim to be ahead of its arrival on the stream before it is absurd.
pub const MAX_FUTURE_SKEW_MS: i64 = 60 * 60 * 1000;
/// Longest key or dedup id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a record could not become a [`Record`]. The `Display` text is the quarantine reason;
/// [`DecodeError::code`] a stable short code to group by. None of these is worth a retry: the
/// same bytes fail the same way.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum DecodeError {
    #[error("record is not valid UTF-8 JSON: {0}")]
    Json(String),
    /// Valid JSON, but a field has the wrong JSON type.
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    /// Valid JSON, but not an object of members.
    #[error("record is not a JSON object: {0}")]
    NotAnObject(String),
    /// A member a definition reads appears twice: which one was meant is unknowable.
    #[error("member `{0}` appears twice")]
    Duplicate(String),
    #[error("missing field `{0}`")]
    Missing(String),
    /// The route field names no loaded stream.
    #[error("unknown stream {value:?} in field `{field}` (expected {expected})")]
    UnknownStream {
        field: String,
        value: String,
        expected: String,
    },
    #[error("field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// An event time outside the accepted range: it would land in a partition the tables do not
    /// project (Athena would never read it).
    #[error("field `{field}`: {reason}")]
    OutOfRange { field: String, reason: String },
}

impl DecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "malformed_json",
            DecodeError::WrongType { .. }
            | DecodeError::NotAnObject(_)
            | DecodeError::Duplicate(_) => "wrong_type",
            DecodeError::Missing(_) => "missing_field",
            // The name predates stream definitions; kept so queries grouping by it still work.
            DecodeError::UnknownStream { .. } => "unknown_scenario",
            DecodeError::Invalid { .. } => "invalid_value",
            DecodeError::OutOfRange { .. } => "out_of_range",
        }
    }

    /// The definition field the error is about, when it is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            DecodeError::WrongType { field, .. }
            | DecodeError::Invalid { field, .. }
            | DecodeError::OutOfRange { field, .. }
            | DecodeError::Missing(field) => Some(field),
            _ => None,
        }
    }
}

/// A record that did not decode: the stream it routed to, when that much was readable (its
/// quarantine partition), and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub stream: Option<usize>,
    pub error: DecodeError,
}

/// Where a field's value is: a captured top-level member, then a path inside it.
#[derive(Debug, Clone)]
struct FieldPlan {
    top: usize,
    rest: Vec<String>,
    /// Other top-level members read when this one is absent.
    aliases: Vec<usize>,
}

#[derive(Debug, Clone)]
struct StreamPlan {
    route: Option<(usize, String)>,
    /// `[route] topic`.
    topic: Option<String>,
    /// `[route] header` and `value`.
    header: Option<(String, String)>,
    fields: Vec<FieldPlan>,
}

/// Decodes records of every stream of a [`StreamSet`]. Build once per set, reuse per record.
#[derive(Debug)]
pub struct Decoder {
    set: StreamSet,
    /// Top-level member names some definition reads.
    members: Vec<String>,
    /// Per member: whether a nested path reads inside it (captured as a JSON tree).
    nested: Vec<bool>,
    plans: Vec<StreamPlan>,
    /// Which member followed member `i` last time (index `i + 1`; index 0: the first member),
    /// `u16::MAX` for none yet. Producers send members in a stable order, so the next member
    /// is nearly always predicted with one comparison. Only a hint: results never depend on it.
    successor: Vec<AtomicU16>,
    /// Earliest accepted event time (ms); see [`Decoder::with_accepted_from`].
    accepted_from_ms: i64,
}

impl Clone for Decoder {
    fn clone(&self) -> Self {
        Self::new(self.set.clone()).with_accepted_from(self.accepted_from_ms)
    }
}

const NO_MEMBER: u16 = u16::MAX;

/// What routes a record besides its members: its Kafka topic and headers.
struct Meta<'a> {
    topic: Option<&'a str>,
    headers: &'a [(String, Vec<u8>)],
}

fn member(members: &mut Vec<String>, nested: &mut Vec<bool>, name: &str, deep: bool) -> usize {
    let i = members.iter().position(|m| m == name).unwrap_or_else(|| {
        members.push(name.to_string());
        nested.push(false);
        members.len() - 1
    });
    nested[i] |= deep;
    i
}

impl Decoder {
    pub fn new(set: StreamSet) -> Self {
        let (mut members, mut nested) = (Vec::new(), Vec::new());
        let plans = set
            .streams()
            .iter()
            .map(|def| StreamPlan {
                route: def.route.as_ref().map(|r| {
                    (
                        member(&mut members, &mut nested, &r.field, false),
                        r.value.clone(),
                    )
                }),
                topic: def.topic.clone(),
                header: def.header_route.clone(),
                fields: def
                    .fields
                    .iter()
                    .map(|f| FieldPlan {
                        top: member(&mut members, &mut nested, &f.path[0], f.path.len() > 1),
                        rest: f.path[1..].to_vec(),
                        aliases: f
                            .aliases
                            .iter()
                            .map(|a| member(&mut members, &mut nested, a, false))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        let successor = (0..=members.len())
            .map(|_| AtomicU16::new(NO_MEMBER))
            .collect();
        Self {
            set,
            members,
            nested,
            plans,
            successor,
            accepted_from_ms: MIN_EVENT_TIME_MS,
        }
    }

    /// Accepts event times from `from_ms` (ms since the epoch, at least 2000-01-01) on: the
    /// first day of the tables' partition projection (Terraform's `projection_start_date`,
    /// `SLUICE_ACCEPTED_FROM`), so that no accepted event lands in a partition Athena never
    /// reads. Earlier events are quarantined as `out_of_range`.
    pub fn with_accepted_from(mut self, from_ms: i64) -> Self {
        self.accepted_from_ms = from_ms.clamp(MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS);
        self
    }

    /// The index of member `name`, given the member before it in this record.
    fn find_member(&self, name: &str, previous: Option<usize>) -> Option<usize> {
        let slot = &self.successor[previous.map_or(0, |p| p + 1)];
        let predicted = slot.load(Ordering::Relaxed);
        if let Some(m) = self.members.get(usize::from(predicted))
            && m == name
        {
            return Some(usize::from(predicted));
        }
        let (len, first) = (name.len(), name.as_bytes().first());
        let found = self
            .members
            .iter()
            .position(|m| m.len() == len && m.as_bytes().first() == first && m == name)?;
        if let Ok(i) = u16::try_from(found) {
            slot.store(i, Ordering::Relaxed);
        }
        Some(found)
    }

    pub fn streams(&self) -> &StreamSet {
        &self.set
    }

    /// Decodes and validates one record. `arrival_ms` (the stream's arrival timestamp), when
    /// known, bounds how far in the future an event may claim to be.
    pub fn decode(&self, bytes: &[u8], arrival_ms: Option<i64>) -> Result<Record, Rejected> {
        self.decode_in(bytes, arrival_ms, None)
    }

    /// [`Decoder::decode`] for a record of the Kafka topic `topic`, which routes it to a
    /// definition with `[route] topic`.
    pub fn decode_in(
        &self,
        bytes: &[u8],
        arrival_ms: Option<i64>,
        topic: Option<&str>,
    ) -> Result<Record, Rejected> {
        self.decode_routed(bytes, arrival_ms, topic, &[])
    }

    /// [`Decoder::decode_in`] for a Kafka record with `headers` (name, value), which route it
    /// to a definition with `[route] header`.
    pub fn decode_routed(
        &self,
        bytes: &[u8],
        arrival_ms: Option<i64>,
        topic: Option<&str>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Record, Rejected> {
        let meta = Meta { topic, headers };
        let reject = |stream, error| Rejected { stream, error };
        // One UTF-8 check of the whole record, then a parser that trusts it.
        let text = std::str::from_utf8(bytes).map_err(|e| {
            reject(
                None,
                DecodeError::Json(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
            )
        })?;
        let mut cells = Cells::new();
        let duplicate = self.capture(text, false, &mut cells).map_err(|e| {
            let error = match e.classify() {
                serde_json::error::Category::Data => DecodeError::NotAnObject(e.to_string()),
                _ => DecodeError::Json(e.to_string()),
            };
            // A member the route does not read may be what failed: file the record under
            // its stream when the route alone can still be read.
            reject(self.probe(text, &meta), error)
        })?;
        if let Some(i) = duplicate {
            // A repeated route member leaves the stream itself in doubt.
            let stream = (!self.is_route_member(i))
                .then(|| self.route(&cells, &meta).ok())
                .flatten();
            return Err(reject(
                stream,
                DecodeError::Duplicate(self.members[i].clone()),
            ));
        }
        let stream = self.route(&cells, &meta).map_err(|e| reject(None, e))?;
        self.fields(stream, &cells, arrival_ms)
            .map_err(|e| reject(Some(stream), e))
    }

    /// One pass over the top-level object; with `routes_only`, members other than route fields
    /// are skipped unread.
    /// Fills `cells` (one per member) and returns the first member that appeared twice.
    fn capture<'t>(
        &self,
        text: &'t str,
        routes_only: bool,
        cells: &mut Cells<'t>,
    ) -> Result<Option<usize>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        cells.clear();
        cells.resize(self.members.len(), None);
        let duplicate = TopLevel {
            decoder: self,
            routes_only,
            cells,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(duplicate)
    }

    fn is_route_member(&self, member: usize) -> bool {
        self.plans
            .iter()
            .any(|p| p.route.as_ref().is_some_and(|(r, _)| *r == member))
    }

    /// The stream of a record whose members did not all parse, read from its route alone.
    fn probe(&self, text: &str, meta: &Meta<'_>) -> Option<usize> {
        let mut cells = Cells::new();
        self.capture(text, true, &mut cells).ok()?;
        self.route(&cells, meta).ok()
    }

    fn route(&self, cells: &[Option<Cell<'_>>], meta: &Meta<'_>) -> Result<usize, DecodeError> {
        let topic = meta.topic;
        let mut routed_on: Option<usize> = None;
        for (i, plan) in self.plans.iter().enumerate() {
            if let Some(t) = &plan.topic {
                if topic == Some(t.as_str()) {
                    return Ok(i);
                }
                continue;
            }
            if let Some((name, value)) = &plan.header {
                if meta
                    .headers
                    .iter()
                    .any(|(k, v)| k == name && v.as_slice() == value.as_bytes())
                {
                    return Ok(i);
                }
                continue;
            }
            match &plan.route {
                None => return Ok(i),
                Some((member, value)) => {
                    routed_on.get_or_insert(*member);
                    if let Some(Cell::Str(s)) = &cells[*member]
                        && s == value
                    {
                        return Ok(i);
                    }
                }
            }
        }
        let Some(member) = routed_on else {
            // Every stream routes by topic or header, and this record matches none of them.
            let headers: Vec<String> = meta
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect();
            return Err(DecodeError::UnknownStream {
                field: "(Kafka topic and headers)".into(),
                value: format!(
                    "{} [{}]",
                    topic.unwrap_or("(not a Kafka record)"),
                    headers.join(", ")
                ),
                expected: self
                    .plans
                    .iter()
                    .filter_map(|p| {
                        p.topic
                            .clone()
                            .or_else(|| p.header.as_ref().map(|(k, v)| format!("header {k}={v}")))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        let field = self.members.get(member).cloned().unwrap_or_default();
        match &cells.get(member).and_then(Option::as_ref) {
            None | Some(Cell::Null) => Err(DecodeError::Missing(field)),
            Some(Cell::Str(s)) => Err(DecodeError::UnknownStream {
                field,
                value: s.to_string(),
                expected: self
                    .plans
                    .iter()
                    .filter_map(|p| p.route.as_ref().map(|(_, v)| v.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            Some(other) => Err(DecodeError::WrongType {
                field,
                expected: "a string",
                found: other.kind(),
            }),
        }
    }

    /// Converts and checks every field of the routed definition in declared order, so the
    /// first problem in that order is the one reported.
    fn fields(
        &self,
        stream: usize,
        cells: &[Option<Cell<'_>>],
        arrival_ms: Option<i64>,
    ) -> Result<Record, DecodeError> {
        let def = &self.set.streams()[stream];
        let plan = &self.plans[stream];
        let mut values: Vec<Value> = Vec::with_capacity(def.fields.len());
        let required = |values: &[Value], i: usize| -> Result<(), DecodeError> {
            let field = &def.fields[i];
            match &field.required_when {
                Some(cond)
                    if values[i] == Value::Null
                        && values[cond.field]
                            .as_str(def, cond.field)
                            .is_some_and(|v| cond.values.iter().any(|w| w == v)) =>
                {
                    Err(DecodeError::Missing(field.name.clone()))
                }
                _ => Ok(()),
            }
        };
        for (i, (field, fp)) in def.fields.iter().zip(&plan.fields).enumerate() {
            let value = convert(field, lookup(cells, fp))?;
            agrees_with_aliases(field, fp, cells, &value)?;
            if i == def.time_field
                && let Value::Time(t) = value
            {
                plausible_time(field, t, arrival_ms, self.accepted_from_ms)?;
            }
            if Some(i) == def.dedup || i == def.key {
                match &value {
                    Value::Long(_) | Value::Null => {}
                    v => identifier(field, v.as_str(def, i).unwrap_or_default())?,
                }
            }
            values.push(value);
            // A condition on an earlier field is checked now; on a later one, below.
            if field.required_when.as_ref().is_some_and(|c| c.field < i) {
                required(&values, i)?;
            }
        }
        for (i, field) in def.fields.iter().enumerate() {
            if field.required_when.as_ref().is_some_and(|c| c.field > i) {
                required(&values, i)?;
            }
        }
        let Value::Time(event_time_ms) = values[def.time_field] else {
            return Err(DecodeError::Missing(def.time().name.clone()));
        };
        Ok(Record {
            stream,
            event_time_ms,
            values,
        })
    }
}

/// An alias is the same value under another name: one that disagrees with the field is a
/// producer bug, not a choice to make silently.
fn agrees_with_aliases(
    field: &FieldDef,
    plan: &FieldPlan,
    cells: &[Option<Cell<'_>>],
    value: &Value,
) -> Result<(), DecodeError> {
    if *value == Value::Null {
        return Ok(());
    }
    for (&alias, name) in plan.aliases.iter().zip(&field.aliases) {
        let Some(other) = &cells[alias] else { continue };
        let agrees = match (other, value) {
            (Cell::Null, _) => true,
            // The common case (a string key sent twice) compares without converting.
            (Cell::Str(a), Value::Str(b)) => a == b,
            _ => convert(field, Some(other.clone())).ok().as_ref() == Some(value),
        };
        if !agrees {
            return Err(invalid(
                field,
                format!(
                    "differs from `{name}` ({}), which names the same value",
                    describe(other)
                ),
            ));
        }
    }
    Ok(())
}

/// Event times outside [`accepted_from_ms`, `MAX_EVENT_TIME_MS`) are out of the tables'
/// range; more than [`MAX_FUTURE_SKEW_MS`] after the record's arrival, a producer bug.
fn plausible_time(
    field: &FieldDef,
    t: i64,
    arrival_ms: Option<i64>,
    accepted_from_ms: i64,
) -> Result<(), DecodeError> {
    if !(accepted_from_ms..MAX_EVENT_TIME_MS).contains(&t) {
        return Err(DecodeError::OutOfRange {
            field: field.name.clone(),
            reason: format!(
                "{} is outside the accepted range {}..2100-01-01 (the tables' partition projection)",
                crate::time::format_rfc3339_ms(t),
                crate::time::format_date(accepted_from_ms),
            ),
        });
    }
    if let Some(arrival) = arrival_ms
        && t > arrival + MAX_FUTURE_SKEW_MS
    {
        return Err(invalid(
            field,
            format!(
                "{} is {} min after the record arrived",
                crate::time::format_rfc3339_ms(t),
                (t - arrival) / 60_000
            ),
        ));
    }
    Ok(())
}

fn invalid(field: &FieldDef, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field: field.name.clone(),
        reason: reason.into(),
    }
}

/// Keys and dedup ids: non-blank, short, printable.
fn identifier(field: &FieldDef, text: &str) -> Result<(), DecodeError> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if text.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("is {} bytes long (at most {MAX_ID_LEN})", text.len()),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(())
}

/// A captured JSON value, borrowed where possible.
#[derive(Debug, Clone)]
enum Cell<'a> {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
    /// A member a nested path reads inside.
    Tree(Box<serde_json::Value>),
}

impl Cell<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Bool(_) => "a boolean",
            Cell::I64(_) | Cell::U64(_) | Cell::F64(_) => "a number",
            Cell::Str(_) => "a string",
            Cell::Array => "an array",
            Cell::Object => "an object",
            Cell::Tree(v) => json_kind(v),
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn from_tree(v: &serde_json::Value) -> Cell<'static> {
    match v {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::Bool(b) => Cell::Bool(*b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Cell::I64)
            .or_else(|| n.as_u64().map(Cell::U64))
            .unwrap_or_else(|| Cell::F64(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => Cell::Str(Cow::Owned(s.clone())),
        serde_json::Value::Array(_) => Cell::Array,
        serde_json::Value::Object(_) => Cell::Object,
    }
}

/// The cell a field reads: its member (or an alias), then its path inside the member.
fn lookup<'a>(cells: &'a [Option<Cell<'a>>], plan: &FieldPlan) -> Option<Cell<'a>> {
    let own = cells[plan.top].as_ref();
    let found = match own {
        Some(Cell::Tree(tree)) if plan.rest.is_empty() => Some(from_tree(tree)),
        Some(Cell::Tree(tree)) => {
            let mut at: &serde_json::Value = tree;
            for segment in &plan.rest {
                at = match at {
                    serde_json::Value::Object(m) => m.get(segment)?,
                    serde_json::Value::Array(a) => a.get(segment.parse::<usize>().ok()?)?,
                    _ => return None,
                };
            }
            Some(from_tree(at))
        }
        Some(_) if !plan.rest.is_empty() => None,
        Some(cell) => Some(cell.clone()),
        None => None,
    };
    match found {
        Some(c) => Some(c),
        None => plan
            .aliases
            .iter()
            .find_map(|a| cells[*a].as_ref())
            .cloned(),
    }
}

/// A cell for a message: its text, or its kind.
fn describe(cell: &Cell<'_>) -> String {
    match cell {
        Cell::Str(s) => format!("{s:?}"),
        Cell::I64(v) => v.to_string(),
        Cell::U64(v) => v.to_string(),
        Cell::F64(v) => v.to_string(),
        other => other.kind().to_string(),
    }
}

fn wrong(field: &FieldDef, found: &'static str) -> DecodeError {
    DecodeError::WrongType {
        field: field.name.clone(),
        expected: field.ty.expected(),
        found,
    }
}

/// A cell as a number: JSON numbers, and numeric strings when the field coerces.
fn number(field: &FieldDef, cell: &Cell<'_>) -> Result<f64, DecodeError> {
    match cell {
        Cell::F64(v) => Ok(*v),
        Cell::I64(v) => Ok(*v as f64),
        Cell::U64(v) => Ok(*v as f64),
        Cell::Str(s) if field.coerce => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| invalid(field, format!("{s:?} is not a number"))),
        other => Err(wrong(field, other.kind())),
    }
}

fn bounded(field: &FieldDef, v: f64) -> Result<f64, DecodeError> {
    if let Some(lo) = field.exclusive_min
        && v <= lo
    {
        return Err(invalid(field, format!("{v} must be greater than {lo}")));
    }
    let lo = field.min.unwrap_or(f64::NEG_INFINITY);
    let hi = field.max.unwrap_or(f64::INFINITY);
    if !(lo..=hi).contains(&v) {
        return Err(invalid(
            field,
            format!("{v} is outside the plausible range [{lo}, {hi}]"),
        ));
    }
    Ok(v)
}

fn convert(field: &FieldDef, cell: Option<Cell<'_>>) -> Result<Value, DecodeError> {
    let cell = match cell {
        None | Some(Cell::Null) if field.nullable => return Ok(Value::Null),
        None | Some(Cell::Null) => return Err(DecodeError::Missing(field.name.clone())),
        Some(c) => c,
    };
    match field.ty {
        FieldType::Double => Ok(Value::Double(bounded(field, number(field, &cell)?)?)),
        FieldType::Long => {
            let v = match cell {
                Cell::I64(v) => v as f64,
                Cell::U64(v) => v as f64,
                ref other => number(field, other)?,
            };
            let v = bounded(field, v)?;
            if v.fract() != 0.0 || v.abs() > 9.007_199_254_740_992e15 {
                return Err(invalid(field, format!("{v} is not a whole number")));
            }
            Ok(Value::Long(v as i64))
        }
        FieldType::Bool => match cell {
            Cell::Bool(b) => Ok(Value::Bool(b)),
            Cell::Str(s) if field.coerce => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(invalid(field, format!("{s:?} is not true or false"))),
            },
            other => Err(wrong(field, other.kind())),
        },
        FieldType::String => {
            let text: Cow<'_, str> = match cell {
                Cell::Str(s) => s,
                Cell::I64(v) if field.coerce => Cow::Owned(v.to_string()),
                Cell::U64(v) if field.coerce => Cow::Owned(v.to_string()),
                other => return Err(wrong(field, other.kind())),
            };
            match &field.values {
                None => Ok(Value::Str(text.into_owned())),
                Some(values) => {
                    let found = values.iter().position(|v| *v == text).or_else(|| {
                        field
                            .coerce
                            .then(|| {
                                values
                                    .iter()
                                    .position(|v| v.eq_ignore_ascii_case(text.trim()))
                            })
                            .flatten()
                    });
                    match found {
                        Some(i) => Ok(Value::Enum(i as u32)),
                        None => Err(invalid(
                            field,
                            format!("{text:?} is not one of {}", values.join(", ")),
                        )),
                    }
                }
            }
        }
        FieldType::Timestamp => {
            let parse = field.time.as_ref().ok_or_else(|| wrong(field, "a value"))?;
            timestamp(field, parse, &cell).map(Value::Time)
        }
    }
}

fn timestamp(field: &FieldDef, parse: &TimeParse, cell: &Cell<'_>) -> Result<i64, DecodeError> {
    let epoch = |scale: f64| -> Result<i64, DecodeError> {
        let v = number(field, cell)?;
        let ms = (v * scale).round();
        if !ms.is_finite() || ms.abs() > 1e15 {
            return Err(invalid(field, format!("{v} is not a plausible epoch time")));
        }
        Ok(ms as i64)
    };
    match &parse.format {
        TimeFormat::EpochS => epoch(1e3),
        TimeFormat::EpochMs => epoch(1.0),
        TimeFormat::EpochUs => {
            let v = number(field, cell)?;
            Ok((v / 1e3).floor() as i64)
        }
        TimeFormat::Rfc3339 => match cell {
            Cell::Str(s) => {
                parse_timestamp_ms(s, Offset::Required).map_err(|e| invalid(field, e.to_string()))
            }
            other => Err(wrong(field, other.kind())),
        },
        TimeFormat::Pattern(pattern) => match cell {
            Cell::Str(s) => pattern_time(field, parse, pattern, s),
            other => Err(wrong(field, other.kind())),
        },
    }
}

fn pattern_time(
    field: &FieldDef,
    parse: &TimeParse,
    pattern: &str,
    text: &str,
) -> Result<i64, DecodeError> {
    let bad = |why: String| invalid(field, format!("{text:?} does not match {pattern:?}: {why}"));
    if !parse.format.is_zoneless() {
        return DateTime::parse_from_str(text, pattern)
            .map(|t| t.timestamp_millis())
            .map_err(|e| bad(e.to_string()));
    }
    let naive = NaiveDateTime::parse_from_str(text, pattern)
        .or_else(|e| {
            // A date-only pattern means midnight.
            NaiveDate::parse_from_str(text, pattern)
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
                .map_err(|_| e)
        })
        .map_err(|e| bad(e.to_string()))?;
    let Some(zone) = parse.zone else {
        return Ok(naive.and_utc().timestamp_millis());
    };
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.timestamp_millis()),
        LocalResult::Ambiguous(early, late) => match parse.ambiguous {
            Ambiguous::Earliest => Ok(early.timestamp_millis()),
            Ambiguous::Latest => Ok(late.timestamp_millis()),
            Ambiguous::Reject => Err(invalid(
                field,
                format!(
                    "{text:?} happens twice in {} (a daylight-saving change); set ambiguous = \"earliest\" or \"latest\" in the definition",
                    zone.name()
                ),
            )),
        },
        LocalResult::None => Err(invalid(
            field,
            format!(
                "{text:?} does not exist in {} (skipped by a daylight-saving change)",
                zone.name()
            ),
        )),
    }
}

/// Deserializes the top-level object into one optional cell per member of interest.
struct TopLevel<'d, 'c, 'de> {
    decoder: &'d Decoder,
    /// Capture route members only.
    routes_only: bool,
    /// Where each member of interest goes; the first one seen twice is returned.
    cells: &'c mut Cells<'de>,
}

/// One slot per member of interest, on the stack for any realistic definition set.
type Cells<'de> = SmallVec<[Option<Cell<'de>>; 24]>;

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_, 'de> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_, 'de> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let cells = self.cells;
        let mut duplicate = None;
        let mut previous = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            let found = self.decoder.find_member(&key.0, previous);
            if found.is_some() {
                previous = found;
            }
            let wanted = found.filter(|&i| !self.routes_only || self.decoder.is_route_member(i));
            let Some(i) = wanted else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if cells[i].is_some() {
                duplicate = duplicate.or(Some(i));
            }
            cells[i] = Some(if self.decoder.nested[i] {
                Cell::Tree(Box::new(map.next_value::<serde_json::Value>()?))
            } else {
                map.next_value_seed(CellSeed)?
            });
        }
        Ok(duplicate)
    }
}

/// A string that borrows from the record unless JSON escapes forced a copy.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_str(CellSeed)? {
            Cell::Str(s) => Ok(Text(s)),
            _ => Err(de::Error::custom("expected a string")),
        }
    }
}

struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cell::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Cell::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Cell::I64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Cell::U64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Cell::F64(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cell::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cell::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cell::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Object)
    }
}

#[cfg(test)]
mod tests;
