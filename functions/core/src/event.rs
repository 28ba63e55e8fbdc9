//! The event contract: one JSON object per stream record (ARCHITECTURE.md, "Event contract").
//!
//! `decode` is the hot path of the aggregate function: it borrows strings from the record where
//! it can, checks every field a downstream consumer relies on, and returns a [`DecodeError`]
//! whose text becomes the quarantine reason. Nothing that fails here is dropped: the caller
//! quarantines it with its raw bytes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::{Offset, format_rfc3339_ms, parse_timestamp_ms};

/// Earliest and latest event time accepted (2000-01-01, 2100-01-01): anything outside is a
/// producer bug (seconds sent as milliseconds, a zeroed clock), not data.
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;
pub const MAX_EVENT_TIME_MS: i64 = 4_102_444_800_000;
/// How far an event may claim to be ahead of its arrival on the stream before it is absurd.
pub const MAX_FUTURE_SKEW_MS: i64 = 60 * 60 * 1000;
const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Trades,
    Telemetry,
    Clickstream,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::Trades, Scenario::Telemetry, Scenario::Clickstream];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Trades => "trades",
            Scenario::Telemetry => "telemetry",
            Scenario::Clickstream => "clickstream",
        }
    }

    pub fn parse(text: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// `all`, or a comma-separated list of scenario names.
    pub fn parse_list(text: &str) -> Result<Vec<Scenario>, String> {
        if text.trim() == "all" {
            return Ok(Scenario::ALL.to_vec());
        }
        text.split(',')
            .map(|s| {
                Scenario::parse(s.trim()).ok_or_else(|| {
                    format!(
                        "unknown scenario {:?}: use trades, telemetry, clickstream or all",
                        s.trim()
                    )
                })
            })
            .collect()
    }

    /// Name of the field that carries the partition key in this scenario.
    pub fn key_field(self) -> &'static str {
        match self {
            Scenario::Trades => "symbol",
            Scenario::Telemetry => "host",
            Scenario::Clickstream => "user_id",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    #[serde(rename = "BUY")]
    Buy,
    #[serde(rename = "SELL")]
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TradeType {
    #[serde(rename = "MARKET")]
    Market,
    #[serde(rename = "LIMIT")]
    Limit,
    #[serde(rename = "STOP")]
    Stop,
}

impl TradeType {
    pub fn as_str(self) -> &'static str {
        match self {
            TradeType::Market => "MARKET",
            TradeType::Limit => "LIMIT",
            TradeType::Stop => "STOP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    View,
    Click,
    Cart,
    Purchase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Click => "click",
            Action::Cart => "cart",
            Action::Purchase => "purchase",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trade {
    pub side: Side,
    pub price: f64,
    pub quantity: i64,
    pub trade_type: TradeType,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    pub cpu_pct: f64,
    pub mem_pct: f64,
    pub error_count: i64,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Click {
    pub product_id: String,
    pub action: Action,
    /// Present for `cart` and `purchase`.
    pub amount: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Trade(Trade),
    Telemetry(Telemetry),
    Click(Click),
}

/// One validated event. The scenario's key field (symbol, host, user_id) *is* `key`: the
/// decoder checks they agree, so it is stored once.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: String,
    pub event_time_ms: i64,
    pub key: String,
    pub payload: Payload,
}

impl Event {
    pub fn scenario(&self) -> Scenario {
        match self.payload {
            Payload::Trade(_) => Scenario::Trades,
            Payload::Telemetry(_) => Scenario::Telemetry,
            Payload::Click(_) => Scenario::Clickstream,
        }
    }

    /// The wire form: one compact JSON object.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(224);
        self.write_json(&mut out);
        out
    }

    pub fn write_json(&self, out: &mut Vec<u8>) {
        let event_time = format_rfc3339_ms(self.event_time_ms);
        let mut wire = WireOut {
            scenario: self.scenario().as_str(),
            event_id: &self.event_id,
            event_time: &event_time,
            key: &self.key,
            ..WireOut::default()
        };
        match &self.payload {
            Payload::Trade(t) => {
                wire.symbol = Some(&self.key);
                wire.side = Some(t.side.as_str());
                wire.price = Some(t.price);
                wire.quantity = Some(t.quantity);
                wire.trade_type = Some(t.trade_type.as_str());
            }
            Payload::Telemetry(t) => {
                wire.host = Some(&self.key);
                wire.cpu_pct = Some(t.cpu_pct);
                wire.mem_pct = Some(t.mem_pct);
                wire.error_count = Some(t.error_count);
                wire.latency_ms = Some(t.latency_ms);
            }
            Payload::Click(c) => {
                wire.user_id = Some(&self.key);
                wire.product_id = Some(&c.product_id);
                wire.action = Some(c.action.as_str());
                wire.amount = c.amount;
            }
        }
        // Serializing plain strings and finite numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &wire);
    }
}

#[derive(Serialize, Default)]
struct WireOut<'a> {
    scenario: &'a str,
    event_id: &'a str,
    event_time: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    side: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quantity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trade_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<f64>,
}

/// Why a record could not become an [`Event`]. The `Display` text is the quarantine reason;
/// [`DecodeError::code`] is a stable short code to group by.
#[derive(Debug, Clone, Error, PartialEq)]
pub enum DecodeError {
    #[error("record is not valid UTF-8 JSON: {0}")]
    Json(String),
    /// Valid JSON, but a field has the wrong JSON type (e.g. a string where a number belongs).
    #[error("wrong type: {0}")]
    WrongType(String),
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("unknown scenario {0:?} (expected trades, telemetry or clickstream)")]
    UnknownScenario(String),
    #[error("field `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl DecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Json(_) => "malformed_json",
            DecodeError::WrongType(_) => "wrong_type",
            DecodeError::Missing(_) => "missing_field",
            DecodeError::UnknownScenario(_) => "unknown_scenario",
            DecodeError::Invalid { .. } => "invalid_value",
        }
    }
}

