//! TOML text → validated [`StreamDef`]. Unknown keys, wrong types, missing references and
//! reserved names are errors naming the file, line and column of the offending value.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use super::{
    Aggregate, Ambiguous, Condition, DEFAULT_MAX_CLOCK_SKEW_MS, DefinitionError, Detect,
    DetectScope, FieldDef, FieldType, MetricDef, MetricSource, RESERVED_COLUMNS,
    RESERVED_STREAM_NAMES, RollupDef, Route, StreamDef, TimeFormat, TimeParse,
};
use crate::time::parse_duration_ms;
use crate::window::WindowSpec;

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: S<String>,
    key: S<String>,
    dedup: Option<S<String>>,
    route: Option<RawRoute>,
    time: S<RawTime>,
    fields: S<OrderedFields>,
    #[serde(default)]
    metrics: Vec<S<RawMetric>>,
    #[serde(default)]
    rollups: Vec<S<RawRollup>>,
    #[serde(default)]
    windows: Vec<S<RawWindow>>,
    /// `ndjson`: several events per record, one per line.
    framing: Option<S<String>>,
    /// `gzip`: records may arrive gzip-compressed.
    compression: Option<S<String>>,
    /// What the stream is, for docs and generated table comments.
    #[serde(default)]
    doc: String,
}

/// `[fields.<name>]` tables in the order the file declares them (the raw table's column
/// order), each with its span.
struct OrderedFields(Vec<(String, S<RawField>)>);

