//! Counters the handlers bump as they work: the local pipeline's progress line and summary
//! read them; in Lambda they are logged once per invocation.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        /// Monotonic counters, shared by every handler of one process.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`Metrics`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct MetricsSnapshot {
            $(#[doc = $doc] pub $name: u64,)*
        }

        impl Metrics {
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    events_generated: "Events produced by generate/fetch and accepted by the sink",
    anomalies_planted: "Ground-truth anomalies the generators planted",
    records_in: "Stream records handed to aggregate",
    duplicates_skipped: "Records at or below a shard's committed sequence number (redelivery)",
    events_in: "Records decoded into valid events",
    duplicate_events: "Events whose dedup id and bytes were seen before (a producer's retry), not written again",
    beyond_dedup_horizon: "Events older than their stream's dedup horizon, written unchecked",
    quarantined: "Records that failed to decode, kept in the quarantine table",
    late: "Events older than the watermark, kept in raw and the late table",
    windows_out: "Window rows written",
    idle_flushes: "Streams on a shard whose watermark a sweep moved because no event had arrived for the idle timeout",
    anomalies_out: "Anomaly rows written",
    objects_written: "Objects written to the lake",
    bytes_written: "Bytes written to the lake",
    evicted_series: "Detector series and alert cooldown entries evicted after their key was idle for the configured time",
    keys_on_several_shards: "Keys with open windows on several shards at the last sweep (a gauge): the producer does not partition by key",
    state_fallbacks: "Unreadable shard state generations moved aside (the previous generation was used)",
    objects_lost: "Committed objects whose staged upload was gone before it was published (aborted by the bucket's lifecycle rule)",
    alerts_sent: "Alerts delivered to the notifier",
    alerts_suppressed: "Alerts held back by cooldown or dedup",
    rule_errors: "Rule evaluations that failed on a row",
}

/// Counters that are gauges: their value now, not a running total.
pub const GAUGES: &[&str] = &["keys_on_several_shards"];

impl MetricsSnapshot {
    /// What changed since `earlier`: counters' growth, gauges' value now.
    pub fn since(&self, earlier: &MetricsSnapshot) -> serde_json::Map<String, serde_json::Value> {
        let now = serde_json::to_value(self).unwrap_or_default();
        let before = serde_json::to_value(earlier).unwrap_or_default();
        let mut out = serde_json::Map::new();
        if let (Some(now), Some(before)) = (now.as_object(), before.as_object()) {
            for (name, value) in now {
                let v = value.as_u64().unwrap_or(0);
                let b = before.get(name).and_then(|x| x.as_u64()).unwrap_or(0);
                let delta = if GAUGES.contains(&name.as_str()) {
                    v
                } else {
                    v.saturating_sub(b)
                };
                out.insert(name.clone(), delta.into());
            }
        }
        out
    }
}

/// One log line in CloudWatch's embedded metric format: CloudWatch Logs turns each value into
/// a metric `namespace/<name>` with the dimension `FunctionName`, no API call needed
/// (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
/// `values` as [`MetricsSnapshot::since`] gives them; `timestamp_ms` in ms since the epoch.
pub fn emf_line(
    namespace: &str,
    function: &str,
    values: &serde_json::Map<String, serde_json::Value>,
    timestamp_ms: i64,
) -> String {
    let metrics: Vec<serde_json::Value> = values
        .keys()
        .map(|name| serde_json::json!({ "Name": name, "Unit": "Count" }))
        .collect();
    let mut line = values.clone();
    line.insert("FunctionName".into(), function.into());
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics,
            }],
        }),
    );
    serde_json::Value::Object(line).to_string()
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// For the gauges among the counters (the value now, not a running total).
    pub fn set(gauge: &AtomicU64, n: usize) {
        gauge.store(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_carry_counter_growth_and_gauge_values() {
        let m = Metrics::default();
        Metrics::add(&m.records_in, 10);
        Metrics::set(&m.keys_on_several_shards, 3);
        let first = m.snapshot();
        Metrics::add(&m.records_in, 5);
        let values = m.snapshot().since(&first);
        assert_eq!(values["records_in"], 5);
        assert_eq!(
            values["keys_on_several_shards"], 3,
            "a gauge is its value now"
        );
        let line: serde_json::Value =
            serde_json::from_str(&emf_line("sluice", "sluice-aggregate", &values, 1_000)).unwrap();
        assert_eq!(line["FunctionName"], "sluice-aggregate");
        assert_eq!(line["records_in"], 5);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "sluice");
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"records_in") && names.contains(&"state_fallbacks"));
        assert!(
            names.iter().all(|n| line.get(*n).is_some()),
            "every metric has its value"
        );
    }
}
