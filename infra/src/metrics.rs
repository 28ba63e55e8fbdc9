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
    state_fallbacks: "Unreadable shard state generations moved aside (the previous generation was used)",
    objects_lost: "Committed objects whose staged upload was gone before it was published (aborted by the bucket's lifecycle rule)",
    alerts_sent: "Alerts delivered to the notifier",
    alerts_suppressed: "Alerts held back by cooldown or dedup",
    rule_errors: "Rule evaluations that failed on a row",
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}
