"""The reference Python handler must produce what sluice's aggregate handler produces.

SLUICE_BIN names the sluice binary (CI: the debug build); without it the release build under
~/.cache/sluice-target is used, and the tests are skipped only when neither exists.
"""

import base64
import copy
import itertools
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # noqa: E402
import reference_handler as rh  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def binary():
    if not os.environ.get("SLUICE_BIN") and not os.access(compare.DEFAULT_BIN, os.X_OK):
        pytest.skip(f"no sluice binary: set SLUICE_BIN (default {compare.DEFAULT_BIN} is missing)")
    return compare.sluice_bin()  # SLUICE_BIN set but wrong: an error, not a skip


@pytest.fixture(scope="session")
def batches(tmp_path_factory):
    """2,000 events per scenario at 5 events/s: 400 s of event time, so 10 s, 1 min and 5 min
    hopping windows and (for clickstream) sessions close inside the batch."""
    d = tmp_path_factory.mktemp("batches")
    return {s: compare.make_event(s, 2000, 5, d / f"{s}.json") for s in rh.SCENARIOS}


def run_both(event: dict, tmp_path: Path, python_event: dict | None = None):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    sluice = compare.sluice_objects(path, tmp_path / "lake")
    python, _ = compare.python_objects(python_event if python_event is not None else event)
    return sluice, python, compare.compare_objects(sluice, python)


def load(path: Path) -> dict:
    return json.loads(path.read_bytes())


def record_data(record: dict) -> dict:
    return json.loads(base64.b64decode(record["kinesis"]["data"]))


def set_data(record: dict, data: bytes) -> None:
    record["kinesis"]["data"] = base64.b64encode(data).decode()


EXPECTED_WINDOWS = {
    "trades": {"tumbling_10s", "tumbling_1m", "hopping_5m_1m"},
    "telemetry": {"tumbling_10s", "tumbling_1m"},
    "clickstream": {"tumbling_10s", "tumbling_1m", "session_5m"},
}


@pytest.mark.parametrize("scenario", rh.SCENARIOS)
def test_windows_equal_sluice(scenario, batches, tmp_path):
    sluice, python, report = run_both(load(batches[scenario]), tmp_path)
    assert report.ok, report.text()
    frames = compare._frames(sluice)
    windows = frames["windows"]
    assert report.counts["raw"] == 2000
    assert report.counts["windows"] == len(windows) > 100
    assert set(windows["window_name"]) == EXPECTED_WINDOWS[scenario]
    # Real numbers were compared: aggregates are not degenerate.
    assert windows["sum"].abs().sum() > 0 and windows["stddev"].notna().any()
    if scenario == "trades":
        assert windows["weighted_avg"].notna().any()
    if scenario == "clickstream":
        assert (windows["scope"] == "rollup").any()


def test_perturbed_price_is_caught(batches, tmp_path):
    event = load(batches["trades"])
    perturbed = copy.deepcopy(event)
    # A record in the middle of the batch, so its windows close.
    rec = perturbed["Records"][1000]
    data = record_data(rec)
    data["price"] = round(data["price"] * 1.001, 2)
    set_data(rec, json.dumps(data).encode())
    _, _, report = run_both(event, tmp_path, python_event=perturbed)
    assert not report.ok
    text = report.text()
    assert "raw seq" in text and "price" in text
    assert any(d.startswith(f"window trades {data['key']} tumbling_10s") for d in report.diffs), text
    assert any("hopping_5m_1m" in d for d in report.diffs), text


def test_perturbed_event_time_is_caught(batches, tmp_path):
    event = load(batches["telemetry"])
    perturbed = copy.deepcopy(event)
    rec = perturbed["Records"][800]
    data = record_data(rec)
    t = rh.parse_timestamp_ms(data["event_time"]) + 10_000  # into the next 10 s window
    data["event_time"] = compare._iso(t)
    set_data(rec, json.dumps(data).encode())
    _, _, report = run_both(event, tmp_path, python_event=perturbed)
    assert not report.ok
    assert any("count" in d for d in report.diffs), report.text()


def test_perturbed_validity_is_caught(batches, tmp_path):
    event = load(batches["clickstream"])
    perturbed = copy.deepcopy(event)
    rec = perturbed["Records"][5]
    data = record_data(rec)
    data["event_id"] = ""
    set_data(rec, json.dumps(data).encode())
    _, _, report = run_both(event, tmp_path, python_event=perturbed)
    assert "raw: sluice has 2000 rows, python 1999" in report.diffs
    assert "quarantine: sluice has 0 rows, python 1" in report.diffs


# Records each decoder must reject (or accept) exactly as sluice does; see stream/decode.rs and time.rs.
GOOD = {"scenario": "trades", "event_id": "x1", "event_time": "2026-11-24T05:00:00.250Z",
        "key": "TSLA", "symbol": "TSLA", "side": "BUY", "price": 251.5, "quantity": 100,
        "trade_type": "LIMIT"}