/// A string that borrows from the record unless JSON escapes forced a copy.
#[derive(Debug, Default)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Every field any scenario may carry; which ones are required depends on `scenario`.
/// Unknown fields are ignored so producers can add fields without breaking consumers.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    scenario: Option<Text<'a>>,
    #[serde(borrow)]
    event_id: Option<Text<'a>>,
    #[serde(borrow)]
    event_time: Option<Text<'a>>,
    #[serde(borrow)]
    key: Option<Text<'a>>,
    #[serde(borrow)]
    symbol: Option<Text<'a>>,
    #[serde(borrow)]
    side: Option<Text<'a>>,
    price: Option<f64>,
    quantity: Option<f64>,
    #[serde(borrow)]
    trade_type: Option<Text<'a>>,
    #[serde(borrow)]
    host: Option<Text<'a>>,
    cpu_pct: Option<f64>,
    mem_pct: Option<f64>,
    error_count: Option<f64>,
    latency_ms: Option<f64>,
    #[serde(borrow)]
    user_id: Option<Text<'a>>,
    #[serde(borrow)]
    product_id: Option<Text<'a>>,
    #[serde(borrow)]
    action: Option<Text<'a>>,
    amount: Option<f64>,
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::Missing(field))
}

fn invalid(field: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        field,
        reason: reason.into(),
    }
}

fn identifier(value: Option<Text<'_>>, field: &'static str) -> Result<String, DecodeError> {
    let text = required(value, field)?.0;
    if text.trim().is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if text.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("is {} bytes long (at most {MAX_ID_LEN})", text.len()),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(text.into_owned())
}

fn bounded(value: Option<f64>, field: &'static str, lo: f64, hi: f64) -> Result<f64, DecodeError> {
    let v = required(value, field)?;
    if !(lo..=hi).contains(&v) {
        return Err(invalid(
            field,
            format!("{v} is outside the plausible range [{lo}, {hi}]"),
        ));
    }
    Ok(v)
}

/// A strictly positive value no larger than `hi` (prices).
fn positive(value: Option<f64>, field: &'static str, hi: f64) -> Result<f64, DecodeError> {
    let v = required(value, field)?;
    if !(v > 0.0 && v <= hi) {
        return Err(invalid(
            field,
            format!("{v} must be positive and at most {hi}"),
        ));
    }
    Ok(v)
}

fn whole(value: Option<f64>, field: &'static str, lo: f64, hi: f64) -> Result<i64, DecodeError> {
    let v = bounded(value, field, lo, hi)?;
    if v.fract() != 0.0 {
        return Err(invalid(field, format!("{v} is not a whole number")));
    }
    Ok(v as i64)
}

