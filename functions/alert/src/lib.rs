//! The alert function: evaluates the rules on every window/anomaly object the aggregate function
//! writes (delivered as S3 event notifications) and publishes what fires.
//!
//! # Layout
//! - [`handle`]: the Lambda handler (S3 event → rule evaluation → notifier).
//! - [`load_rules`]: the rules file, or the built-in default rules.
//!
//! Every alert the notifier accepted is also written to the lake's `alerts` table (one object
//! per alert id), so the alerts feed exists wherever the lake does.
//!
//! Cooldown and dedup state is one object written with a conditional put. An alert is recorded
//! as sent only after the notifier accepted it; if another invocation committed first, the state
//! is reloaded and admission redone, so at worst an alert is delivered twice, never lost.

use std::sync::Arc;

use aws_lambda_events::event::s3::S3Event;
use serde::Serialize;
use sluice_core::lake::{self, LakeError};
use sluice_core::rules::{AlertState, RuleSet, RulesError, Source, alert_object};
use sluice_core::stream::StreamSet;
use sluice_infra::metrics::Metrics;
use sluice_infra::notify::Notifier;
use sluice_infra::store::{ObjectStore, Precondition, StoreError};
use thiserror::Error;

#[cfg(feature = "lambda")]
pub mod lambda;

/// The rules shipped with sluice, used when no rules file is configured.
pub const DEFAULT_RULES: &str = include_str!("../rules.default.toml");

/// Parses a rules file against the loaded definitions, or, when `text` is `None`, the default
/// rules (written for the shipped streams) that apply to the loaded ones.
pub fn load_rules(text: Option<(&str, &str)>, streams: &StreamSet) -> Result<RuleSet, RulesError> {
    match text {
        Some((text, name)) => RuleSet::parse(text, name, streams),
        None => {
            let mut set =
                RuleSet::parse(DEFAULT_RULES, "rules.default.toml", &StreamSet::builtin())?;
            set.rules
                .retain(|r| r.stream.as_ref().is_none_or(|s| streams.get(s).is_some()));
            Ok(set)
        }
    }
}

/// Where cooldown and dedup state lives in the store, locally and on S3.
pub const STATE_KEY: &str = "state/alert/state.json";

pub struct Deps {
    pub store: Arc<dyn ObjectStore>,
    pub notifier: Arc<dyn Notifier>,
    pub rules: RuleSet,
    pub state_key: String,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("reading {key}: {source}")]
    Read {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("{key} is not readable Parquet: {source}")]
    Parquet {
        key: String,
        #[source]
        source: LakeError,
    },
    /// The alert's row for the `alerts` table cannot be encoded: a retry encodes it the same way.
    #[error("encoding the alerts row of alert {alert_id}: {source}")]
    Encode {
        alert_id: String,
        #[source]
        source: LakeError,
    },
    /// The cooldown state cannot be read: a retry reads the same bytes.
    #[error("alert state {key} is unreadable: {message}")]
    CorruptState { key: String, message: String },
    /// Other invocations kept committing first: a retry later can succeed.
    #[error("alert state: {0}")]
    Contended(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{failed} alert(s) could not be delivered: {message}")]
    Notify { failed: usize, message: String },
}