_IDS = itertools.count()


def trade(**changes) -> bytes:
    """GOOD with `changes` (`...` removes a member), under an event id of its own: cases that
    share an id would be duplicates (or conflicts) of each other."""
    d = {**GOOD, "event_id": f"{GOOD['event_id']}-{next(_IDS)}"}
    for k, v in changes.items():
        if v is ...:
            d.pop(k)
        else:
            d[k] = v
    return json.dumps(d).encode()


def other(scenario, **fields) -> bytes:
    return json.dumps({"scenario": scenario, "event_id": f"e-{next(_IDS)}", "event_time": "2026-11-24T05:00:01Z",
                       **fields}).encode()


TEL = dict(host="h1", cpu_pct=1, mem_pct=1, error_count=0, latency_ms=1)
CASES = [
    b"{not json", b"", b"[1,2]", b"5", b"\xff\xfe", b'{"scenario":"trades","price":NaN}',
    trade() + b"x", trade() + b"  \n", b"\xef\xbb\xbf" + trade(),
    trade(price="251.5"), trade(price=None), trade(price=...), trade(price=-1), trade(price=0),
    trade(price=1e7), trade(price=1.0000001e7), trade(price=True), trade(price=10**23),
    b'{"scenario":"trades","price":1e400}', b'{"scenario":"trades","price":1' + b"0" * 400 + b"}",
    b'{"scenario":"trades","venue":1' + b"0" * 400 + b"}",
    trade(quantity=1.5), trade(quantity=0), trade(quantity=1e9), trade(quantity=2e9),
    trade(symbol="AAPL"), trade(key=...), trade(key=..., symbol=...), trade(side="HOLD"),
    trade(trade_type=...), trade(scenario="weather"), trade(scenario=...), trade(scenario=5),
    trade(event_time="2026-11-24T05:00:00"), trade(event_time="2026-02-29T00:00:00Z"),
    trade(event_time="2028-02-29T00:00:00Z"), trade(event_time="1999-12-31T23:59:59Z"),
    trade(event_time="2026-11-24T07:00:00Z"), trade(event_time="2026-11-24T05:00:00.Z"),
    trade(event_time="2026-11-24 05:00:00+01:00"), trade(event_time=" 2026-11-24T05:00:00Z "),
    trade(event_time="2026-11-24T05:00:00.123456Z"), trade(event_time="2026-11-24T05:00:00+0100"),
    trade(event_time="2026-11-24T05:00:00z"), trade(event_time="2026-11-24t05:00:00Z"),
    trade(event_time="2026-11-24T05:00:00Z\x1f"), trade(event_time="\uff12026-11-24T05:00:00Z"),
    trade(event_time="0000-01-01T00:00:00Z"), trade(event_time="2026-11-24T05:00:60Z"),
    trade(event_time="2026-11-24T05:00:00-24:00"), trade(event_time=12),
    trade(event_id=""), trade(event_id="   "), trade(event_id="a" * 256), trade(event_id="a" * 257),
    trade(event_id="\u00e9" * 129), trade(event_id="a\u0001b"), trade(event_id="a\u0085b"),
    trade(event_id=5), trade(key=" TSLA", symbol=" TSLA"), trade(key="\u3000"),
    trade(venue=[1]), trade(host=5), trade(host="h"), trade(amount="x"),
    b'{"scenario":"trades","scenario":"trades","event_id":"d","event_time":"2026-11-24T05:00:00Z",'
    b'"key":"A","side":"BUY","price":1,"quantity":1,"trade_type":"STOP"}',
    b'{"scenario":"trades","event_id":"d","event_time":"2026-11-24T05:00:00Z","key":"A",'
    b'"side":"BUY","price":1,"quantity":1,"trade_type":"STOP","venue":1,"venue":2}',
    b'{"scenario":"trades","event_id":"\\ud800"}', b'{"scenario":"trades","venue":"\\ud800"}',
    b'{"scenario":"trades","venue":1e400}', b'{"scenario":"trades","venue":NaN}',
    other("telemetry", **{**TEL, "cpu_pct": 101}), other("telemetry", **{**TEL, "error_count": 2.5}),
    other("telemetry", **{**TEL, "latency_ms": -1}), other("telemetry", **{**TEL, "cpu_pct": -0.0}),
    other("clickstream", user_id="u", product_id="p", action="purchase"),
    other("clickstream", user_id="u", product_id="p", action="view", amount=5),
    other("clickstream", user_id="u", product_id="p", action="view", amount=-1),
    other("clickstream", user_id="u", action="buy"),
    other("clickstream", user_id="u", action="cart", amount=3),
]


