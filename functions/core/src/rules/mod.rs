//! Alert rules: conditions over window and anomaly rows, with severity, cooldown and dedup.
//!
//! A rules file is TOML, one `[[rule]]` table per rule:
//!
//! ```toml
//! [[rule]]
//! name = "tsla-fast-move"
//! source = "windows"            # or "anomalies"
//! stream = "trades"             # optional filter (`scenario` is accepted too)
//! when = 'key == "TSLA" && window_name == "tumbling_1m" && metric == "price" && math::abs(change) > threshold'
//! threshold = 0.05              # optional; available as `threshold` in `when` and `value`
//! value = "change"              # optional; what the alert reports (default: avg or score)
//! severity = "critical"         # info, warning or critical
//! cooldown = "10m"              # per rule and key, in event time
//! ```
//!
//! Conditions are [evalexpr] expressions over the row's columns (see [`crate::schema`]), plus
//! `stream` (also `scenario`), `is_rollup` (a row with `scope = 'rollup'`) and, for windows,
//! `change` = (last − first) / first. Every mistake — TOML syntax, an unknown field, an
//! expression that does not parse or does not yield true/false, a stream that is not loaded, a
//! `metric == "…"` naming no metric of the stream — is an error at load time naming the rule
//! and its line, never a silent non-match at run time.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use evalexpr::{
    Context, DefaultNumericTypes, EvalexprError, EvalexprResult, Node, Value, build_operator_tree,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::schema::{self, ColumnType, Table};
use crate::stream::{StreamDef, StreamSet};
use crate::time::{format_rfc3339_ms, parse_duration_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Which table a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Windows,
    Anomalies,
}

impl Source {
    pub fn table(self) -> &'static Table {
        match self {
            Source::Windows => &schema::WINDOWS,
            Source::Anomalies => &schema::ANOMALIES,
        }
    }

    /// The source of an object key written by the aggregate function, if it is one.
    pub fn of_key(key: &str) -> Option<Source> {
        if key.starts_with("windows/") {
            Some(Source::Windows)
        } else if key.starts_with("anomalies/") {
            Some(Source::Anomalies)
        } else {
            None
        }
    }
}

#[derive(Debug, Error)]
pub enum RulesError {
    #[error("{file}: {message}")]
    Toml { file: String, message: String },
    #[error("{file}:{line}: rule {rule:?}: {message}")]
    Rule {
        file: String,
        line: usize,
        rule: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default, rename = "rule")]
    rules: Vec<toml::Spanned<RuleDef>>,
}

/// One `[[rule]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    /// Unique name; alerts carry it.
    name: String,
    /// What the rule is for, copied into the alert.
    description: Option<String>,
    source: Source,
    /// Only rows of this stream (a loaded definition's name).
    #[serde(alias = "scenario")]
    stream: Option<toml::Spanned<String>>,
    /// Boolean condition over the row.
    when: toml::Spanned<String>,
    /// Optional number available to `when`/`value` as `threshold` and reported in the alert.
    threshold: Option<f64>,
    /// Expression for the number the alert reports.
    value: Option<toml::Spanned<String>>,
    severity: Severity,
    /// Minimum event time between two alerts of this rule for one key (e.g. `10m`).
    #[serde(default)]
    cooldown: Option<toml::Spanned<String>>,
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub source: Source,
    /// Only rows of this stream.
    pub stream: Option<String>,
    pub when_text: String,
    when: Node<DefaultNumericTypes>,
    value: Option<Node<DefaultNumericTypes>>,
    pub threshold: Option<f64>,
    pub severity: Severity,
    pub cooldown_ms: i64,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Variables a rule on `source` may use.
pub fn variables(source: Source) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = source
        .table()
        .columns
        .iter()
        .map(|c| c.name.as_ref())
        .collect();
    names.extend(["scenario", "stream", "threshold", "is_rollup"]);
    if source == Source::Windows {
        names.push("change");
    }
    names
}

/// `metric == "X"` (either way round) anywhere in a condition: the metric names it compares.
fn compared_metrics(node: &Node<DefaultNumericTypes>, out: &mut Vec<String>) {
    use evalexpr::Operator;
    if matches!(node.operator(), Operator::Eq | Operator::Neq)
        && let [a, b] = node.children()
    {
        for (x, y) in [(a, b), (b, a)] {
            if let (
                Operator::VariableIdentifierRead { identifier },
                Operator::Const {
                    value: Value::String(name),
                },
            ) = (x.operator(), y.operator())
                && identifier == "metric"
            {
                out.push(name.clone());
            }
        }
    }
    for child in node.children() {
        compared_metrics(child, out);
    }
}