impl HandlerError {
    /// Whether invoking again can help: not for a file or a state that will read the same way.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Parquet { .. }
            | HandlerError::Encode { .. }
            | HandlerError::CorruptState { .. } => false,
            HandlerError::Read { source, .. } | HandlerError::Store(source) => {
                source.is_retryable()
            }
            HandlerError::Contended(_) | HandlerError::Notify { .. } => true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertResponse {
    pub objects: usize,
    pub fired: usize,
    pub sent: usize,
    pub suppressed: usize,
    /// Rule evaluations that failed on a row (the rule and object are named).
    pub rule_errors: Vec<String>,
}

/// S3 event keys are URL-encoded (`=` arrives as `%3D`, spaces as `+`).
pub fn decode_key(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `scenario=S` from a lake key.
fn scenario_of(key: &str) -> &str {
    key.split('/')
        .find_map(|part| part.strip_prefix("scenario="))
        .unwrap_or("unknown")
}

pub async fn handle(event: S3Event, deps: &Deps) -> Result<AlertResponse, HandlerError> {
    let mut response = AlertResponse::default();
    let mut fired = Vec::new();
    for record in &event.records {
        let Some(raw_key) = record.s3.object.key.as_deref() else {
            continue;
        };
        let key = decode_key(raw_key);
        let Some(source) = Source::of_key(&key) else {
            tracing::debug!(key, "not a windows/anomalies object; ignored");
            continue;
        };
        let Some(object) = deps
            .store
            .get(&key)
            .await
            .map_err(|source| HandlerError::Read {
                key: key.clone(),
                source,
            })?
        else {
            // Deleted since the notification (e.g. lifecycle): nothing to evaluate.
            tracing::warn!(key, "object in notification no longer exists");
            continue;
        };
        let batches =
            lake::decode_parquet(object.body).map_err(|source| HandlerError::Parquet {
                key: key.clone(),
                source,
            })?;
        response.objects += 1;
        let scenario = scenario_of(&key);
        for batch in &batches {
            let (alerts, errors) = deps.rules.evaluate(batch, scenario, source, &key);
            Metrics::add(&deps.metrics.rule_errors, errors.len());
            response.rule_errors.extend(errors);
            fired.extend(alerts);
        }
    }
    response.fired = fired.len();
    if fired.is_empty() {
        return Ok(response);
    }
    // Admit against the shared state, deliver, then commit; redo on a concurrent commit.
    let mut delivered: Vec<String> = Vec::new();
    for attempt in 0..5 {
        let (mut state, condition) = match deps.store.get(&deps.state_key).await? {
            Some(obj) => (
                serde_json::from_slice::<AlertState>(&obj.body).map_err(|e| {
                    HandlerError::CorruptState {
                        key: deps.state_key.clone(),
                        message: e.to_string(),
                    }
                })?,
                Precondition::Matches(obj.etag),
            ),
            None => (AlertState::default(), Precondition::DoesNotExist),
        };
        let mut sent = 0;
        let mut suppressed = 0;
        let mut failures = Vec::new();
        for (alert, cooldown_ms) in &fired {
            let mut trial = state.clone();
            if !trial.admit(alert, *cooldown_ms) {
                suppressed += 1;
                continue;
            }
            if !delivered.contains(&alert.alert_id) {
                if let Err(e) = deps.notifier.notify(alert).await {
                    failures.push(e.to_string());
                    continue;
                }
                delivered.push(alert.alert_id.clone());
                // What was sent goes to the `alerts` table, keyed by the alert: a retry
                // rewrites the same object. A failed write fails the invocation before the
                // state commit, so the retry sends (at least once) and writes again.
                let sent_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let (key, body) =
                    alert_object(alert, sent_ms).map_err(|source| HandlerError::Encode {
                        alert_id: alert.alert_id.clone(),
                        source,
                    })?;
                deps.store.put(&key, body).await?;
            }
            state = trial;
            sent += 1;
        }
        let longest = deps
            .rules
            .rules
            .iter()
            .map(|r| r.cooldown_ms)
            .max()
            .unwrap_or(0);
        let evicted = state.evict_idle(longest);
        let body = serde_json::to_vec(&state).map_err(|e| HandlerError::CorruptState {
            key: deps.state_key.clone(),
            message: e.to_string(),
        })?;
        match deps.store.put_if(&deps.state_key, body, condition).await {
            Ok(_) => {
                response.sent = sent;
                response.suppressed = suppressed;
                Metrics::add(&deps.metrics.alerts_sent, sent);
                Metrics::add(&deps.metrics.alerts_suppressed, suppressed);
                Metrics::add(&deps.metrics.evicted_series, evicted);
                if !failures.is_empty() {
                    return Err(HandlerError::Notify {
                        failed: failures.len(),
                        message: failures.join("; "),
                    });
                }
                return Ok(response);
            }
            Err(StoreError::PreconditionFailed { .. }) => {
                tracing::info!(
                    attempt,
                    "alert state changed concurrently; re-evaluating admission"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(HandlerError::Contended(
        "kept changing concurrently; giving up after 5 attempts".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_load() {
        let rules = load_rules(None, &StreamSet::builtin()).unwrap();
        assert!(rules.rules.len() >= 4);
    }

    #[test]
    fn only_errors_a_retry_can_fix_are_retryable() {
        let corrupt = HandlerError::CorruptState {
            key: STATE_KEY.into(),
            message: "expected value at line 1".into(),
        };
        assert!(
            !corrupt.is_retryable(),
            "a corrupt state reads the same next time"
        );
        assert!(HandlerError::Contended("busy".into()).is_retryable());
        assert!(
            HandlerError::Notify {
                failed: 1,
                message: "SNS throttled".into()
            }
            .is_retryable()
        );
        let gone = StoreError::PreconditionFailed { key: "k".into() };
        assert!(
            HandlerError::Read {
                key: "k".into(),
                source: gone
            }
            .is_retryable()
        );
    }

    #[test]
    fn keys_are_url_decoded() {
        assert_eq!(
            decode_key("windows/scenario%3Dtrades/dt%3D2026-11-24/hour%3D05/part-a.parquet"),
            "windows/scenario=trades/dt=2026-11-24/hour=05/part-a.parquet"
        );
        assert_eq!(decode_key("a+b%2"), "a b%2");
        assert_eq!(scenario_of("windows/scenario=trades/dt=x/y"), "trades");
    }
}
