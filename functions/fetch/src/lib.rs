//! The fetch function: pull a REST API on a schedule and turn its JSON into sluice events.
//!
//! # Layout
//! - [`Mapping`]: the declared mapping from an API response to events (JSON pointers).
//! - [`map_response`]: response bytes → events + rejected items, pure.
//! - [`handle`]: the Lambda handler (fetch → map → send; rejects quarantined with the raw body).
//!
//! Every mapped item goes through the same validating decoder the aggregate function uses, so
//! an API returning nonsense is caught here, with the item and the reason, not downstream.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::event::{DecodeError, Event, Scenario, decode};
use sluice_core::time::format_rfc3339_ms;
use sluice_infra::metrics::Metrics;
use sluice_infra::sink::{EventSink, OutRecord, SinkError};
use sluice_infra::store::{ObjectStore, StoreError};
use thiserror::Error;

#[cfg(feature = "lambda")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;

/// How an API response becomes events.
///
/// ```toml
/// scenario = "trades"
/// items = "/data"                 # JSON pointer to the array of items ("" = the whole body)
/// [fields]                        # event field → JSON pointer inside one item
/// event_id = "/id"
/// event_time = "/ts"              # RFC 3339 text, or epoch seconds / milliseconds
/// symbol = "/ticker"
/// price = "/p"
/// quantity = "/q"
/// [constants]                     # event field → fixed value
/// side = "BUY"
/// trade_type = "MARKET"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// Scenario of every mapped event.
    pub scenario: Scenario,
    /// JSON pointer to the array of items.
    #[serde(default)]
    pub items: String,
    /// Event field → JSON pointer within an item.
    pub fields: BTreeMap<String, String>,
    /// Event field → constant value.
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
}

#[derive(Debug, Error, PartialEq)]
pub enum MapError {
    #[error("response is not JSON: {0}")]
    NotJson(String),
    #[error("response has no array at {pointer:?}")]
    NoItems { pointer: String },
}

/// An item that did not make a valid event.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub index: usize,
    pub item: String,
    pub reason: String,
}

/// Epoch seconds or milliseconds (told apart by magnitude) as RFC 3339.
fn time_value(v: &Value) -> Value {
    match v.as_f64() {
        Some(n) if n.is_finite() => {
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
            Value::String(format_rfc3339_ms(ms as i64))
        }
        _ => v.clone(),
    }
}

/// Maps a response body to events. Items that fail validation are returned as rejects.
pub fn map_response(
    body: &[u8],
    mapping: &Mapping,
) -> Result<(Vec<Event>, Vec<Rejected>), MapError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| MapError::NotJson(e.to_string()))?;
    let items = root
        .pointer(&mapping.items)
        .and_then(Value::as_array)
        .ok_or_else(|| MapError::NoItems {
            pointer: mapping.items.clone(),
        })?;
    let (mut events, mut rejected) = (Vec::new(), Vec::new());
    for (index, item) in items.iter().enumerate() {
        let mut wire = serde_json::Map::new();
        wire.insert(
            "scenario".into(),
            Value::String(mapping.scenario.as_str().into()),
        );
        for (field, value) in &mapping.constants {
            wire.insert(field.clone(), value.clone());
        }
        for (field, pointer) in &mapping.fields {
            if let Some(v) = item.pointer(pointer) {
                let v = if field == "event_time" {
                    time_value(v)
                } else {
                    v.clone()
                };
                wire.insert(field.clone(), v);
            }
        }
        let bytes = serde_json::to_vec(&Value::Object(wire)).unwrap_or_default();
        match decode(&bytes, None) {
            Ok(e) => events.push(e),
            Err(e) => rejected.push(Rejected {
                index,
                item: item.to_string(),
                reason: reason_with_pointer(&e, mapping),
            }),
        }
    }
    Ok((events, rejected))
}

fn reason_with_pointer(e: &DecodeError, mapping: &Mapping) -> String {
    let field = match e {
        DecodeError::Missing(f) | DecodeError::Invalid { field: f, .. } => Some(*f),
        _ => None,
    };
    match field.and_then(|f| mapping.fields.get(f)) {
        Some(pointer) => format!("{e} (mapped from {pointer})"),
        None => e.to_string(),
    }
}

/// Fetches the raw response body. The HTTP client with retries lives behind this seam.
#[async_trait]
pub trait ApiSource: Send + Sync {
    async fn fetch(&self) -> Result<Vec<u8>, FetchError>;
    fn describe(&self) -> String;
}

