//! The fetch function: pull a REST API on a schedule and turn its JSON into sluice events.
//!
//! # Layout
//! - [`Mapping`]: the declared mapping from an API response to a stream's fields (JSON
//!   pointers); [`Mapper`]: the mapping checked against the stream definitions.
//! - [`map_response`]: response bytes → events + rejected items, pure.
//! - [`handle`]: the Lambda handler (fetch → map → send; rejects quarantined with the raw body).
//!
//! Every mapped item becomes the definition's own JSON and goes through the same validating
//! decoder the aggregate function uses (coercions included), so an API returning nonsense is
//! caught here, with the item, the API's field, its value and the reason, not downstream.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_lambda_events::event::cloudwatch_events::CloudWatchEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::stream::{DecodeError, Decoder, StreamDef, StreamSet, TimeFormat};
use sluice_core::time::format_rfc3339_ms;
use sluice_infra::metrics::Metrics;
use sluice_infra::sink::{EventSink, OutRecord, SinkError};
use sluice_infra::store::{ObjectStore, StoreError};
use thiserror::Error;

#[cfg(feature = "lambda")]
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;

/// How an API response becomes events of one stream: the user-facing mapping file.
///
/// ```toml
/// stream = "crypto_trades"        # a loaded stream definition (`scenario` is accepted too)
/// items = "/data"                 # JSON pointer to the array of items ("" = the whole body;
///                                 # "/0" indexes arrays of arrays)
/// [fields]                        # definition field → JSON pointer inside one item
/// trade_id = "/trade_id"
/// time = "/time"
/// price = "/price"
/// [constants]                     # definition field → fixed value
/// product = "BTC-USD"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The stream every mapped event belongs to.
    #[serde(alias = "scenario")]
    pub stream: String,
    /// JSON pointer to the array of items.
    #[serde(default)]
    pub items: String,
    /// Definition field → JSON pointer within an item.
    pub fields: BTreeMap<String, String>,
    /// Definition field → constant value.
    #[serde(default)]
    pub constants: BTreeMap<String, Value>,
}

/// A mapping that does not fit the loaded definitions. Fixed by editing the mapping, never by
/// retrying.
#[derive(Debug, Error, PartialEq)]
pub enum MappingError {
    #[error("mapping names stream {stream:?}, which is not loaded (loaded: {loaded})")]
    UnknownStream { stream: String, loaded: String },
    #[error("mapping field {field:?} is not a field of stream {stream:?} (fields: {fields})")]
    UnknownField {
        stream: String,
        field: String,
        fields: String,
    },
    #[error("mapping field {field:?}: {pointer:?} is not a JSON pointer (e.g. \"/price\")")]
    BadPointer { field: String, pointer: String },
    #[error("mapping field {0:?} is both in [fields] and [constants]")]
    Twice(String),
}

/// A [`Mapping`] checked against the stream definitions: where each field of the event comes
/// from.
#[derive(Debug, Clone)]
pub struct Mapper {
    decoder: Decoder,
    stream: usize,
    items: String,
    /// (field index, JSON pointer in the item).
    fields: Vec<(usize, String)>,
    /// (field index, value).
    constants: Vec<(usize, Value)>,
}

