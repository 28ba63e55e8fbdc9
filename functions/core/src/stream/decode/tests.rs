use super::*;
use crate::event::{Payload, Scenario};
use crate::generate::{Generator, GeneratorConfig};
use crate::stream::{StreamDef, parse};

fn decoder(text: &str) -> Decoder {
    Decoder::new(StreamSet::from_sources([("test.toml", text)]).unwrap())
}

fn code(d: &Decoder, json: &str) -> &'static str {
    d.decode(json.as_bytes(), None).unwrap_err().error.code()
}

fn text_of(def: &StreamDef, r: &Record, name: &str) -> String {
    let i = def.fields.iter().position(|f| f.name == name).unwrap();
    match &r.values[i] {
        Value::Long(v) => v.to_string(),
        v => v.as_str(def, i).unwrap().to_string(),
    }
}

fn number_of(def: &StreamDef, r: &Record, name: &str) -> Option<f64> {
    let i = def.fields.iter().position(|f| f.name == name).unwrap();
    r.values[i].as_f64()
}

/// The shipped definitions accept exactly what the scenario decoder before them accepted, with
/// the same values: every event of the three generators, and every rejection with the same code.
#[test]
fn shipped_definitions_decode_like_the_scenario_decoder() {
    let d = Decoder::new(StreamSet::builtin());
    for scenario in Scenario::ALL {
        let mut g = Generator::new(GeneratorConfig::new(scenario, 5, 200.0, 1_795_496_400_000));
        let (mut events, mut truth) = (Vec::new(), Vec::new());
        g.generate_count(2_000, &mut events, &mut truth);
        for e in &events {
            let bytes = e.to_json();
            let r = d.decode(&bytes, None).expect("decodes");
            let def = &d.streams().streams()[r.stream];
            assert_eq!(def.name, scenario.as_str());
            assert_eq!(
                (r.event_time_ms, r.key(def).as_ref()),
                (e.event_time_ms, e.key.as_str())
            );
            assert_eq!(text_of(def, &r, "event_id"), e.event_id);
            match &e.payload {
                Payload::Trade(t) => {
                    assert_eq!(text_of(def, &r, "side"), t.side.as_str());
                    assert_eq!(number_of(def, &r, "price"), Some(t.price));
                    assert_eq!(number_of(def, &r, "quantity"), Some(t.quantity as f64));
                    assert_eq!(text_of(def, &r, "trade_type"), t.trade_type.as_str());
                }
                Payload::Telemetry(t) => {
                    assert_eq!(number_of(def, &r, "cpu_pct"), Some(t.cpu_pct));
                    assert_eq!(number_of(def, &r, "latency_ms"), Some(t.latency_ms));
                    assert_eq!(
                        number_of(def, &r, "error_count"),
                        Some(t.error_count as f64)
                    );
                }
                Payload::Click(c) => {
                    assert_eq!(text_of(def, &r, "action"), c.action.as_str());
                    assert_eq!(number_of(def, &r, "amount"), c.amount);
                }
            }
        }
    }
    let trade = r#"{"scenario":"trades","event_id":"e1","event_time":"2026-11-24T05:00:00.250Z","key":"TSLA","symbol":"TSLA","side":"BUY","price":251.5,"quantity":100,"trade_type":"LIMIT"}"#;
    // Each case with the reason code the scenario decoder before stream definitions gave it
    // (None: accepted), and the code the definitions give now.
    let cases: Vec<(String, Option<&str>)> = vec![
        ("{not json".into(), Some("malformed_json")),
        (trade.replace(r#""price":251.5,"#, ""), Some("missing_field")),
        (trade.replace("251.5", "-1"), Some("invalid_value")),
        (trade.replace("251.5", "0"), Some("invalid_value")),
        (trade.replace("251.5", "\"251.5\""), Some("wrong_type")),
        (trade.replace("251.5,", "251.5"), Some("malformed_json")),
        (trade.replace(r#""quantity":100"#, r#""quantity":1.5"#), Some("invalid_value")),
        (trade.replace("BUY", "HOLD"), Some("invalid_value")),
        (trade.replace("trades", "weather"), Some("unknown_scenario")),
        (trade.replace(r#""scenario":"trades","#, ""), Some("missing_field")),
        // `invalid_value` before the accepted time range had its own reason (issue 16, item 9).
        (trade.replace("2026-11-24T05:00:00.250Z", "1970-01-01T00:00:00Z"), Some("out_of_range")),
        (trade.replace(".250Z", ".250"), Some("invalid_value")),
        (trade.replace(r#""key":"TSLA","symbol":"TSLA""#, r#""key":"TSLA""#), None),
        (trade.replace(r#""event_id":"e1""#, r#""event_id":"  ""#), Some("invalid_value")),
        (r#"{"scenario":"clickstream","event_id":"c","event_time":"2026-11-24T05:00:00Z","user_id":"u","product_id":"p","action":"purchase"}"#.into(), Some("missing_field")),
        (r#"{"scenario":"clickstream","event_id":"c","event_time":"2026-11-24T05:00:00Z","user_id":"u","product_id":"p","action":"view","amount":[1]}"#.into(), Some("wrong_type")),
        (r#"{"scenario":"telemetry","event_id":"t","event_time":"2026-11-24T05:00:00Z","host":"h","cpu_pct":250.0,"mem_pct":1,"error_count":0,"latency_ms":1}"#.into(), Some("invalid_value")),
        ("[1, 2]".into(), Some("wrong_type")),
        (format!("{trade} trailing"), Some("malformed_json")),
        (trade.replace(r#""symbol":"TSLA""#, r#""symbol":"AAPL""#), Some("invalid_value")),
        (trade.replace(r#""key":"TSLA""#, r#""key":"\u3000""#), Some("invalid_value")),
        (trade.replace(r#""scenario":"trades","#, r#""scenario":"trades","scenario":"trades","#), Some("wrong_type")),
        (trade.replace(r#""price":251.5,"#, r#""price":251.5,"price":251.5,"#), Some("wrong_type")),
    ];
    for (json, code) in cases {
        let got = d
            .decode(json.as_bytes(), None)
            .err()
            .map(|e| e.error.code());
        assert_eq!(got, code, "{json}");
    }
    let far_future = d
        .decode(trade.as_bytes(), Some(1_700_000_000_000))
        .unwrap_err();
    assert!(
        far_future
            .error
            .to_string()
            .contains("after the record arrived")
    );
    assert_eq!(
        far_future.stream,
        Some(0),
        "rejected records keep their stream partition"
    );
}

const STOCKS: &str = crate::stream::fixtures::STOCKS;

/// A full quote of the stock feed at local time `date`.
fn quote(date: &str) -> String {
    format!(
        r#"{{"Index":"MSFT","Date":"{date}","Open":412.5,"High":418.25,"Low":409.1,"Close":415.75,"Adj_Close":415.75,"Volume":182115,"CloseUSD":415.75}}"#
    )
}

#[test]
fn a_zone_less_local_time_is_read_in_its_zone() {
    let d = decoder(STOCKS);
    let r = d
        .decode(quote("2026-11-24 03:36:05").as_bytes(), None)
        .unwrap();
    let def = &d.streams().streams()[0];
    // New York is UTC-5 in November.
    assert_eq!(
        crate::time::format_rfc3339_ms(r.event_time_ms),
        "2026-11-24T08:36:05.000Z"
    );
    assert_eq!(r.key(def), "MSFT");
    assert_eq!(number_of(def, &r, "Close"), Some(415.75));
    assert_eq!(text_of(def, &r, "Volume"), "182115");
    // 2026-03-08 02:30 does not exist in New York; 2026-11-01 01:30 happens twice.
    let gap = d
        .decode(quote("2026-03-08 02:30:00").as_bytes(), None)
        .unwrap_err();
    assert_eq!(gap.error.code(), "invalid_value");
    assert!(
        gap.error.to_string().contains("America/New_York"),
        "{}",
        gap.error
    );
    let twice = quote("2026-11-01 01:30:00");
    let twice = twice.as_bytes();
    let e = d.decode(twice, None).unwrap_err();
    assert!(e.error.to_string().contains("happens twice"), "{}", e.error);
    let earliest = decoder(&STOCKS.replace("zone = ", "ambiguous = \"earliest\"\nzone = "));
    let latest = decoder(&STOCKS.replace("zone = ", "ambiguous = \"latest\"\nzone = "));
    let (a, b) = (
        earliest.decode(twice, None).unwrap().event_time_ms,
        latest.decode(twice, None).unwrap().event_time_ms,
    );
    assert_eq!(b - a, 3_600_000, "EDT then EST");
    let bad = d.decode(quote("24/11/2026").as_bytes(), None).unwrap_err();
    assert!(
        bad.error.to_string().contains("does not match"),
        "{}",
        bad.error
    );
}

#[test]
fn coercion_accepts_numbers_as_strings_and_enumerations_in_any_case() {
    let text = crate::stream::fixtures::CRYPTO_TRADES;
    let d = decoder(text);
    let r = d
        .decode(br#"{"time":"2026-11-24T05:00:01.120Z","trade_id":91234501,"product":"BTC-USD","price":"64210.55000000","size":"0.01250000","side":"sell"}"#, None)
        .unwrap();
    let def = &d.streams().streams()[0];
    assert_eq!(r.key(def), "91234501");
    assert_eq!(number_of(def, &r, "price"), Some(64210.55));
    assert_eq!(text_of(def, &r, "side"), "SELL");
    let e = d
        .decode(br#"{"time":"2026-11-24T05:00:01Z","trade_id":1,"product":"p","price":"a lot","size":"1","side":"sell"}"#, None)
        .unwrap_err();
    assert_eq!(e.error.code(), "invalid_value");
    assert!(e.error.to_string().contains("price"), "{}", e.error);
    // Without coerce, a string is the wrong type.
    let strict = decoder(&text.replace("coerce = true", "coerce = false"));
    assert_eq!(
        code(
            &strict,
            r#"{"time":"2026-11-24T05:00:01Z","trade_id":1,"product":"p","price":"1","size":"1","side":"SELL"}"#
        ),
        "wrong_type"
    );
    assert_eq!(
        code(
            &strict,
            r#"{"time":"2026-11-24T05:00:01Z","trade_id":1,"product":"p","price":1,"size":1,"side":"sell"}"#
        ),
        "invalid_value"
    );
}

#[test]
fn nested_paths_nullable_fields_and_epoch_times() {
    let text = r#"
name = "airquality"
key = "station"
[time]
field = "ts"
format = "epoch_ms"
[fields.station]
type = "string"
[fields.pm25]
type = "double"
min = 0.0
[fields.no2]
type = "double"
nullable = true
path = "/readings/no2"
[fields.first_sensor]
type = "string"
nullable = true
path = "/sensors/0"
[fields.ok]
type = "bool"
nullable = true
"#;
    let d = decoder(text);
    let r = d
        .decode(br#"{"station":"s1","ts":1795496400250,"pm25":3.5,"readings":{"no2":12.5},"sensors":["a","b"],"ok":true}"#, None)
        .unwrap();
    assert_eq!(r.event_time_ms, 1_795_496_400_250);
    assert_eq!(r.values[3], Value::Double(12.5));
    assert_eq!(r.values[4], Value::Str("a".into()));
    assert_eq!(r.values[5], Value::Bool(true));
    let r = d
        .decode(
            br#"{"station":"s1","ts":1795496400250,"pm25":3.5,"ok":null}"#,
            None,
        )
        .unwrap();
    assert_eq!(&r.values[3..], [Value::Null, Value::Null, Value::Null]);
    assert_eq!(
        code(&d, r#"{"station":"s1","ts":1795496400250,"pm25":-1}"#),
        "invalid_value"
    );
    assert_eq!(code(&d, r#"{"station":"s1","pm25":1}"#), "missing_field");
    assert_eq!(
        code(&d, r#"{"station":"s1","ts":"soon","pm25":1}"#),
        "wrong_type"
    );
    assert_eq!(
        code(
            &d,
            r#"{"station":"s1","ts":1795496400250,"pm25":1,"readings":{"no2":"x"}}"#
        ),
        "wrong_type"
    );
    let seconds = decoder(&text.replace("epoch_ms", "epoch_s"));
    let r = seconds
        .decode(br#"{"station":"s1","ts":1795496400.25,"pm25":1}"#, None)
        .unwrap();
    assert_eq!(r.event_time_ms, 1_795_496_400_250);
    let micros = decoder(&text.replace("epoch_ms", "epoch_us"));
    let r = micros
        .decode(br#"{"station":"s1","ts":1795496400250999,"pm25":1}"#, None)
        .unwrap();
    assert_eq!(r.event_time_ms, 1_795_496_400_250);
}

#[test]
fn the_route_picks_the_definition_and_an_unknown_one_is_named() {
    let d = Decoder::new(StreamSet::builtin());
    let e = d
        .decode(br#"{"scenario":"weather","event_id":"x"}"#, None)
        .unwrap_err();
    assert_eq!(e.stream, None);
    let msg = e.error.to_string();
    assert!(
        msg.contains("weather") && msg.contains("trades, telemetry, clickstream"),
        "{msg}"
    );
    let one = parse("x.toml", STOCKS).unwrap();
    assert!(one.route.is_none(), "a lone stream needs no route");
}

#[test]
fn event_times_before_the_accepted_range_are_out_of_range() {
    let set = crate::stream::StreamSet::builtin();
    let decoder = Decoder::new(set.clone()).with_accepted_from(1_735_689_600_000); // 2025-01-01
    let trade = |t: &str| {
        format!(
            r#"{{"scenario":"trades","event_id":"e","event_time":"{t}","symbol":"AAPL","side":"BUY","price":1.0,"quantity":1,"trade_type":"LIMIT"}}"#
        )
    };
    let old = decoder
        .decode(trade("2024-12-31T23:59:59Z").as_bytes(), None)
        .unwrap_err();
    assert_eq!(old.error.code(), "out_of_range");
    assert!(
        old.error.to_string().contains("2025-01-01"),
        "{}",
        old.error
    );
    assert!(
        decoder
            .decode(trade("2025-01-01T00:00:00Z").as_bytes(), None)
            .is_ok()
    );
    assert!(
        decoder
            .clone()
            .decode(trade("2024-06-01T00:00:00Z").as_bytes(), None)
            .is_err(),
        "a clone keeps the range"
    );
    let default = Decoder::new(set);
    assert!(
        default
            .decode(trade("2024-12-31T23:59:59Z").as_bytes(), None)
            .is_ok()
    );
    assert_eq!(
        default
            .decode(trade("1999-12-31T23:59:59Z").as_bytes(), None)
            .unwrap_err()
            .error
            .code(),
        "out_of_range"
    );
}

#[test]
fn kafka_topics_route_records_to_their_definitions() {
    let def = |name: &str, topic: &str| {
        format!(
            r#"name = "{name}"
key = "id"
[route]
topic = "{topic}"
[time]
field = "t"
format = "epoch_ms"
[fields.id]
type = "string"
[fields.v]
type = "double"
"#
        )
    };
    let (a, b) = (
        def("orders", "shop.orders"),
        def("payments", "shop.payments"),
    );
    let set =
        crate::stream::StreamSet::from_sources([("a.toml", a.as_str()), ("b.toml", b.as_str())])
            .unwrap();
    let d = Decoder::new(set.clone());
    let record = br#"{"id":"x","t":1795496400000,"v":1.5}"#;
    let name = |topic| {
        set.streams()[d.decode_in(record, None, topic).unwrap().stream]
            .name
            .clone()
    };
    assert_eq!(name(Some("shop.orders")), "orders");
    assert_eq!(name(Some("shop.payments")), "payments");
    let other = d.decode_in(record, None, Some("shop.returns")).unwrap_err();
    assert_eq!(other.error.code(), "unknown_scenario");
    assert!(
        other.error.to_string().contains("shop.returns"),
        "{}",
        other.error
    );
    assert!(
        d.decode(record, None).is_err(),
        "a record of no topic routes nowhere"
    );

    let both = def("orders", "shop.orders")
        .replace("topic = ", "field = \"kind\"\nvalue = \"o\"\ntopic = ");
    let err = crate::stream::StreamSet::from_sources([("c.toml", both.as_str())]).unwrap_err();
    assert!(
        err.to_string().contains("either topic, or field and value"),
        "{err}"
    );
}

#[test]
fn framing_and_compression_are_read_and_a_wrong_one_is_named() {
    let base = crate::stream::BUILTIN
        .iter()
        .find(|(f, _)| f.ends_with("trades.toml"))
        .unwrap()
        .1;
    let framed = format!("framing = \"ndjson\"\ncompression = \"gzip\"\n{base}");
    let set = crate::stream::StreamSet::from_sources([("t.toml", framed.as_str())]).unwrap();
    assert_eq!(
        set.unframing(),
        crate::stream::Unframing {
            ndjson: true,
            gzip: true
        }
    );
    assert_eq!(
        crate::stream::StreamSet::builtin().unframing(),
        crate::stream::Unframing::default()
    );
    let wrong = format!("framing = \"csv\"\n{base}");
    let err = crate::stream::StreamSet::from_sources([("t.toml", wrong.as_str())]).unwrap_err();
    assert!(err.to_string().starts_with("t.toml:1:"), "{err}");
    assert!(err.to_string().contains("\"ndjson\""), "{err}");
}