impl<'de> Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of fields, e.g. [fields.price] type = \"double\"")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedFields, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, S<RawField>>()? {
                    out.push((k, v));
                }
                Ok(OrderedFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    field: Option<S<String>>,
    value: Option<S<String>>,
    /// The Kafka topic the stream's records come from (instead of a field and value).
    topic: Option<S<String>>,
    /// A Kafka header whose value (`value`) marks the stream's records (instead of a field).
    header: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTime {
    field: S<String>,
    format: Option<S<String>>,
    zone: Option<S<String>>,
    ambiguous: Option<S<String>>,
    allowed_lateness: Option<S<String>>,
    max_clock_skew: Option<S<String>>,
    dedup_horizon: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(rename = "type")]
    ty: S<String>,
    #[serde(default)]
    nullable: bool,
    path: Option<S<String>>,
    column: Option<S<String>>,
    min: Option<S<f64>>,
    exclusive_min: Option<S<f64>>,
    max: Option<S<f64>>,
    values: Option<S<Vec<String>>>,
    #[serde(default)]
    coerce: bool,
    format: Option<S<String>>,
    zone: Option<S<String>>,
    ambiguous: Option<S<String>>,
    required_when: Option<S<toml::Table>>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    doc: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Option<S<String>>,
    field: Option<S<String>>,
    value: Option<S<f64>>,
    when: Option<S<toml::Table>>,
    aggregates: S<Vec<S<String>>>,
    weight: Option<S<String>>,
    detect: Option<S<String>>,
    detect_on: Option<S<String>>,
    detect_window: Option<S<String>>,
    detect_scope: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollup {
    name: S<String>,
    #[serde(default)]
    metrics: Vec<S<String>>,
    #[serde(default)]
    distinct: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    spec: S<String>,
}

/// Words Athena (Trino) and DataFusion reserve: a column or stream named so would need quoting
/// in every query.
const SQL_RESERVED: &[&str] = &[
    "all",
    "alter",
    "and",
    "as",
    "between",
    "by",
    "case",
    "cast",
    "constraint",
    "create",
    "cross",
    "cube",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "deallocate",
    "delete",
    "describe",
    "distinct",
    "drop",
    "else",
    "end",
    "escape",
    "except",
    "execute",
    "exists",
    "extract",
    "false",
    "for",
    "from",
    "full",
    "group",
    "grouping",
    "having",
    "in",
    "inner",
    "insert",
    "intersect",
    "into",
    "is",
    "join",
    "left",
    "like",
    "localtime",
    "localtimestamp",
    "natural",
    "normalize",
    "not",
    "null",
    "on",
    "or",
    "order",
    "outer",
    "prepare",
    "recursive",
    "right",
    "rollup",
    "select",
    "table",
    "then",
    "true",
    "uescape",
    "union",
    "unnest",
    "using",
    "values",
    "when",
    "where",
    "with",
    "window",
];

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> DefinitionError {
        DefinitionError::at(self.file, self.text, span.start, message)
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_column_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn parse_time(
    ctx: &Ctx<'_>,
    format: Option<&S<String>>,
    zone: Option<&S<String>>,
    ambiguous: Option<&S<String>>,
    default_format: TimeFormat,
) -> Result<TimeParse, DefinitionError> {
    let format = match format {
        None => default_format,
        Some(f) => match f.get_ref().as_str() {
            "rfc3339" => TimeFormat::Rfc3339,
            "epoch_s" => TimeFormat::EpochS,
            "epoch_ms" => TimeFormat::EpochMs,
            "epoch_us" => TimeFormat::EpochUs,
            pattern if pattern.contains('%') => {
                use chrono::format::{Item, StrftimeItems};
                if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
                    return Err(ctx.err(
                        f.span(),
                        format!("time format {pattern:?} is not a valid chrono strftime pattern"),
                    ));
                }
                TimeFormat::Pattern(pattern.to_string())
            }
            other => {
                return Err(ctx.err(
                    f.span(),
                    format!(
                        "unknown time format {other:?}: use rfc3339, epoch_s, epoch_ms, epoch_us or a strftime pattern such as \"%Y-%m-%d %H:%M:%S\""
                    ),
                ));
            }
        },
    };
    let zone = match zone {
        None => None,
        Some(z) => {
            if !format.is_zoneless() {
                return Err(ctx.err(
                    z.span(),
                    "zone applies only to a strftime pattern without an offset (%z): this format carries its own",
                ));
            }
            Some(z.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                ctx.err(
                    z.span(),
                    format!(
                        "unknown time zone {:?} (expected an IANA name such as Europe/London or America/New_York)",
                        z.get_ref()
                    ),
                )
            })?)
        }
    };
    let ambiguous = match ambiguous.map(|a| (a.get_ref().as_str(), a.span())) {
        None => Ambiguous::Reject,
        Some(("earliest", _)) => Ambiguous::Earliest,
        Some(("latest", _)) => Ambiguous::Latest,
        Some(("reject", _)) => Ambiguous::Reject,
        Some((other, span)) => {
            return Err(ctx.err(
                span,
                format!("ambiguous = {other:?}: use \"earliest\", \"latest\" or \"reject\""),
            ));
        }
    };
    Ok(TimeParse {
        format,
        zone,
        ambiguous,
    })
}