def with_records(event: dict, datas: list, arrival=None) -> dict:
    event = copy.deepcopy(event)
    base = event["Records"][0]
    event["Records"] = event["Records"][:20]
    for i, data in enumerate(datas):
        r = copy.deepcopy(base)
        seq = str(2_000_000 + i)
        set_data(r, data)
        r["kinesis"]["sequenceNumber"] = seq
        r["eventID"] = f"shardId-000000000000:{seq}"
        if arrival is not None:
            r["kinesis"]["approximateArrivalTimestamp"] = arrival
        event["Records"].append(r)
    return event


def test_validation_matches_sluice(batches, tmp_path):
    event = with_records(load(batches["trades"]), CASES)
    sluice, python, report = run_both(event, tmp_path)
    assert report.ok, report.text()
    quarantine = compare._frames(python)["quarantine"]
    assert set(quarantine["reason_code"]) == {
        "malformed_json", "wrong_type", "missing_field", "unknown_scenario", "invalid_value", "out_of_range"}
    assert report.counts["quarantine"] == len(quarantine) > 50


def test_producer_duplicates_and_conflicts_match_sluice(batches, tmp_path):
    # A producer's retry (same id, same bytes) is dropped and counted; the same id with other
    # bytes is quarantined as duplicate_conflict; the first copy stands.
    first, changed = trade(event_id="dup"), trade(event_id="dup", quantity=7)
    event = with_records(load(batches["trades"]), [first, first, changed, first])
    sluice, python, report = run_both(event, tmp_path)
    assert report.ok, report.text()
    quarantine = compare._frames(python)["quarantine"]
    assert list(quarantine["reason_code"]) == ["duplicate_conflict"]
    raw = compare._frames(python)["raw"]
    assert list(raw["event_id"]).count("dup") == 1


def test_escaped_scenario_partition(batches, tmp_path):
    # An undecodable record whose `scenario` has a JSON escape is still filed under its scenario.
    event = with_records(load(batches["trades"]), [b'{"scenario":"tr\\u0061des","event_id":"x"}'])
    _, _, report = run_both(event, tmp_path)
    assert report.ok, report.text()


def test_a_record_that_is_not_base64_is_quarantined_not_the_batch(batches, tmp_path):
    event = with_records(load(batches["trades"]), [trade(), trade()])
    event["Records"][-1]["kinesis"]["data"] = '{"scenario":"trades"}'  # not base64
    sluice, python, report = run_both(event, tmp_path)
    assert report.ok, report.text()
    quarantine = compare._frames(python)["quarantine"]
    assert list(quarantine["reason_code"]) == ["malformed_envelope"]
    assert list(quarantine["raw"]) == [b'{"scenario":"trades"}']


def test_fractional_arrival_time(batches, tmp_path):
    # aws_lambda_events 1.2.1 read the fraction as unscaled milliseconds (.5 s became 5 ms);
    # sluice's own envelope reader (functions/aggregate/src/payload.rs) keeps it.
    event = with_records(load(batches["trades"]), [trade()], arrival=1795496402.5)
    _, _, report = run_both(event, tmp_path)
    assert report.ok, report.text()


T0 = rh.parse_timestamp_ms("2026-11-24T05:00:00Z")
S, M = 1000, 60_000


def kinesis_event(records) -> dict:
    """records: (shard number, event dict) in delivery order → a KinesisEvent dict."""
    out, seqs = [], {}
    for shard, ev in records:
        seqs[shard] = seqs.get(shard, 0) + 1
        seq = f"4959033827149025660855969253836157109592157598913658{shard}{seqs[shard]:03d}"
        out.append({
            "eventID": f"shardId-00000000000{shard}:{seq}", "eventName": "aws:kinesis:record",
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "awsRegion": "local",
            "eventSourceARN": "arn:aws:kinesis:local:000000000000:stream/sluice-local",
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": ev["key"],
                        "sequenceNumber": seq, "approximateArrivalTimestamp": (T0 + 6 * 3600 * S) // S,
                        "data": base64.b64encode(json.dumps(ev).encode()).decode()}})
    return {"Records": out}


def tr(key, ms, price, qty=1):
    return (0, {"scenario": "trades", "event_id": f"t{ms}-{price}", "event_time": compare._iso(ms),
                "key": key, "side": "SELL", "price": price, "quantity": qty, "trade_type": "MARKET"})


def cl(user, ms, action="view", amount=None):
    ev = {"scenario": "clickstream", "event_id": f"c{user}{ms}", "event_time": compare._iso(ms),
          "key": user, "product_id": "p1", "action": action}
    if amount is not None:
        ev["amount"] = amount
    return (1, ev)


def te(host, ms, cpu):
    return (1, {"scenario": "telemetry", "event_id": f"m{host}{ms}", "event_time": compare._iso(ms),
                "key": host, "cpu_pct": cpu, "mem_pct": 50.0, "error_count": 1, "latency_ms": 9.5})


