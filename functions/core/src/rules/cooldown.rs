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

/// Cooldown entries older than this behind the newest alert (or than the longest cooldown, if
/// longer) can no longer hold an alert back and are evicted.
pub const COOLDOWN_ENTRY_TTL_MS: i64 = 7 * 24 * 3_600_000;

impl AlertState {
    /// Drops cooldown entries whose last alert's window ended more than
    /// `max(longest_cooldown_ms, COOLDOWN_ENTRY_TTL_MS)` before the newest alert's: a key that
    /// went quiet keeps no entry. Returns how many were dropped.
    pub fn evict_idle(&mut self, longest_cooldown_ms: i64) -> usize {
        let Some(newest) = self.last_fired.values().copied().max() else {
            return 0;
        };
        let keep = longest_cooldown_ms.max(COOLDOWN_ENTRY_TTL_MS);
        let before = self.last_fired.len();
        self.last_fired
            .retain(|_, end| *end >= newest.saturating_sub(keep));
        before - self.last_fired.len()
    }

    /// Cooldown entries kept.
    pub fn cooldown_entries(&self) -> usize {
        self.last_fired.len()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cooldown_entries_of_quiet_keys_are_evicted_and_active_ones_kept() {
        let mut state = AlertState::default();
        let day = 24 * 3_600_000;
        state.last_fired.insert("r\u{1f}trades\u{1f}OLD".into(), 0);
        state
            .last_fired
            .insert("r\u{1f}trades\u{1f}WEEK".into(), 2 * day);
        state
            .last_fired
            .insert("r\u{1f}trades\u{1f}NEW".into(), 9 * day);
        assert_eq!(
            state.evict_idle(3_600_000),
            1,
            "older than 7 days behind the newest"
        );
        assert_eq!(state.cooldown_entries(), 2);
        assert_eq!(
            state.evict_idle(30 * day),
            0,
            "a longer cooldown keeps them"
        );
    }
}