/// Parses and validates one definition. `file` labels errors (a path, or `streams/x.toml` for
/// the embedded ones).
pub fn parse(file: &str, text: &str) -> Result<StreamDef, DefinitionError> {
    let ctx = Ctx { file, text };
    let raw: RawStream = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        DefinitionError::at(file, text, at, e.message().trim().to_string())
    })?;

    let name = raw.name.get_ref();
    if !is_identifier(name) || name.len() > 64 {
        return Err(ctx.err(
            raw.name.span(),
            format!(
                "stream name {name:?} must match [a-z][a-z0-9_]* (at most 64 characters): it names a table and a partition"
            ),
        ));
    }
    if RESERVED_STREAM_NAMES.contains(&name.as_str()) || SQL_RESERVED.contains(&name.as_str()) {
        return Err(ctx.err(
            raw.name.span(),
            format!("stream name {name:?} is reserved (a lake table or an SQL keyword)"),
        ));
    }

    // Fields, in declared order; the time field first when it is not declared among them.
    let time_name = raw.time.get_ref().field.get_ref().clone();
    let mut fields: Vec<FieldDef> = Vec::new();
    let raw_fields: Vec<(String, S<RawField>)> = raw.fields.into_inner().0;
    if !raw_fields.iter().any(|(n, _)| *n == time_name) {
        let time = raw.time.get_ref();
        let parsed = parse_time(
            &ctx,
            time.format.as_ref(),
            time.zone.as_ref(),
            time.ambiguous.as_ref(),
            TimeFormat::Rfc3339,
        )?;
        fields.push(FieldDef {
            name: time_name.clone(),
            column: time_name.to_lowercase(),
            ty: FieldType::Timestamp,
            nullable: false,
            path: vec![time_name.clone()],
            min: None,
            exclusive_min: None,
            max: None,
            values: None,
            coerce: false,
            time: Some(parsed),
            required_when: None,
            aliases: Vec::new(),
            doc: "Event time (UTC)".into(),
        });
    }
    for (fname, f) in &raw_fields {
        let span = f.span();
        let f = f.get_ref();
        let ty = match f.ty.get_ref().as_str() {
            "string" => FieldType::String,
            "double" => FieldType::Double,
            "long" => FieldType::Long,
            "bool" => FieldType::Bool,
            "timestamp" => FieldType::Timestamp,
            other => {
                return Err(ctx.err(
                    f.ty.span(),
                    format!(
                        "field {fname:?}: unknown type {other:?} (expected string, double, long, bool or timestamp)"
                    ),
                ));
            }
        };
        let column = match &f.column {
            Some(c) => {
                if !is_column_name(c.get_ref()) {
                    return Err(ctx.err(
                        c.span(),
                        format!(
                            "column {:?} must match [a-z_][a-z0-9_]* (Glue and Athena lower-case every column name)",
                            c.get_ref()
                        ),
                    ));
                }
                c.get_ref().clone()
            }
            None => {
                let lower = fname.to_lowercase();
                if !is_column_name(&lower) {
                    return Err(ctx.err(
                        span,
                        format!(
                            "field {fname:?} lower-cases to {lower:?}, which is not a valid column name: set column = \"...\" ([a-z_][a-z0-9_]*)"
                        ),
                    ));
                }
                lower
            }
        };
        if RESERVED_COLUMNS.contains(&column.as_str()) || SQL_RESERVED.contains(&column.as_str()) {
            return Err(ctx.err(
                f.column.as_ref().map_or(span.clone(), |c| c.span()),
                format!(
                    "field {fname:?}: column {column:?} is reserved (a partition or lineage column, or an SQL keyword): set column = \"...\""
                ),
            ));
        }
        if let Some(other) = fields.iter().find(|g| g.column == column) {
            return Err(ctx.err(
                span,
                format!(
                    "field {fname:?}: column {column:?} is already used by field {:?} (columns are compared lower-cased)",
                    other.name
                ),
            ));
        }
        let path = match &f.path {
            None => vec![fname.clone()],
            Some(p) => parse_pointer(p.get_ref()).ok_or_else(|| {
                ctx.err(
                    p.span(),
                    format!(
                        "path {:?} is not a JSON pointer (expected e.g. \"/readings/no2\")",
                        p.get_ref()
                    ),
                )
            })?,
        };
        for (bound, what) in [
            (&f.min, "min"),
            (&f.exclusive_min, "exclusive_min"),
            (&f.max, "max"),
        ] {
            if let Some(b) = bound
                && !ty.is_numeric()
            {
                return Err(ctx.err(
                    b.span(),
                    format!(
                        "field {fname:?}: {what} applies to double and long fields, not {}",
                        ty.as_str()
                    ),
                ));
            }
        }
        if let Some(v) = &f.values {
            if ty != FieldType::String {
                return Err(ctx.err(
                    v.span(),
                    format!("field {fname:?}: values (an enumeration) applies to string fields"),
                ));
            }
            if v.get_ref().is_empty() {
                return Err(ctx.err(v.span(), format!("field {fname:?}: values is empty")));
            }
        }
        let time = if ty == FieldType::Timestamp {
            let (format, zone, ambiguous) = if *fname == time_name {
                let t = raw.time.get_ref();
                for (own, theirs) in [
                    (&f.format, &t.format),
                    (&f.zone, &t.zone),
                    (&f.ambiguous, &t.ambiguous),
                ] {
                    if let (Some(a), Some(_)) = (own, theirs) {
                        return Err(ctx.err(
                            a.span(),
                            format!(
                                "field {fname:?} is the time field: give its format, zone and ambiguous once, in [time] or here"
                            ),
                        ));
                    }
                }
                (
                    f.format.as_ref().or(t.format.as_ref()),
                    f.zone.as_ref().or(t.zone.as_ref()),
                    f.ambiguous.as_ref().or(t.ambiguous.as_ref()),
                )
            } else {
                (f.format.as_ref(), f.zone.as_ref(), f.ambiguous.as_ref())
            };
            Some(parse_time(
                &ctx,
                format,
                zone,
                ambiguous,
                TimeFormat::Rfc3339,
            )?)
        } else {
            for (opt, what) in [
                (&f.format, "format"),
                (&f.zone, "zone"),
                (&f.ambiguous, "ambiguous"),
            ] {
                if let Some(o) = opt {
                    return Err(ctx.err(
                        o.span(),
                        format!("field {fname:?}: {what} applies to timestamp fields"),
                    ));
                }
            }
            None
        };
        fields.push(FieldDef {
            name: fname.clone(),
            column,
            ty,
            nullable: f.nullable,
            path,
            min: f.min.as_ref().map(|b| *b.get_ref()),
            exclusive_min: f.exclusive_min.as_ref().map(|b| *b.get_ref()),
            max: f.max.as_ref().map(|b| *b.get_ref()),
            values: f.values.as_ref().map(|v| v.get_ref().clone()),
            coerce: f.coerce,
            time,
            required_when: None,
            aliases: f.aliases.clone(),
            doc: f.doc.clone(),
        });
    }
    // Conditions refer to fields, so they resolve once every field is known.
    for (fname, f) in &raw_fields {
        let f = f.get_ref();
        if let Some(when) = &f.required_when {
            if !f.nullable {
                return Err(ctx.err(
                    when.span(),
                    format!(
                        "field {fname:?}: required_when applies to nullable fields (it is always required)"
                    ),
                ));
            }
            let condition = condition(&ctx, &fields, when)?;
            if let Some(target) = fields.iter_mut().find(|g| g.name == *fname) {
                target.required_when = Some(condition);
            }
        }
    }

    let find = |name: &S<String>, role: &str| -> Result<usize, DefinitionError> {
        fields
            .iter()
            .position(|f| f.name == *name.get_ref())
            .ok_or_else(|| {
                ctx.err(
                    name.span(),
                    format!(
                        "{role} {:?} is not a field of this stream (fields: {})",
                        name.get_ref(),
                        fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })
    };

    let key = find(&raw.key, "key")?;
    if !matches!(fields[key].ty, FieldType::String | FieldType::Long) || fields[key].nullable {
        return Err(ctx.err(
            raw.key.span(),
            format!(
                "key {:?} must be a string or long field that is not nullable",
                raw.key.get_ref()
            ),
        ));
    }
    let dedup = match &raw.dedup {
        None => None,
        Some(d) => {
            let i = find(d, "dedup")?;
            if !matches!(fields[i].ty, FieldType::String | FieldType::Long) || fields[i].nullable {
                return Err(ctx.err(
                    d.span(),
                    format!(
                        "dedup {:?} must be a string or long field that is not nullable",
                        d.get_ref()
                    ),
                ));
            }
            Some(i)
        }
    };
    let time_field = find(&raw.time.get_ref().field, "time field")?;
    if fields[time_field].ty != FieldType::Timestamp || fields[time_field].nullable {
        return Err(ctx.err(
            raw.time.get_ref().field.span(),
            format!(
                "time field {time_name:?} must be a timestamp field that is not nullable (declare it with type = \"timestamp\", or only in [time])"
            ),
        ));
    }
    let allowed_lateness_ms = match &raw.time.get_ref().allowed_lateness {
        None => None,
        Some(l) => Some(
            parse_duration_ms(l.get_ref())
                .map_err(|e| ctx.err(l.span(), format!("allowed_lateness: {e}")))?,
        ),
    };
    let max_clock_skew_ms = match &raw.time.get_ref().max_clock_skew {
        None => DEFAULT_MAX_CLOCK_SKEW_MS,
        Some(l) => parse_duration_ms(l.get_ref())
            .map_err(|e| ctx.err(l.span(), format!("max_clock_skew: {e}")))?,
    };
    let dedup_horizon_ms = match &raw.time.get_ref().dedup_horizon {
        None => crate::dedup::DEFAULT_DEDUP_HORIZON_MS,
        Some(h) if dedup.is_none() => {
            return Err(ctx.err(
                h.span(),
                "dedup_horizon needs a dedup field: name the field that identifies an event with top-level dedup = \"...\"",
            ));
        }
        Some(h) => parse_duration_ms(h.get_ref())
            .map_err(|e| ctx.err(h.span(), format!("dedup_horizon: {e}")))?,
    };
    let ndjson = match &raw.framing {
        None => false,
        Some(f) if f.get_ref() == "ndjson" => true,
        Some(f) if f.get_ref() == "json" => false,
        Some(f) => {
            return Err(ctx.err(
                f.span(),
                format!(
                    "framing {:?}: expected \"json\" (one event per record, the default) or \"ndjson\" (one per line)",
                    f.get_ref()
                ),
            ));
        }
    };
    let gzip = match &raw.compression {
        None => false,
        Some(c) if c.get_ref() == "gzip" => true,
        Some(c) if c.get_ref() == "none" => false,
        Some(c) => {
            return Err(ctx.err(
                c.span(),
                format!(
                    "compression {:?}: expected \"gzip\" or \"none\"",
                    c.get_ref()
                ),
            ));
        }
    };
    let (route, topic, header_route) = match &raw.route {
        None => (None, None, None),
        Some(r) => match (&r.field, &r.value, &r.topic, &r.header) {
            (Some(field), Some(value), None, None) => (
                Some(Route {
                    field: field.get_ref().clone(),
                    value: value.get_ref().clone(),
                }),
                None,
                None,
            ),
            (None, None, Some(topic), None) => (None, Some(topic.get_ref().clone()), None),
            (None, Some(value), None, Some(header)) => (
                None,
                None,
                Some((header.get_ref().clone(), value.get_ref().clone())),
            ),
            (_, _, Some(topic), _) => {
                return Err(ctx.err(
                    topic.span(),
                    "[route] takes either topic, or field and value, or header and value",
                ));
            }
            (Some(field), _, _, Some(_)) => {
                return Err(ctx.err(
                    field.span(),
                    "[route] takes either field and value, or header and value, not both",
                ));
            }
            (Some(field), None, None, None) => {
                return Err(ctx.err(field.span(), "[route] field needs a value"));
            }
            (None, None, None, Some(header)) => {
                return Err(ctx.err(header.span(), "[route] header needs a value"));
            }
            (None, Some(value), None, None) => {
                return Err(ctx.err(value.span(), "[route] value needs a field or a header"));
            }
            (None, None, None, None) => {
                return Err(ctx.err(
                    raw.name.span(),
                    "[route] needs field and value, header and value, or topic",
                ));
            }
        },
    };

    // Windows.
    let mut windows: Vec<WindowSpec> = Vec::new();
    for w in &raw.windows {
        let spec = WindowSpec::parse(w.get_ref().spec.get_ref())
            .map_err(|e| ctx.err(w.get_ref().spec.span(), e.to_string()))?;
        if windows.contains(&spec) {
            return Err(ctx.err(
                w.get_ref().spec.span(),
                format!("window {} is declared twice", spec.name()),
            ));
        }
        windows.push(spec);
    }
    if windows.is_empty() && !raw.metrics.is_empty() {
        return Err(ctx.err(
            raw.name.span(),
            "metrics are declared but no [[windows]]: add e.g. [[windows]] spec = \"tumbling:1m\"",
        ));
    }
    let shortest_tumbling = windows
        .iter()
        .filter_map(|w| match w {
            WindowSpec::Tumbling { size_ms } => Some((*size_ms, *w)),
            _ => None,
        })
        .min_by_key(|(size, _)| *size)
        .map(|(_, w)| w);

    // Metrics.
    let mut metrics: Vec<MetricDef> = Vec::new();
    for m in &raw.metrics {
        let span = m.span();
        let m = m.get_ref();
        let (source, default_name) = match (&m.field, &m.value) {
            (Some(f), None) => {
                let i = find(f, "metric field")?;
                (MetricSource::Field(i), f.get_ref().clone())
            }
            (None, Some(v)) => (MetricSource::Constant(*v.get_ref()), String::new()),
            (Some(_), Some(v)) => {
                return Err(ctx.err(
                    v.span(),
                    "a metric takes either field = \"...\" or value = <number>, not both",
                ));
            }
            (None, None) => {
                return Err(ctx.err(
                    span,
                    "a metric needs field = \"...\" (or value = <number> with name = \"...\")",
                ));
            }
        };
        let name = match &m.name {
            Some(n) => {
                if !is_identifier(n.get_ref()) {
                    return Err(ctx.err(
                        n.span(),
                        format!("metric name {:?} must match [a-z][a-z0-9_]*", n.get_ref()),
                    ));
                }
                n.get_ref().clone()
            }
            None if default_name.is_empty() => {
                return Err(ctx.err(span, "a metric with value = <number> needs a name"));
            }
            None => default_name,
        };
        if metrics.iter().any(|x| x.name == name) {
            return Err(ctx.err(
                m.name
                    .as_ref()
                    .or(m.field.as_ref())
                    .map_or(span.clone(), |s| s.span()),
                format!("metric {name:?} is declared twice (give one a name = \"...\")"),
            ));
        }
        let numeric = match &source {
            MetricSource::Field(i) => fields[*i].ty.is_numeric(),
            MetricSource::Constant(_) => true,
        };
        let mut aggregates = Vec::new();
        for a in m.aggregates.get_ref() {
            let agg = Aggregate::parse(a.get_ref()).ok_or_else(|| {
                ctx.err(
                    a.span(),
                    format!(
                        "unknown aggregate {:?} (expected one of {})",
                        a.get_ref(),
                        Aggregate::ALL.map(Aggregate::as_str).join(", ")
                    ),
                )
            })?;
            if agg.is_numeric() && !numeric {
                return Err(ctx.err(
                    a.span(),
                    format!(
                        "aggregate {} needs a numeric field; {name:?} is not (count and distinct work on any field)",
                        agg.as_str()
                    ),
                ));
            }
            if agg == Aggregate::Distinct && matches!(source, MetricSource::Field(i) if i == key) {
                return Err(ctx.err(
                    a.span(),
                    "distinct of the key is always 1 per key: declare distinct = [\"<key>\"] on a [[rollups]] instead",
                ));
            }
            if aggregates.contains(&agg) {
                return Err(ctx.err(
                    a.span(),
                    format!("aggregate {} is listed twice", agg.as_str()),
                ));
            }
            aggregates.push(agg);
        }
        if aggregates.is_empty() {
            return Err(ctx.err(m.aggregates.span(), "aggregates is empty"));
        }
        aggregates.sort();
        let weight = match &m.weight {
            None => None,
            Some(w) => {
                let i = find(w, "weight")?;
                if !fields[i].ty.is_numeric() {
                    return Err(ctx.err(
                        w.span(),
                        format!("weight {:?} must be numeric", w.get_ref()),
                    ));
                }
                Some(i)
            }
        };
        let detect = match m.detect.as_ref().map(|d| (d.get_ref().as_str(), d.span())) {
            None | Some(("none", _)) => Detect::None,
            Some(("level", _)) => Detect::Level,
            Some(("returns", _)) => Detect::Returns,
            Some((other, span)) => {
                return Err(ctx.err(
                    span,
                    format!("detect = {other:?}: use \"level\", \"returns\" or \"none\""),
                ));
            }
        };
        let detect_on = match &m.detect_on {
            None => Aggregate::Avg,
            Some(d) => Aggregate::parse(d.get_ref()).ok_or_else(|| {
                ctx.err(
                    d.span(),
                    format!("detect_on {:?} is not an aggregate", d.get_ref()),
                )
            })?,
        };
        let detect_scope = match m
            .detect_scope
            .as_ref()
            .map(|d| (d.get_ref().as_str(), d.span()))
        {
            None | Some(("keys", _)) => DetectScope::Keys,
            Some(("rollups", _)) => DetectScope::Rollups,
            Some(("all", _)) => DetectScope::All,
            Some((other, span)) => {
                return Err(ctx.err(
                    span,
                    format!("detect_scope = {other:?}: use \"keys\", \"rollups\" or \"all\""),
                ));
            }
        };
        let mut detect_window = None;
        if detect != Detect::None {
            if !aggregates.contains(&detect_on) {
                return Err(ctx.err(
                    m.detect_on
                        .as_ref()
                        .map_or(m.aggregates.span(), |d| d.span()),
                    format!(
                        "the detector watches {} of {name:?}, which is not among its aggregates",
                        detect_on.as_str()
                    ),
                ));
            }
            detect_window = Some(match &m.detect_window {
                Some(w) => {
                    let spec = WindowSpec::parse(w.get_ref())
                        .map_err(|e| ctx.err(w.span(), e.to_string()))?;
                    if !windows.contains(&spec) {
                        return Err(ctx.err(
                            w.span(),
                            format!(
                                "detect_window {} is not one of this stream's [[windows]]",
                                spec.name()
                            ),
                        ));
                    }
                    spec
                }
                None => shortest_tumbling.ok_or_else(|| {
                    ctx.err(
                        span.clone(),
                        "detection needs a tumbling window (or detect_window = \"...\" naming one of the stream's windows)",
                    )
                })?,
            });
        }
        let when = m
            .when
            .as_ref()
            .map(|w| condition(&ctx, &fields, w))
            .transpose()?;
        metrics.push(MetricDef {
            name,
            source,
            when,
            aggregates,
            weight,
            detect,
            detect_on,
            detect_window,
            detect_scope,
            rollup_only: false,
        });
    }

    // Rollups.
    let mut rollups: Vec<RollupDef> = Vec::new();
    for r in &raw.rollups {
        let r = r.get_ref();
        if !is_identifier(r.name.get_ref()) {
            return Err(ctx.err(
                r.name.span(),
                format!(
                    "rollup name {:?} must match [a-z][a-z0-9_]*",
                    r.name.get_ref()
                ),
            ));
        }
        if rollups.iter().any(|x| x.name == *r.name.get_ref()) {
            return Err(ctx.err(r.name.span(), "rollup declared twice"));
        }
        let mut ms = Vec::new();
        for m in &r.metrics {
            let i = metrics
                .iter()
                .position(|x| x.name == *m.get_ref())
                .ok_or_else(|| {
                    ctx.err(
                        m.span(),
                        format!("rollup metric {:?} is not a declared metric", m.get_ref()),
                    )
                })?;
            ms.push(i);
        }
        let mut distinct = Vec::new();
        for d in &r.distinct {
            let field = find(d, "distinct field")?;
            distinct.push(field);
            // The count is a metric of its own, named after the field, fed to rollups only
            // (per key it would count one key's values; of the key itself, always 1).
            let name = &fields[field].name;
            let at = match metrics.iter().position(|m| m.name == *name) {
                Some(i) if metrics[i].rollup_only => i,
                Some(_) => {
                    return Err(ctx.err(
                        d.span(),
                        format!(
                            "distinct {name:?}: a metric named {name:?} exists; add \"distinct\" to its aggregates and list it in this rollup's metrics instead"
                        ),
                    ));
                }
                None => {
                    metrics.push(MetricDef {
                        name: name.clone(),
                        source: MetricSource::Field(field),
                        when: None,
                        aggregates: vec![Aggregate::Count, Aggregate::Distinct],
                        weight: None,
                        detect: Detect::None,
                        detect_on: Aggregate::Count,
                        detect_window: None,
                        detect_scope: DetectScope::Rollups,
                        rollup_only: true,
                    });
                    metrics.len() - 1
                }
            };
            if !ms.contains(&at) {
                ms.push(at);
            }
        }
        if ms.is_empty() && distinct.is_empty() {
            return Err(ctx.err(r.name.span(), "a rollup needs metrics or distinct"));
        }
        rollups.push(RollupDef {
            name: r.name.get_ref().clone(),
            metrics: ms,
            distinct,
        });
    }
    if metrics
        .iter()
        .any(|m| m.detect != Detect::None && m.detect_scope != DetectScope::Keys)
        && rollups.is_empty()
    {
        return Err(ctx.err(
            raw.name.span(),
            "detect_scope names rollups, but the stream declares no [[rollups]]",
        ));
    }

    Ok(StreamDef {
        name: name.clone(),
        file: file.to_string(),
        key,
        dedup,
        route,
        topic,
        header_route,
        ndjson,
        gzip,
        time_field,
        allowed_lateness_ms,
        max_clock_skew_ms,
        dedup_horizon_ms,
        fields,
        metrics,
        rollups,
        windows,
        doc: raw.doc.clone(),
    })
}

/// `{ field = "value" }` or `{ field = ["a", "b"] }`: one string field, one or more values.
fn condition(
    ctx: &Ctx<'_>,
    fields: &[FieldDef],
    table: &S<toml::Table>,
) -> Result<Condition, DefinitionError> {
    let mut entries = table.get_ref().iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err(ctx.err(
            table.span(),
            "a condition names exactly one field: { field = \"value\" } or { field = [\"a\", \"b\"] }",
        ));
    };
    let field = fields.iter().position(|f| f.name == *name).ok_or_else(|| {
        ctx.err(
            table.span(),
            format!("condition field {name:?} is not a field of this stream"),
        )
    })?;
    if fields[field].ty != FieldType::String {
        return Err(ctx.err(
            table.span(),
            format!("condition field {name:?} must be a string field"),
        ));
    }
    let values: Vec<String> = match value {
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ctx.err(table.span(), "condition values must be strings"))?,
        _ => return Err(ctx.err(table.span(), "condition values must be strings")),
    };
    if let Some(allowed) = &fields[field].values
        && let Some(v) = values.iter().find(|v| !allowed.contains(v))
    {
        return Err(ctx.err(
            table.span(),
            format!(
                "condition value {v:?} is not one of field {name:?}'s values ({})",
                allowed.join(", ")
            ),
        ));
    }
    Ok(Condition { field, values })
}

/// RFC 6901 JSON pointer → unescaped segments (`/a~1b/c` → `["a/b", "c"]`).
fn parse_pointer(text: &str) -> Option<Vec<String>> {
    let rest = text.strip_prefix('/')?;
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    (!segments.iter().any(String::is_empty)).then_some(segments)
}

#[cfg(test)]
pub(super) fn pointer(text: &str) -> Option<Vec<String>> {
    parse_pointer(text)
}
