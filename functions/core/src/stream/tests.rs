use super::*;

const AIRQUALITY: &str = r#"
name = "airquality"
key = "station"
dedup = "reading_id"
[route]
field = "scenario"
value = "airquality"
[time]
field = "ts"
format = "epoch_ms"
allowed_lateness = "5s"
[fields.reading_id]
type = "string"
[fields.station]
type = "string"
[fields.pm25]
type = "double"
min = 0.0
[fields.no2]
type = "double"
nullable = true
path = "/readings/no2"
coerce = true
[[metrics]]
field = "pm25"
aggregates = ["count", "sum", "min", "max", "avg", "stddev", "first", "last", "p50", "p95", "p99"]
weight = "no2"
detect = "level"
detect_on = "avg"
detect_window = "tumbling:10s"
[[rollups]]
name = "all"
metrics = ["pm25"]
distinct = ["station"]
[[windows]]
spec = "tumbling:10s"
[[windows]]
spec = "tumbling:1m"
"#;

fn err(text: &str) -> DefinitionError {
    parse("defs/x.toml", text).expect_err("definition should be refused")
}

/// Replaces the first occurrence of `from` (which must exist) in the example.
fn variant(from: &str, to: &str) -> String {
    assert!(AIRQUALITY.contains(from), "{from}");
    AIRQUALITY.replacen(from, to, 1)
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).expect("needle")]
        .matches('\n')
        .count()
        + 1
}

#[test]
fn the_issue_example_parses_with_derived_defaults() {
    let d = parse("airquality.toml", AIRQUALITY).unwrap();
    assert_eq!(d.name, "airquality");
    let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
    // The time field is not declared among the fields: its column comes first.
    assert_eq!(names, ["ts", "reading_id", "station", "pm25", "no2"]);
    assert_eq!(d.time().ty, FieldType::Timestamp);
    assert_eq!(d.time().time.as_ref().unwrap().format, TimeFormat::EpochMs);
    assert_eq!(d.key_field().name, "station");
    assert_eq!(d.allowed_lateness_ms, Some(5_000));
    assert_eq!(d.max_clock_skew_ms, DEFAULT_MAX_CLOCK_SKEW_MS);
    let no2 = d.field("no2").unwrap();
    assert_eq!(no2.path, ["readings", "no2"]);
    assert!(no2.nullable && no2.coerce);
    let m = &d.metrics[0];
    assert_eq!(m.name, "pm25");
    assert_eq!(m.weight, Some(4));
    assert_eq!(
        m.detect_window,
        Some(WindowSpec::Tumbling { size_ms: 10_000 })
    );
    assert_eq!(d.rollups[0].distinct, vec![d.key]);
}

#[test]
fn shipped_definitions_load() {
    let set = StreamSet::builtin();
    assert_eq!(set.names(), ["trades", "telemetry", "clickstream"]);
    let trades = set.get("trades").unwrap();
    let columns: Vec<&str> = trades.fields.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(
        columns,
        [
            "event_id",
            "event_time",
            "symbol",
            "side",
            "price",
            "quantity",
            "trade_type"
        ]
    );
    assert_eq!(trades.metrics[0].detect, Detect::Returns);
    let click = set.get("clickstream").unwrap();
    assert_eq!(click.metrics[0].source, MetricSource::Constant(1.0));
    assert!(click.field("amount").unwrap().required_when.is_some());
}

#[test]
fn a_zone_less_local_time_with_capitalised_names_is_representable() {
    // The stock-price feed of issue 11 (the worked example).
    let text = fixtures::STOCKS;
    let d = parse("stocks.toml", text).unwrap();
    let columns: Vec<&str> = d.fields.iter().map(|f| f.column.as_str()).collect();
    assert_eq!(
        columns,
        [
            "date",
            "index",
            "open",
            "high",
            "low",
            "close",
            "adj_close",
            "volume",
            "closeusd"
        ]
    );
    assert_eq!(d.time().path, ["Date"]);
    assert_eq!(
        d.time().time.as_ref().unwrap().zone,
        Some(chrono_tz::America::New_York)
    );
}

