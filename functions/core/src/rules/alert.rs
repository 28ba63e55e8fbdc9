//! What a rule that fired reports.

use serde::{Deserialize, Serialize};

use super::Severity;
use crate::lake::{self, LakeError};
use crate::schema;
use crate::time::format_rfc3339_ms;

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

pub(super) fn stable_id(parts: &[&str]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The `alerts` table's object for one sent alert: `(key, Parquet bytes)`. The key is
/// `alerts/scenario=S/dt=…/hour=…/alert-<alert_id>.parquet`, partitioned by the window's end,
/// so a retried delivery of the same alert writes the same key: one row per alert.
/// `sent_ms` is when the notifier accepted it (epoch milliseconds).
///
/// Errors: [`LakeError`] when the row cannot be encoded (not retryable).
pub fn alert_object(alert: &Alert, sent_ms: i64) -> Result<(String, Vec<u8>), LakeError> {
    use arrow_array::{
        ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray,
    };
    use std::sync::Arc;
    let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let time = |ms: i64| {
        Arc::new(TimestampMillisecondArray::from(vec![ms]).with_timezone("UTC")) as ArrayRef
    };
    let columns: Vec<ArrayRef> = vec![
        text(&alert.alert_id),
        time(sent_ms),
        text(&alert.rule),
        text(alert.severity.as_str()),
        text(&alert.key),
        text(&alert.metric),
        text(&alert.window),
        time(alert.window_start_ms),
        time(alert.window_end_ms),
        Arc::new(Float64Array::from(vec![alert.value])),
        Arc::new(Float64Array::from(vec![alert.threshold])),
        text(&alert.condition),
        Arc::new(StringArray::from(vec![alert.description.as_deref()])),
        text(&alert.subject()),
        text(&alert.source_object),
        text(&alert.inspect_query),
    ];
    let batch = RecordBatch::try_new(schema::ALERTS.schema(), columns).map_err(|source| {
        LakeError::Arrow {
            table: "alerts".into(),
            source,
        }
    })?;
    let key = format!(
        "{}/{}/alert-{}.parquet",
        lake::table_dir(&schema::ALERTS, &alert.scenario),
        lake::partition_path(alert.window_end_ms),
        lake::sanitize(&alert.alert_id)
    );
    Ok((key, lake::encode_parquet(&batch)?))
}