impl RuleSet {
    /// Parses and validates a rules file against the loaded stream definitions. `file` names
    /// it in errors.
    pub fn parse(text: &str, file: &str, streams: &StreamSet) -> Result<RuleSet, RulesError> {
        let parsed: RulesFile = toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map(|s| format!("line {}: ", line_of(text, s.start)))
                .unwrap_or_default();
            RulesError::Toml {
                file: file.to_string(),
                message: format!("{location}{}", e.message()),
            }
        })?;
        let mut rules: Vec<Rule> = Vec::with_capacity(parsed.rules.len());
        for spanned in parsed.rules {
            let rule_line = line_of(text, spanned.span().start);
            let def = spanned.into_inner();
            let fail = |line: usize, message: String| RulesError::Rule {
                file: file.to_string(),
                line,
                rule: def.name.clone(),
                message,
            };
            if rules.iter().any(|r| r.name == def.name) {
                return Err(fail(
                    rule_line,
                    "a rule with this name already exists".into(),
                ));
            }
            let known = variables(def.source);
            let compile = |expr: &toml::Spanned<String>, what: &str| {
                let line = line_of(text, expr.span().start);
                let node = build_operator_tree::<DefaultNumericTypes>(expr.get_ref())
                    .map_err(|e| fail(line, format!("`{what}` does not parse: {e}")))?;
                for id in node.iter_variable_identifiers() {
                    if !known.contains(&id) {
                        return Err(fail(
                            line,
                            format!(
                                "`{what}` uses unknown field `{id}`; {} rows have: {}",
                                def.source.table().name,
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Ok((node, line))
            };
            let (when, when_line) = compile(&def.when, "when")?;
            let stream = match &def.stream {
                None => None,
                Some(s) => {
                    if streams.get(s.get_ref()).is_none() {
                        return Err(fail(
                            line_of(text, s.span().start),
                            format!(
                                "stream {:?} is not loaded (loaded: {})",
                                s.get_ref(),
                                streams.names().join(", ")
                            ),
                        ));
                    }
                    Some(s.get_ref().clone())
                }
            };
            let mut metrics = Vec::new();
            compared_metrics(&when, &mut metrics);
            for metric in metrics {
                let candidates: Vec<&StreamDef> = streams
                    .streams()
                    .iter()
                    .filter(|d| stream.as_ref().is_none_or(|s| d.name == *s))
                    .collect();
                if !candidates.iter().any(|d| d.metric(&metric).is_some()) {
                    let known: Vec<&str> = candidates
                        .iter()
                        .flat_map(|d| d.metrics.iter().map(|m| m.name.as_str()))
                        .collect();
                    return Err(fail(
                        when_line,
                        format!(
                            "`when` compares metric with {metric:?}, which no {} has (metrics: {})",
                            stream
                                .as_ref()
                                .map_or("loaded stream".to_string(), |s| format!("stream {s:?}")),
                            known.join(", ")
                        ),
                    ));
                }
            }
            let value = def
                .value
                .as_ref()
                .map(|v| compile(v, "value"))
                .transpose()?;
            // Evaluate once on a typed sample row: catches `key > 5`, non-boolean conditions
            // and misspelled functions before any data arrives.
            let sample = RowContext::sample(def.source, def.threshold);
            match when.eval_with_context(&sample) {
                Ok(Value::Boolean(_)) => {}
                Ok(other) => {
                    return Err(fail(
                        when_line,
                        format!("`when` must be true or false, not {other}"),
                    ));
                }
                Err(e) => return Err(fail(when_line, format!("`when` cannot be evaluated: {e}"))),
            }
            if let Some((node, line)) = &value
                && let Err(e) = node.eval_number_with_context(&sample)
            {
                return Err(fail(*line, format!("`value` must be a number: {e}")));
            }
            let cooldown_ms = match &def.cooldown {
                None => 0,
                Some(c) => parse_duration_ms(c.get_ref())
                    .map_err(|e| fail(line_of(text, c.span().start), e.to_string()))?,
            };
            rules.push(Rule {
                name: def.name.clone(),
                description: def.description.clone(),
                source: def.source,
                stream,
                when_text: def.when.get_ref().clone(),
                when,
                value: value.map(|(n, _)| n),
                threshold: def.threshold,
                severity: def.severity,
                cooldown_ms,
                line: rule_line,
            });
        }
        Ok(RuleSet { rules })
    }
}

/// One row as evalexpr variables.
pub struct RowContext {
    names: Vec<&'static str>,
    values: Vec<Value<DefaultNumericTypes>>,
}

impl RowContext {
    fn sample(source: Source, threshold: Option<f64>) -> Self {
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
    fn set_threshold(&mut self, threshold: Option<f64>) {
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

    fn float(&self, name: &str) -> Option<f64> {
        match self.get(name)? {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    fn text(&self, name: &str) -> String {
        match self.get(name) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        }
    }

    fn int(&self, name: &str) -> i64 {
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

/// A rule that fired on a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: the same rule on the same row always has the same id (dedup key).
    pub alert_id: String,
    pub rule: String,
    pub severity: Severity,
    pub scenario: String,
    pub key: String,
    pub metric: String,
    pub window: String,
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub value: f64,
    pub threshold: Option<f64>,
    pub condition: String,
    pub description: Option<String>,
    /// Object the row came from.
    pub source_object: String,
    /// A `sluice query` / Athena statement that shows the row.
    pub inspect_query: String,
}

impl Alert {
    /// One line, fit for an email subject (SNS caps subjects at 100 characters).
    pub fn subject(&self) -> String {
        let mut s = format!(
            "[{}] {}: {} {} {} = {}",
            self.severity.as_str().to_uppercase(),
            self.rule,
            self.scenario,
            self.key,
            self.metric,
            format_number(self.value)
        );
        if s.len() > 100 {
            let mut cut = 97;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }

    pub fn body(&self) -> String {
        let threshold = self
            .threshold
            .map(format_number)
            .unwrap_or_else(|| "-".into());
        format!(
            "Rule:       {}\nSeverity:   {}\nScenario:   {}\nKey:        {}\nMetric:     {}\nWindow:     {} [{} .. {})\nValue:      {}\nThreshold:  {}\nCondition:  {}\n{}Source:     {}\n\nInspect:\n  {}\n",
            self.rule,
            self.severity.as_str(),
            self.scenario,
            self.key,
            self.metric,
            self.window,
            format_rfc3339_ms(self.window_start_ms),
            format_rfc3339_ms(self.window_end_ms),
            format_number(self.value),
            threshold,
            self.condition,
            self.description
                .as_ref()
                .map(|d| format!("About:      {d}\n"))
                .unwrap_or_default(),
            self.source_object,
            self.inspect_query,
        )
    }
}

fn format_number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.6}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Cooldown and dedup memory, persisted between invocations of the alert function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// (rule, scenario, key) → window end of the last alert.
    last_fired: BTreeMap<String, i64>,
    /// Alert ids already sent → their window end (pruned after a day of event time).
    sent: BTreeMap<String, i64>,
}

const DEDUP_HORIZON_MS: i64 = 24 * 3_600_000;

impl AlertState {
    /// Decides whether `alert` should go out and records it if so.
    pub fn admit(&mut self, alert: &Alert, cooldown_ms: i64) -> bool {
        if self.sent.contains_key(&alert.alert_id) {
            return false;
        }
        let slot = format!("{}\u{1f}{}\u{1f}{}", alert.rule, alert.scenario, alert.key);
        if let Some(last) = self.last_fired.get(&slot)
            && (alert.window_end_ms - last).abs() < cooldown_ms
        {
            return false;
        }
        self.last_fired.insert(slot, alert.window_end_ms);
        self.sent
            .insert(alert.alert_id.clone(), alert.window_end_ms);
        let newest = self.sent.values().copied().max().unwrap_or(0);
        self.sent.retain(|_, end| *end > newest - DEDUP_HORIZON_MS);
        true
    }
}

fn stable_id(parts: &[&str]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl RuleSet {
    /// Evaluates every rule of `source` on every row of `batch`; rows that fire become alerts
    /// (cooldown and dedup are applied by the caller through [`AlertState`]). Evaluation errors
    /// on a row are returned, not swallowed.
    pub fn evaluate(
        &self,
        batch: &RecordBatch,
        scenario: &str,
        source: Source,
        source_object: &str,
    ) -> (Vec<(Alert, i64)>, Vec<String>) {
        let mut alerts = Vec::new();
        let mut errors = Vec::new();
        // Rows become rule contexts once; only `threshold` differs from rule to rule.
        let mut contexts = rows(batch, scenario, source, None);
        for rule in self.rules.iter().filter(|r| r.source == source) {
            if rule.stream.as_ref().is_some_and(|s| s != scenario) {
                continue;
            }
            for row in contexts.iter_mut() {
                row.set_threshold(rule.threshold);
                let row = &*row;
                match rule.when.eval_boolean_with_context(row) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        errors.push(format!("rule {:?} on {source_object}: {e}", rule.name));
                        continue;
                    }
                }
                let default_field = if source == Source::Windows {
                    "avg"
                } else {
                    "score"
                };
                let value = match &rule.value {
                    Some(node) => node.eval_number_with_context(row).unwrap_or(f64::NAN),
                    None => row.float(default_field).unwrap_or(f64::NAN),
                };
                let key = row.text("key");
                let metric = row.text("metric");
                let window = row.text("window_name");
                let (start, end) = (row.int("window_start"), row.int("window_end"));
                let detector = row.text("detector");
                let end_text = end.to_string();
                let alert_id = stable_id(&[
                    &rule.name, scenario, &key, &metric, &window, &end_text, &detector,
                ]);
                let table = &source.table().name;
                let inspect_query = format!(
                    "SELECT * FROM {table} WHERE scenario = '{scenario}' AND key = '{}' AND metric = '{metric}' AND window_end = TIMESTAMP '{}'",
                    key.replace('\'', "''"),
                    format_rfc3339_ms(end)
                        .replace('T', " ")
                        .trim_end_matches('Z')
                );
                alerts.push((
                    Alert {
                        alert_id,
                        rule: rule.name.clone(),
                        severity: rule.severity,
                        scenario: scenario.to_string(),
                        key,
                        metric,
                        window,
                        window_start_ms: start,
                        window_end_ms: end,
                        value,
                        threshold: rule.threshold,
                        condition: rule.when_text.clone(),
                        description: rule.description.clone(),
                        source_object: source_object.to_string(),
                        inspect_query,
                    },
                    rule.cooldown_ms,
                ));
            }
        }
        (alerts, errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[rule]]
name = "fast-move"
source = "windows"
scenario = "trades"
when = 'window_name == "tumbling_1m" && metric == "price" && math::abs(change) > threshold'
threshold = 0.05
value = "change"
severity = "critical"
cooldown = "10m"

[[rule]]
name = "strong-anomaly"
source = "anomalies"
when = "score >= 0.9"
severity = "warning"
"#;

    #[test]
    fn parses_good_rules() {
        let set = RuleSet::parse(GOOD, "rules.toml", &StreamSet::builtin()).unwrap();
        assert_eq!(set.rules.len(), 2);
        assert_eq!(set.rules[0].cooldown_ms, 600_000);
        assert_eq!(set.rules[1].line, 12, "the line of its [[rule]] header");
    }

    fn error_of(text: &str) -> String {
        RuleSet::parse(text, "r.toml", &StreamSet::builtin())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_rules_name_the_line() {
        let unknown = GOOD.replace("metric == \"price\"", "metrc == \"price\"");
        let e = error_of(&unknown);
        assert!(e.starts_with("r.toml:6: rule \"fast-move\""), "{e}");
        assert!(e.contains("unknown field `metrc`"), "{e}");

        let syntax = GOOD.replace("score >= 0.9", "score >= (0.9");
        assert!(
            error_of(&syntax).starts_with("r.toml:15:"),
            "{}",
            error_of(&syntax)
        );

        let not_bool = GOOD.replace("score >= 0.9", "score + 1");
        assert!(error_of(&not_bool).contains("must be true or false"));

        let typo_key = GOOD.replace("severity = \"warning\"", "severty = \"warning\"");
        let e = error_of(&typo_key);
        assert!(e.contains("line 16") && e.contains("severty"), "{e}");

        let bad_cooldown = GOOD.replace("\"10m\"", "\"ten minutes\"");
        assert!(error_of(&bad_cooldown).starts_with("r.toml:10:"));

        let dup = format!(
            "{GOOD}\n[[rule]]\nname = \"fast-move\"\nsource = \"anomalies\"\nwhen = \"true\"\nseverity = \"info\"\n"
        );
        assert!(error_of(&dup).contains("already exists"));
    }

    #[test]
    fn rules_are_checked_against_the_stream_definitions() {
        let e = error_of(&GOOD.replace("scenario = \"trades\"", "stream = \"stocks\""));
        assert!(
            e.starts_with("r.toml:5: rule \"fast-move\"")
                && e.contains("stream \"stocks\" is not loaded"),
            "{e}"
        );
        let e = error_of(&GOOD.replace("metric == \"price\"", "metric == \"prices\""));
        assert!(
            e.starts_with("r.toml:6:") && e.contains("\"prices\""),
            "{e}"
        );
        // A metric of another stream is still a mistake under a stream filter.
        let e = error_of(&GOOD.replace("metric == \"price\"", "\"cpu_pct\" == metric"));
        assert!(e.contains("no stream \"trades\" has"), "{e}");
        // Without a filter any loaded stream's metric is fine.
        let unfiltered = GOOD
            .replace("scenario = \"trades\"\n", "")
            .replace("metric == \"price\"", "metric == \"cpu_pct\"");
        RuleSet::parse(&unfiltered, "r.toml", &StreamSet::builtin()).unwrap();
    }

    #[test]
    fn each_rule_sees_its_own_threshold_on_the_same_rows() {
        use crate::aggregate::AggregateConfig;
        use crate::window::{Aggregates, ClosedWindow, Scope};
        let config = AggregateConfig::builtin();
        let telemetry = config
            .engine
            .streams
            .iter()
            .position(|s| s.name == "telemetry")
            .unwrap();
        let w = ClosedWindow {
            stream: telemetry,
            key: "host-01".into(),
            scope: Scope::Key,
            window_index: 1,
            start_ms: 0,
            end_ms: 60_000,
            metric: 0,
            aggregates: Aggregates {
                count: 6,
                sum: 450.0,
                min: 70.0,
                max: 80.0,
                avg: 75.0,
                stddev: Some(3.0),
                first: 70.0,
                last: 80.0,
                weighted_avg: None,
                percentiles: None,
                distinct: None,
            },
        };
        let batch = crate::lake::windows_batch(
            &[&w],
            config.streams().streams(),
            &config.engine,
            "shardId-000000000000",
        )
        .unwrap();
        let rules = RuleSet::parse(
            r#"
[[rule]]
name = "low"
source = "windows"
when = "avg > threshold"
threshold = 50.0
severity = "info"

[[rule]]
name = "high"
source = "windows"
when = "avg > threshold"
threshold = 90.0
severity = "info"
"#,
            "t.toml",
            &StreamSet::builtin(),
        )
        .unwrap();
        let (alerts, errors) = rules.evaluate(&batch, "telemetry", Source::Windows, "k");
        assert!(errors.is_empty(), "{errors:?}");
        let fired: Vec<(&str, Option<f64>)> = alerts
            .iter()
            .map(|(a, _)| (a.rule.as_str(), a.threshold))
            .collect();
        assert_eq!(fired, vec![("low", Some(50.0))]);
    }

    #[test]
    fn cooldown_and_dedup() {
        let mut state = AlertState::default();
        let mut alert = Alert {
            alert_id: "a".into(),
            rule: "r".into(),
            severity: Severity::Info,
            scenario: "trades".into(),
            key: "TSLA".into(),
            metric: "price".into(),
            window: "tumbling_1m".into(),
            window_start_ms: 0,
            window_end_ms: 60_000,
            value: 1.0,
            threshold: None,
            condition: "true".into(),
            description: None,
            source_object: "o".into(),
            inspect_query: "q".into(),
        };
        assert!(state.admit(&alert, 0));
        assert!(!state.admit(&alert, 0), "same alert twice");
        alert.alert_id = "b".into();
        alert.window_end_ms = 120_000;
        assert!(!state.admit(&alert, 300_000), "within cooldown");
        alert.alert_id = "c".into();
        alert.window_end_ms = 400_000;
        assert!(state.admit(&alert, 300_000), "after cooldown");
        alert.alert_id = "d".into();
        alert.key = "AAPL".into();
        alert.window_end_ms = 400_000;
        assert!(state.admit(&alert, 300_000), "other key");
    }
}