impl Mapper {
    pub fn new(mapping: &Mapping, streams: StreamSet) -> Result<Mapper, MappingError> {
        let stream = streams
            .streams()
            .iter()
            .position(|s| s.name == mapping.stream)
            .ok_or_else(|| MappingError::UnknownStream {
                stream: mapping.stream.clone(),
                loaded: streams.names().join(", "),
            })?;
        let def = &streams.streams()[stream];
        let index = |field: &str| {
            def.fields
                .iter()
                .position(|f| f.name == field)
                .ok_or_else(|| MappingError::UnknownField {
                    stream: def.name.clone(),
                    field: field.to_string(),
                    fields: def
                        .fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        };
        let mut fields = Vec::new();
        for (field, pointer) in &mapping.fields {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(MappingError::BadPointer {
                    field: field.clone(),
                    pointer: pointer.clone(),
                });
            }
            if mapping.constants.contains_key(field) {
                return Err(MappingError::Twice(field.clone()));
            }
            fields.push((index(field)?, pointer.clone()));
        }
        let constants = mapping
            .constants
            .iter()
            .map(|(field, value)| Ok((index(field)?, value.clone())))
            .collect::<Result<_, MappingError>>()?;
        Ok(Mapper {
            decoder: Decoder::new(streams),
            stream,
            items: mapping.items.clone(),
            fields,
            constants,
        })
    }

    fn def(&self) -> &StreamDef {
        &self.decoder.streams().streams()[self.stream]
    }

    /// The definition's JSON for one item: every mapped field at its path, the route member,
    /// exactly what the aggregate function decodes.
    fn canonical(&self, item: &Value) -> Value {
        let def = self.def();
        let mut out = serde_json::Map::new();
        if let Some(route) = &def.route {
            out.insert(route.field.clone(), Value::String(route.value.clone()));
        }
        let values = self
            .constants
            .iter()
            .map(|(f, v)| (*f, Some(v.clone())))
            .chain(
                self.fields
                    .iter()
                    .map(|(f, pointer)| (*f, item.pointer(pointer).cloned())),
            );
        for (f, value) in values {
            let Some(value) = value else { continue };
            let field = &def.fields[f];
            let value = match &field.time {
                Some(t) if t.format == TimeFormat::Rfc3339 => epoch_as_rfc3339(value),
                _ => value,
            };
            insert_at(&mut out, &field.path, value);
        }
        Value::Object(out)
    }
}

/// Epoch seconds or milliseconds (told apart by magnitude) as RFC 3339, for a field the
/// definition reads as RFC 3339 text; anything else unchanged.
fn epoch_as_rfc3339(v: Value) -> Value {
    match v.as_f64() {
        Some(n) if n.is_finite() && v.is_number() => {
            let ms = if n.abs() < 1e11 { n * 1000.0 } else { n };
            Value::String(format_rfc3339_ms(ms as i64))
        }
        _ => v,
    }
}

/// Sets `value` at `path` (member names) inside `object`, creating objects on the way.
fn insert_at(object: &mut serde_json::Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = object;
    for p in parents {
        let next = at
            .entry(p.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if !next.is_object() {
            *next = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = next else { return };
        at = map;
    }
    at.insert(last.clone(), value);
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

/// One mapped event: the stream's JSON and its key (the partition key).
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub key: String,
    pub data: Vec<u8>,
}

/// Maps a response body to events of the mapper's stream. Items the definition refuses are
/// returned as rejects naming the item, the API's field, its value and the reason.
pub fn map_response(
    body: &[u8],
    mapper: &Mapper,
) -> Result<(Vec<Mapped>, Vec<Rejected>), MapError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| MapError::NotJson(e.to_string()))?;
    let items = root
        .pointer(&mapper.items)
        .and_then(Value::as_array)
        .ok_or_else(|| MapError::NoItems {
            pointer: mapper.items.clone(),
        })?;
    let (mut events, mut rejected) = (Vec::new(), Vec::new());
    for (index, item) in items.iter().enumerate() {
        let data = serde_json::to_vec(&mapper.canonical(item)).unwrap_or_default();
        match mapper.decoder.decode(&data, None) {
            Ok(record) => events.push(Mapped {
                key: record.key(mapper.def()).into_owned(),
                data,
            }),
            Err(r) => rejected.push(Rejected {
                index,
                item: item.to_string(),
                reason: reason(mapper, index, item, &r.error),
            }),
        }
    }
    Ok((events, rejected))
}

/// `item 2: size (from /size = "abc"): field `size`: "abc" is not a number`.
fn reason(mapper: &Mapper, index: usize, item: &Value, e: &DecodeError) -> String {
    let def = mapper.def();
    let source = e.field().and_then(|name| {
        let f = def.fields.iter().position(|x| x.name == name)?;
        if let Some((_, pointer)) = mapper.fields.iter().find(|(i, _)| *i == f) {
            let value = item
                .pointer(pointer)
                .map_or_else(|| "absent".to_string(), Value::to_string);
            return Some(format!("{name} (from {pointer} = {value})"));
        }
        mapper
            .constants
            .iter()
            .find(|(i, _)| *i == f)
            .map(|(_, v)| format!("{name} (constant {v})"))
    });
    match source {
        Some(source) => format!("item {index}: {source}: {e}"),
        None => format!("item {index}: {e}"),
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
    /// Something the key must not be sent to: plain HTTP without the explicit opt-in, or a
    /// redirect to another origin. A retry gets the same answer.
    #[error("refused: {0}")]
    Refused(String),
}

pub struct Deps {
    pub source: Arc<dyn ApiSource>,
    pub sink: Arc<dyn EventSink>,
    pub store: Arc<dyn ObjectStore>,
    pub mapper: Mapper,
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
    /// A response that cannot be mapped will not map on retry, and a client error (a bad key,
    /// a wrong URL: 4xx other than 408 and 429) answers the same way next time; a server
    /// error, a timeout or a transport failure may pass later.
    pub fn is_retryable(&self) -> bool {
        match self {
            HandlerError::Unmappable { .. } => false,
            HandlerError::Fetch {
                source: FetchError::Status { status, .. },
                ..
            } => !(400..500).contains(status) || *status == 408 || *status == 429,
            HandlerError::Fetch {
                source: FetchError::Refused(_),
                ..
            } => false,
            HandlerError::Fetch { .. } | HandlerError::Sink(_) => true,
            HandlerError::Store(e) => e.is_retryable(),
        }
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
    let (events, rejected) = match map_response(&body, &deps.mapper) {
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
        .into_iter()
        .map(|e| OutRecord {
            partition_key: e.key,
            data: e.data,
        })
        .collect();
    let sent = records.len();
    if !records.is_empty() {
        deps.sink.send(records).await?;
    }
    Metrics::add(&deps.metrics.events_generated, sent);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades() -> Mapper {
        let mapping =
            toml::from_str(include_str!("../tests/fixtures/trades-mapping.toml")).unwrap();
        Mapper::new(&mapping, StreamSet::builtin()).unwrap()
    }

    #[test]
    fn maps_items_and_rejects_bad_ones_naming_item_pointer_and_value() {
        let body = br#"{"data":[
            {"id":"1","ts":1795000000,"ticker":"AAPL","p":190.5,"q":10},
            {"id":"2","ts":"2026-11-18T11:06:40Z","ticker":"MSFT","p":-1,"q":5},
            {"id":"3","ts":1795000000123,"ticker":"TSLA","q":5}
        ]}"#;
        let (events, rejected) = map_response(body, &trades()).unwrap();
        assert_eq!(events.len(), 1);
        let decoded = Decoder::new(StreamSet::builtin())
            .decode(&events[0].data, None)
            .unwrap();
        assert_eq!(decoded.event_time_ms, 1_795_000_000_000);
        assert_eq!(events[0].key, "AAPL");
        assert_eq!(rejected.len(), 2);
        assert!(
            rejected[0]
                .reason
                .starts_with("item 1: price (from /p = -1)"),
            "{:?}",
            rejected[0]
        );
        assert!(rejected[1].reason.contains("missing field `price`"));
    }

    const CRYPTO: &str = sluice_core::stream::fixtures::CRYPTO_TRADES;

    #[test]
    fn an_api_with_numbers_as_strings_maps_into_a_definition_that_coerces() {
        let streams = StreamSet::from_sources([("crypto.toml", CRYPTO)]).unwrap();
        let mapping: Mapping = toml::from_str(
            "stream = \"crypto_trades\"\n[fields]\ntime = \"/time\"\ntrade_id = \"/trade_id\"\nprice = \"/price\"\nsize = \"/size\"\nside = \"/side\"\n[constants]\nproduct = \"BTC-USD\"\n",
        )
        .unwrap();
        let mapper = Mapper::new(&mapping, streams.clone()).unwrap();
        let body = br#"[{"time":"2026-11-24T05:00:01.120Z","trade_id":91234501,"price":"64210.55000000","size":"0.01250000","side":"sell"},
            {"time":"2026-11-24T05:00:01.350Z","trade_id":91234502,"price":"64210.10000000","size":"0.20000000","side":"buy"},
            {"time":"2026-11-24T05:00:02.001Z","trade_id":91234503,"price":"64209.95000000","size":"1.00000000","side":"SELL"},
            {"time":"2026-11-24T05:00:02.500Z","trade_id":91234504,"price":"64209.95000000","size":"lots","side":"sell"}]"#;
        let (events, rejected) = map_response(body, &mapper).unwrap();
        assert_eq!(events.len(), 3, "{rejected:?}");
        let decoder = Decoder::new(streams);
        let def = &decoder.streams().streams()[0];
        let first = decoder.decode(&events[0].data, None).unwrap();
        assert_eq!(first.key(def), "91234501");
        assert_eq!(first.values[2].as_str(def, 2), Some("BTC-USD"));
        assert_eq!(
            first.values[3],
            sluice_core::stream::Value::Double(64210.55)
        );
        assert_eq!(first.values[5].as_str(def, 5), Some("SELL"));
        assert_eq!(rejected.len(), 1);
        let r = &rejected[0];
        assert_eq!(r.index, 3);
        assert!(
            r.reason.starts_with("item 3: size (from /size = \"lots\")"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_mapping_that_does_not_fit_the_definitions_is_refused() {
        let m = |text: &str| {
            Mapper::new(&toml::from_str(text).unwrap(), StreamSet::builtin()).unwrap_err()
        };
        assert!(matches!(
            m("stream = \"crypto\"\n[fields]\n"),
            MappingError::UnknownStream { .. }
        ));
        let e = m("stream = \"trades\"\n[fields]\nticker = \"/t\"\n");
        assert!(
            e.to_string()
                .contains("\"ticker\" is not a field of stream \"trades\""),
            "{e}"
        );
        assert!(matches!(
            m("stream = \"trades\"\n[fields]\nprice = \"p\"\n"),
            MappingError::BadPointer { .. }
        ));
    }

    #[test]
    fn client_errors_are_not_retried_and_server_errors_are() {
        let status = |status| HandlerError::Fetch {
            target: "https://api.example.com/quotes".into(),
            source: FetchError::Status {
                status,
                body: String::new(),
            },
        };
        for code in [400, 401, 403, 404, 422] {
            assert!(!status(code).is_retryable(), "{code}");
        }
        for code in [408, 429, 500, 502, 503] {
            assert!(status(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn unmappable_responses_are_errors() {
        assert!(matches!(
            map_response(b"<html>", &trades()),
            Err(MapError::NotJson(_))
        ));
        assert_eq!(
            map_response(br#"{"items":[]}"#, &trades()),
            Err(MapError::NoItems {
                pointer: "/data".into()
            })
        );
    }
}
