//! The rules file → compiled rules, every mistake an error naming the file, line and rule.

use evalexpr::{DefaultNumericTypes, Node, Value, build_operator_tree};
use serde::Deserialize;

use super::context::RowContext;
use super::{Rule, RuleSet, RulesError, Severity, Source};
use crate::stream::{StreamDef, StreamSet};
use crate::time::parse_duration_ms;

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
