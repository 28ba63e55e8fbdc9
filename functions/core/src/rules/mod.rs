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
//!
//! # Layout
//! - `parse`: the rules file → compiled, validated [`Rule`]s.
//! - `context`: one window or anomaly row as the variables a condition reads.
//! - `alert`: [`Alert`], what a rule that fired reports.
//! - `cooldown`: [`AlertState`], cooldown and dedup between invocations.
//! - `evaluate`: [`RuleSet::evaluate`], every rule on every row of a batch.

mod alert;
mod context;
mod cooldown;
mod evaluate;
mod parse;

use evalexpr::{DefaultNumericTypes, Node};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::schema::{self, Table};

pub use alert::{Alert, alert_object};
pub use context::{RowContext, rows};
pub use cooldown::AlertState;
pub use parse::variables;

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

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub source: Source,
    /// Only rows of this stream.
    pub stream: Option<String>,
    pub when_text: String,
    pub(crate) when: Node<DefaultNumericTypes>,
    pub(crate) value: Option<Node<DefaultNumericTypes>>,
    pub threshold: Option<f64>,
    pub severity: Severity,
    pub cooldown_ms: i64,
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::StreamSet;

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
                m2: 45.0,
                first_time_ms: 1_000,
                first_ordinal: 0,
                last_time_ms: 59_000,
                last_ordinal: 5,
                weighted_sum: 0.0,
                weight: 0.0,
                quantile_sketch: None,
                distinct_sketch: None,
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

    #[test]
    fn rows_from_another_writer_are_read_not_panicked_on() {
        use std::sync::Arc;

        use arrow_array::{
            ArrayRef, Float32Array, Int32Array, LargeStringArray, RecordBatch, StringArray,
            TimestampMicrosecondArray,
        };
        // Microsecond timestamps, large strings, 32-bit numbers: what DuckDB or Spark may write.
        let end_us = 1_795_496_460_000_000i64;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("key", Arc::new(LargeStringArray::from(vec!["AAPL"]))),
            (
                "window_name",
                Arc::new(StringArray::from(vec!["tumbling_1m"])),
            ),
            ("metric", Arc::new(StringArray::from(vec!["price"]))),
            (
                "window_start",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![end_us - 60_000_000]).with_timezone("UTC"),
                ),
            ),
            (
                "window_end",
                Arc::new(TimestampMicrosecondArray::from(vec![end_us]).with_timezone("UTC")),
            ),
            ("count", Arc::new(Int32Array::from(vec![7]))),
            ("avg", Arc::new(Float32Array::from(vec![190.5f32]))),
            ("first", Arc::new(Float32Array::from(vec![Some(180.0f32)]))),
            ("last", Arc::new(Float32Array::from(vec![None::<f32>]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let rules = RuleSet::parse(
            "[[rule]]\nname = \"any\"\nsource = \"windows\"\nwhen = 'count > 5 && avg > 190.0'\nseverity = \"info\"\n",
            "r.toml",
            &StreamSet::builtin(),
        )
        .unwrap();
        let (alerts, errors) = rules.evaluate(&batch, "trades", Source::Windows, "k");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0].0.window_end_ms,
            end_us / 1_000,
            "times are UTC milliseconds"
        );
        assert_eq!(alerts[0].0.key, "AAPL");
    }
}
