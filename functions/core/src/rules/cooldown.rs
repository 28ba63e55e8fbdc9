//! Cooldown and dedup memory of the alert function.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Alert;

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
