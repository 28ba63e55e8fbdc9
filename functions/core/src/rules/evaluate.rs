//! Every rule on every row of a windows or anomalies batch.

use arrow_array::RecordBatch;

use super::alert::stable_id;
use super::context::rows;
use super::{Alert, RuleSet, Source};
use crate::time::format_rfc3339_ms;

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
