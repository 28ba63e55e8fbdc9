//! The events of the three shipped scenarios as their synthetic generators make them, and their
//! wire form (one compact JSON object, what `streams/{trades,telemetry,clickstream}.toml`
//! describe). Decoding any stream's records is [`crate::stream::Decoder`]'s work.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::format_rfc3339_ms;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{Decoder, StreamSet};

    #[test]
    fn the_wire_form_is_what_the_shipped_definitions_read() {
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
        let decoder = Decoder::new(StreamSet::builtin());
        for e in events {
            let r = decoder.decode(&e.to_json(), None).unwrap();
            let def = &decoder.streams().streams()[r.stream];
            assert_eq!(def.name, e.scenario().as_str());
            assert_eq!(
                (r.event_time_ms, r.key(def).as_ref()),
                (e.event_time_ms, e.key.as_str())
            );
            let dedup = def.dedup.unwrap();
            assert_eq!(
                r.values[dedup].as_str(def, dedup),
                Some(e.event_id.as_str())
            );
        }
    }
}