#[derive(Debug, Error)]
pub enum FetchError {
    /// The API answered with a status a retry will not fix (e.g. 401, 404).
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("{0}")]
    Transport(String),
    #[error("gave up after {attempts} attempts; last: {last}")]
    GaveUp { attempts: u32, last: String },
}

pub struct Deps {
    pub source: Arc<dyn ApiSource>,
    pub sink: Arc<dyn EventSink>,
    pub store: Arc<dyn ObjectStore>,
    pub mapping: Mapping,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("fetching {target}: {source}")]
    Fetch {
        target: String,
        #[source]
        source: FetchError,
    },
    #[error("the response from {target} could not be mapped ({reason}); body kept at {kept_at}")]
    Unmappable {
        target: String,
        reason: MapError,
        kept_at: String,
    },
    #[error("sending events: {0}")]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HandlerError {
    /// A response that cannot be mapped will not map on retry; everything else may.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, HandlerError::Unmappable { .. })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FetchResponse {
    pub events: usize,
    pub rejected: usize,
    /// Where rejected items were kept, if any.
    pub quarantined_at: Option<String>,
}

/// One scheduled fetch. A response that cannot be mapped at all is kept whole under
/// `quarantine/fetch/` and the invocation fails; rejected items are kept and the rest sent.
pub async fn handle(event: CloudWatchEvent, deps: &Deps) -> Result<FetchResponse, HandlerError> {
    let stamp = event.time.timestamp_millis();
    let body = deps
        .source
        .fetch()
        .await
        .map_err(|source| HandlerError::Fetch {
            target: deps.source.describe(),
            source,
        })?;
    let (events, rejected) = match map_response(&body, &deps.mapping) {
        Ok(mapped) => mapped,
        Err(reason) => {
            let kept_at = format!("quarantine/fetch/{stamp}-response.json");
            deps.store.put(&kept_at, body).await?;
            return Err(HandlerError::Unmappable {
                target: deps.source.describe(),
                reason,
                kept_at,
            });
        }
    };
    let mut response = FetchResponse {
        events: events.len(),
        rejected: rejected.len(),
        quarantined_at: None,
    };
    if !rejected.is_empty() {
        let key = format!("quarantine/fetch/{stamp}-items.jsonl");
        let mut lines = Vec::new();
        for r in &rejected {
            let line = serde_json::json!({"index": r.index, "reason": r.reason, "item": r.item});
            lines.extend(line.to_string().into_bytes());
            lines.push(b'\n');
        }
        deps.store.put(&key, lines).await?;
        Metrics::add(&deps.metrics.quarantined, rejected.len());
        response.quarantined_at = Some(key);
    }
    let records: Vec<OutRecord> = events
        .iter()
        .map(|e| OutRecord {
            partition_key: e.key.clone(),
            data: e.to_json(),
        })
        .collect();
    if !records.is_empty() {
        deps.sink.send(records).await?;
    }
    Metrics::add(&deps.metrics.events_generated, events.len());
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> Mapping {
        toml::from_str(include_str!("../tests/fixtures/trades-mapping.toml")).unwrap()
    }

    #[test]
    fn maps_items_and_rejects_bad_ones_with_the_pointer() {
        let body = br#"{"data":[
            {"id":"1","ts":1795000000,"ticker":"AAPL","p":190.5,"q":10},
            {"id":"2","ts":"2026-11-18T11:06:40Z","ticker":"MSFT","p":-1,"q":5},
            {"id":"3","ts":1795000000123,"ticker":"TSLA","q":5}
        ]}"#;
        let (events, rejected) = map_response(body, &mapping()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_time_ms, 1_795_000_000_000);
        assert_eq!(rejected.len(), 2);
        assert!(
            rejected[0].reason.contains("price") && rejected[0].reason.contains("/p"),
            "{:?}",
            rejected[0]
        );
        assert!(rejected[1].reason.contains("missing field `price`"));
    }

    #[test]
    fn unmappable_responses_are_errors() {
        assert!(matches!(
            map_response(b"<html>", &mapping()),
            Err(MapError::NotJson(_))
        ));
        assert_eq!(
            map_response(br#"{"items":[]}"#, &mapping()),
            Err(MapError::NoItems {
                pointer: "/data".into()
            })
        );
    }
}