#[test]
fn errors_name_file_line_and_what_is_wrong() {
    let cases: Vec<(String, &str, &str)> = vec![
        // (definition, text on the offending line, words the message must contain)
        (
            variant("type = \"double\"\nmin", "tpye = \"double\"\nmin"),
            "tpye",
            "tpye",
        ),
        (
            variant("type = \"double\"\nmin", "type = \"float\"\nmin"),
            "\"float\"",
            "unknown type",
        ),
        (
            variant("field = \"pm25\"", "field = \"pm10\""),
            "\"pm10\"",
            "not a field",
        ),
        (
            variant("key = \"station\"", "key = \"stations\""),
            "\"stations\"",
            "not a field",
        ),
        (
            variant("name = \"airquality\"", "name = \"windows\""),
            "\"windows\"",
            "reserved",
        ),
        (
            variant("name = \"airquality\"", "name = \"Air-Quality\""),
            "Air-Quality",
            "[a-z]",
        ),
        (
            variant("spec = \"tumbling:1m\"", "spec = \"tumbling:1 minute\""),
            "1 minute",
            "not understood",
        ),
        (
            variant("[fields.pm25]", "[fields.shard_id]"),
            "[fields.shard_id]",
            "reserved",
        ),
        (
            variant("[fields.pm25]", "[fields.Station]"),
            "[fields.Station]",
            "already used",
        ),
        (variant("\"p99\"", "\"p999\""), "p999", "unknown aggregate"),
        (
            variant("detect_on = \"avg\"", "detect_on = \"median\""),
            "median",
            "not an aggregate",
        ),
        (
            variant(
                "detect_window = \"tumbling:10s\"",
                "detect_window = \"tumbling:5m\"",
            ),
            "tumbling:5m",
            "not one of",
        ),
        (
            variant("format = \"epoch_ms\"", "format = \"epoch_ns\""),
            "epoch_ns",
            "unknown time format",
        ),
        (
            variant("allowed_lateness = \"5s\"", "allowed_lateness = \"soon\""),
            "soon",
            "allowed_lateness",
        ),
        (
            variant(
                "allowed_lateness = \"5s\"",
                "allowed_lateness = \"5s\"\nmax_clock_skew = \"later\"",
            ),
            "later",
            "max_clock_skew",
        ),
        (
            variant("[fields.pm25]", "[fields.select]"),
            "[fields.select]",
            "reserved",
        ),
        (
            variant("weight = \"no2\"", "weight = \"station\""),
            "weight = ",
            "numeric",
        ),
        (
            variant("metrics = [\"pm25\"]", "metrics = [\"pm10\"]"),
            "\"pm10\"",
            "not a declared metric",
        ),
        (
            variant("path = \"/readings/no2\"", "path = \"readings.no2\""),
            "readings.no2",
            "JSON pointer",
        ),
        (
            variant("nullable = true\npath", "nullable = 1\npath"),
            "nullable = 1",
            "bool",
        ),
    ];
    for (text, line_text, words) in cases {
        let e = err(&text);
        assert_eq!(e.file, "defs/x.toml");
        assert_eq!(
            e.line,
            line_of(&text, line_text),
            "line of {line_text:?} for {e}"
        );
        assert!(e.message.contains(words), "{e} should say {words:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("defs/x.toml:{}:", e.line))
        );
    }
}

#[test]
fn a_zone_on_a_format_with_its_own_offset_is_refused() {
    let e = err(&variant(
        "allowed_lateness",
        "zone = \"UTC\"\nallowed_lateness",
    ));
    assert!(e.message.contains("zone applies only"), "{e}");
    let e = err(&variant(
        "format = \"epoch_ms\"",
        "format = \"%Y-%m-%d %H:%M:%S\"\nzone = \"Mars/Olympus\"",
    ));
    assert!(e.message.contains("unknown time zone"), "{e}");
}

#[test]
fn a_metric_on_a_string_field_takes_count_and_distinct_only() {
    let text = variant(
        "field = \"pm25\"\naggregates = [",
        "field = \"reading_id\"\naggregates = [",
    );
    assert!(err(&text).message.contains("needs a numeric field"));
    let ok = AIRQUALITY.replace(
        "[[rollups]]",
        "[[metrics]]\nfield = \"reading_id\"\naggregates = [\"count\", \"distinct\"]\n[[rollups]]",
    );
    parse("x.toml", &ok).unwrap();
    let key_distinct = AIRQUALITY.replace(
        "[[rollups]]",
        "[[metrics]]\nfield = \"station\"\naggregates = [\"distinct\"]\n[[rollups]]",
    );
    assert!(err(&key_distinct).message.contains("rollups"));
}

#[test]
fn sets_refuse_duplicate_names_and_unrouted_streams() {
    let twice = StreamSet::from_sources([("a.toml", AIRQUALITY), ("b.toml", AIRQUALITY)]);
    let e = twice.unwrap_err();
    assert_eq!(e.file, "b.toml");
    assert!(e.message.contains("already defined in a.toml"), "{e}");
    let unrouted = AIRQUALITY
        .replace(
            "[route]\nfield = \"scenario\"\nvalue = \"airquality\"\n",
            "",
        )
        .replace("name = \"airquality\"", "name = \"air2\"");
    let e = StreamSet::from_sources([("a.toml", AIRQUALITY), ("b.toml", unrouted.as_str())])
        .unwrap_err();
    assert!(e.message.contains("no [route]"), "{e}");
    // Alone, a stream needs no route.
    StreamSet::from_sources([("b.toml", unrouted.as_str())]).unwrap();
}

#[test]
fn json_pointers_unescape() {
    assert_eq!(
        parse::pointer("/a~1b/c~0d").unwrap(),
        vec!["a/b".to_string(), "c~d".to_string()]
    );
    assert_eq!(parse::pointer("a/b"), None);
    assert_eq!(parse::pointer("/a//b"), None);
}

#[test]
fn error_positions_count_lines_and_characters() {
    let e = DefinitionError::at("f", "ab\ncdé\nx", 7, "m");
    assert_eq!((e.line, e.column), (2, 4));
    assert_eq!(e.to_string(), "f:2:4: m");
}