fn choice<T: Copy>(
    value: Option<Text<'_>>,
    field: &'static str,
    options: &[(&str, T)],
) -> Result<T, DecodeError> {
    let text = required(value, field)?.0;
    options
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            invalid(
                field,
                format!("{text:?} is not one of {}", names.join(", ")),
            )
        })
}

/// Checks that the scenario's own key field, when sent, agrees with `key`.
fn agreeing_key(
    key: &str,
    field: &'static str,
    value: Option<Text<'_>>,
) -> Result<(), DecodeError> {
    match value {
        Some(Text(v)) if v != key => Err(invalid(field, format!("{v:?} differs from key {key:?}"))),
        _ => Ok(()),
    }
}

/// Decodes and validates one record. `arrival_ms` (the stream's arrival timestamp), when known,
/// bounds how far in the future an event may claim to be.
pub fn decode(bytes: &[u8], arrival_ms: Option<i64>) -> Result<Event, DecodeError> {
    // One UTF-8 check of the whole record, then a parser that trusts it: cheaper than
    // serde_json validating string by string.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DecodeError::Json(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    let wire: Wire<'_> = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => DecodeError::WrongType(e.to_string()),
        _ => DecodeError::Json(e.to_string()),
    })?;
    let scenario_text = required(wire.scenario, "scenario")?.0;
    let scenario = Scenario::parse(&scenario_text)
        .ok_or_else(|| DecodeError::UnknownScenario(scenario_text.into_owned()))?;
    let event_id = identifier(wire.event_id, "event_id")?;
    let time_text = required(wire.event_time, "event_time")?.0;
    let event_time_ms = parse_timestamp_ms(&time_text, Offset::Required)
        .map_err(|e| invalid("event_time", e.to_string()))?;
    if !(MIN_EVENT_TIME_MS..MAX_EVENT_TIME_MS).contains(&event_time_ms) {
        return Err(invalid(
            "event_time",
            format!("{time_text} is outside 2000-01-01..2100-01-01"),
        ));
    }
    if let Some(arrival) = arrival_ms
        && event_time_ms > arrival + MAX_FUTURE_SKEW_MS
    {
        return Err(invalid(
            "event_time",
            format!(
                "{time_text} is {} min after the record arrived",
                (event_time_ms - arrival) / 60_000
            ),
        ));
    }
    // The key may come as `key` or only as the scenario's own key field.
    let key_field = scenario.key_field();
    let (key, own_key) = match scenario {
        Scenario::Trades => (wire.key, wire.symbol),
        Scenario::Telemetry => (wire.key, wire.host),
        Scenario::Clickstream => (wire.key, wire.user_id),
    };
    let (key, own_key) = match (key, own_key) {
        (Some(k), own) => (identifier(Some(k), "key")?, own),
        (None, Some(own)) => (identifier(Some(own), key_field)?, None),
        (None, None) => return Err(DecodeError::Missing("key")),
    };
    agreeing_key(&key, key_field, own_key)?;
    let payload = match scenario {
        Scenario::Trades => Payload::Trade(Trade {
            side: choice(
                wire.side,
                "side",
                &[("BUY", Side::Buy), ("SELL", Side::Sell)],
            )?,
            price: positive(wire.price, "price", 1e7)?,
            quantity: whole(wire.quantity, "quantity", 1.0, 1e9)?,
            trade_type: choice(
                wire.trade_type,
                "trade_type",
                &[
                    ("MARKET", TradeType::Market),
                    ("LIMIT", TradeType::Limit),
                    ("STOP", TradeType::Stop),
                ],
            )?,
        }),
        Scenario::Telemetry => Payload::Telemetry(Telemetry {
            cpu_pct: bounded(wire.cpu_pct, "cpu_pct", 0.0, 100.0)?,
            mem_pct: bounded(wire.mem_pct, "mem_pct", 0.0, 100.0)?,
            error_count: whole(wire.error_count, "error_count", 0.0, 1e9)?,
            latency_ms: bounded(wire.latency_ms, "latency_ms", 0.0, 3.6e6)?,
        }),
        Scenario::Clickstream => {
            let action = choice(
                wire.action,
                "action",
                &[
                    ("view", Action::View),
                    ("click", Action::Click),
                    ("cart", Action::Cart),
                    ("purchase", Action::Purchase),
                ],
            )?;
            let amount = match (action, wire.amount) {
                (Action::Cart | Action::Purchase, amount) => {
                    Some(bounded(amount, "amount", 0.0, 1e7)?)
                }
                (_, None) => None,
                (_, amount) => Some(bounded(amount, "amount", 0.0, 1e7)?),
            };
            Payload::Click(Click {
                product_id: identifier(wire.product_id, "product_id")?,
                action,
                amount,
            })
        }
    };
    Ok(Event {
        event_id,
        event_time_ms,
        key,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade_json(extra: &str) -> String {
        format!(
            r#"{{"scenario":"trades","event_id":"e1","event_time":"2026-11-24T05:00:00.250Z","key":"TSLA","symbol":"TSLA","side":"BUY","price":251.5,"quantity":100,"trade_type":"LIMIT"{extra}}}"#
        )
    }

    #[test]
    fn round_trips_every_scenario() {
        let events = [
            Event {
                event_id: "a\"1".into(),
                event_time_ms: 1_795_000_000_123,
                key: "TSLA".into(),
                payload: Payload::Trade(Trade {
                    side: Side::Sell,
                    price: 251.25,
                    quantity: 300,
                    trade_type: TradeType::Market,
                }),
            },
            Event {
                event_id: "b".into(),
                event_time_ms: 1_795_000_000_000,
                key: "host-01".into(),
                payload: Payload::Telemetry(Telemetry {
                    cpu_pct: 55.5,
                    mem_pct: 70.0,
                    error_count: 3,
                    latency_ms: 41.2,
                }),
            },
            Event {
                event_id: "c".into(),
                event_time_ms: 1_795_000_000_001,
                key: "user-0001".into(),
                payload: Payload::Click(Click {
                    product_id: "sku-1".into(),
                    action: Action::Purchase,
                    amount: Some(19.99),
                }),
            },
        ];
        for e in events {
            let bytes = e.to_json();
            assert_eq!(decode(&bytes, None).unwrap(), e);
        }
    }

    #[test]
    fn key_may_come_from_the_scenario_field_only() {
        let json = trade_json("").replace(r#""key":"TSLA","#, "");
        assert_eq!(decode(json.as_bytes(), None).unwrap().key, "TSLA");
    }

    #[test]
    fn rejects_with_reasons() {
        let cases: Vec<(String, &str)> = vec![
            ("{not json".into(), "malformed_json"),
            (
                trade_json("").replace(r#""price":251.5,"#, ""),
                "missing_field",
            ),
            (trade_json("").replace("251.5", "-1"), "invalid_value"),
            (trade_json("").replace("251.5", "\"251.5\""), "wrong_type"),
            (trade_json("").replace("251.5,", "251.5"), "malformed_json"),
            (
                trade_json("").replace(r#""quantity":100"#, r#""quantity":1.5"#),
                "invalid_value",
            ),
            (
                trade_json("").replace(r#""symbol":"TSLA""#, r#""symbol":"AAPL""#),
                "invalid_value",
            ),
            (trade_json("").replace("BUY", "HOLD"), "invalid_value"),
            (
                trade_json("").replace("trades", "weather"),
                "unknown_scenario",
            ),
            (
                trade_json("").replace("2026-11-24T05:00:00.250Z", "1970-01-01T00:00:00Z"),
                "invalid_value",
            ),
            (trade_json("").replace(".250Z", ".250"), "invalid_value"),
        ];
        for (json, code) in cases {
            let err = decode(json.as_bytes(), None).unwrap_err();
            assert_eq!(err.code(), code, "{json}: {err}");
        }
        let far_future = decode(trade_json("").as_bytes(), Some(1_700_000_000_000)).unwrap_err();
        assert!(far_future.to_string().contains("after the record arrived"));
    }

    #[test]
    fn unknown_fields_are_ignored_and_escapes_decode() {
        let json = trade_json(r#","venue":"XNAS""#).replace(r#""e1""#, r#""e\u00e91""#);
        let e = decode(json.as_bytes(), None).unwrap();
        assert_eq!(e.event_id, "eé1");
    }
}