def boundary_records():
    """Events exactly on window ends, the watermark and the session gap; equal-time ties; two
    shards; and a session that outgrows the 4 h maximum. Arrival order is as listed."""
    trades = [
        tr("A", T0, 100, 10), tr("A", T0, 101, 20),  # same event time: first 100, last 101
        tr("A", T0 - 1, 99, 5),  # out of order but within the lateness
        tr("A", T0 + 10 * S - 1, 102), tr("A", T0 + 10 * S, 103),  # either side of a 10 s end
        tr("B", T0 + M - 1, 50, 3), tr("B", T0 + M, 51, 3),
        tr("A", T0 + M + 5 * S, 104, 2),  # watermark = T0 + 1 min, exactly a window end
        tr("B", T0 + M, 52),  # exactly at the watermark: on time
        tr("B", T0 + M - 1, 53), tr("A", T0 + 30 * S, 105),  # behind it: late
    ]
    gap = 5 * M
    clicks = [cl("u1", T0), cl("u1", T0 + gap, "purchase", 20.0),  # exactly one gap apart: two sessions
              cl("u1", T0 + 2 * gap - 1, "purchase", 5.5),  # one ms less than a gap: same session
              cl("u3", T0 + 3 * gap - 5 * S), cl("u3", T0 + 3 * gap - 5 * S, "cart", 3.0)]
    clicks += [cl("long", T0 + i * 4 * M, "purchase" if i % 3 else "view", float(i) if i % 3 else None)
               for i in range(66)]  # every 4 min for 4 h 20 min: over the session maximum
    clicks.sort(key=lambda r: rh.parse_timestamp_ms(r[1]["event_time"]))
    clicks.append(cl("edge", T0 + 275 * M - 5 * S))  # its session ends exactly at the watermark
    clicks.append(cl("z", T0 + 280 * M))  # watermark 4 h 40 min − 5 s: closes the sessions above
    telemetry = [te("h1", T0 + i * 2500, float(i % 7)) for i in range(40)]
    # Interleave the shards, as one Lambda batch may carry several.
    records, rest = [], [trades, clicks, telemetry]
    while any(rest):
        for r in rest:
            if r:
                records.append(r.pop(0))
    return records


def test_boundaries_and_shards_match_sluice(tmp_path):
    event = kinesis_event(boundary_records())
    sluice, python, report = run_both(event, tmp_path)
    assert report.ok, report.text()
    w = compare._frames(sluice)["windows"]
    assert report.counts["late"] == 2
    # The cases above really are in sluice's output.
    assert set(w["key"]) >= {"A", "B", "u1", "u3", "long", "edge", "h1", "all"}
    t0 = pd.Timestamp(T0, unit="ms", tz="UTC")
    b = w[(w["key"] == "B") & (w["metric"] == "price")]
    assert (b["window_end"] == t0 + pd.Timedelta(minutes=1)).sum() == 3  # 10 s, 1 min, 5 min hop
    sessions = w[(w["window_name"] == "session_5m") & (w["metric"] == "actions")]
    assert sorted(sessions[sessions["key"] == "u1"]["count"]) == [1, 2]
    assert len(sessions[sessions["key"] == "long"]) == 2  # cut at the maximum duration
    assert (sessions["key"] == "edge").sum() == 1
    a10 = w[(w["key"] == "A") & (w["window_name"] == "tumbling_10s") & (w["metric"] == "price")
            & (w["window_start"] == t0)].iloc[0]
    assert (a10["count"], a10["first"], a10["last"]) == (3, 100, 102)


def test_timestamps_parse_like_sluice():
    assert rh.parse_timestamp_ms("2026-11-24T05:03:07.123Z") == 1795496587123
    assert rh.parse_timestamp_ms("2026-11-24 07:03:07.123456+02:00") == 1795496587123
    assert rh.parse_timestamp_ms("1970-01-01T00:00:00Z") == 0
    assert rh.parse_timestamp_ms("1969-12-31T23:59:59.999Z") == -1
    for bad in ["", "2026-13-01T00:00:00Z", "2026-11-24T05:03:07", "2026-11-24T05:03:07Zjunk"]:
        with pytest.raises(ValueError):
            rh.parse_timestamp_ms(bad)


def test_compare_command(tmp_path, capsys):
    status = compare.main(["--scenario", "clickstream", "--sizes", "500", "--repeat", "1", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0
    (row,) = out["rows"]
    assert row["equal"] and row["records"] == 500 and row["windows_compared"] == row["windows"] > 0
    assert row["sluice_events_per_s"] > 0 and row["python_events_per_s"] > 0
    assert row["python_peak_rss_mb"] >= row["python_baseline_rss_mb"] > 0
