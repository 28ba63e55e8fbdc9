"""Golden output of the aggregate handler, guarding the stream-definition refactor (issue 11).

Builds fixed-seed Kinesis payloads (`sluice bench make-event` for the three shipped scenarios,
interleaved, plus bad, late and duplicate records), runs them through `sluice invoke aggregate`
in two batches of one shard (so state is restored between them), then dumps every table of the
lake as sorted JSON lines: one file per table, partition columns included, timestamps as UTC
milliseconds, binary as base64.

    python tests/golden/capture.py --sluice target/debug/sluice --out tests/golden/expected
    python tests/golden/capture.py --sluice target/debug/sluice --state-only --out tests/golden/state-v0.json

`tests/test_golden.py` runs the same capture with today's binary and compares it with the
committed files (see its docstring for the intended differences).
"""

import argparse
import base64
import datetime
import json
import pathlib
import subprocess
import tempfile

import pyarrow.parquet as pq

ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/sluice-golden"
SHARD = "shardId-000000000000"
SEED = 11
RECORDS = 900  # per scenario
RATE = 1.5  # events/s of event time: 10 minutes, so 10 s, 1 min, 5 min hopping and sessions close
TABLES = ["trades", "telemetry", "clickstream", "windows", "anomalies", "late", "quarantine"]
# The planting the golden was captured with (the generators' defaults then): the first incident
# after 6 minutes, then every 5 on average. The generators now plant hours apart after 10 minutes,
# which would leave this 10-minute capture without an incident; its input stays as it was.
PLANTING = ["--warmup", "6m", "--incident-gap", "5m"]

BAD = [
    b'{"scenario":"trades","event_id":"bad-1","event_time":"2026-11-24T05:00:02Z"',
    b"\xff\xfe not utf8 at all",
    json.dumps({"scenario": "trades", "event_id": "bad-3", "event_time": "2026-11-24T05:03:00Z", "key": "AAPL",
                "side": "SELL", "quantity": 5, "trade_type": "MARKET"}).encode(),
    json.dumps({"scenario": "trades", "event_id": "bad-4", "event_time": "2026-11-24T05:03:00Z", "key": "AAPL",
                "side": "SELL", "price": -3.0, "quantity": 5, "trade_type": "MARKET"}).encode(),
    json.dumps({"scenario": "telemetry", "event_id": "bad-5", "event_time": "2026-11-24T05:03:00Z",
                "host": "web-1", "cpu_pct": "high", "mem_pct": 50, "error_count": 0, "latency_ms": 12}).encode(),
    json.dumps({"scenario": "clickstream", "event_id": "bad-6", "event_time": "2026-11-24T05:03:00Z",
                "user_id": "u", "product_id": "p", "action": "view", "amount": [1]}).encode(),
    json.dumps({"scenario": "weather", "event_id": "bad-7"}).encode(),
    json.dumps({"scenario": "trades", "event_id": "bad-8", "event_time": "1970-01-01T00:00:00Z", "key": "AAPL",
                "side": "SELL", "price": 3.0, "quantity": 5, "trade_type": "MARKET"}).encode(),
]

# Arrives after the watermark has passed it: goes to `late` and raw, not into a window.
LATE = json.dumps({"scenario": "trades", "event_id": "late-1", "event_time": "2026-11-24T05:00:03Z", "key": "AAPL",
                   "symbol": "AAPL", "side": "BUY", "price": 190.0, "quantity": 10, "trade_type": "LIMIT"}).encode()


def generated(sluice: pathlib.Path, scenario: str, work: pathlib.Path):
    """The records `sluice bench make-event` writes for one scenario: (arrival, key, bytes)."""
    out = work / f"{scenario}.json"
    subprocess.run([str(sluice), "bench", "make-event", "--scenario", scenario, "--records", str(RECORDS),
                    "--rate", str(RATE), "--seed", str(SEED), *PLANTING, "--output", str(out)],
                   check=True, capture_output=True)
    records = json.loads(out.read_text())["Records"]
    return [(r["kinesis"]["approximateArrivalTimestamp"], r["kinesis"]["partitionKey"],
             base64.b64decode(r["kinesis"]["data"])) for r in records]


def kinesis_event(records, first_seq):
    out = []
    for i, (arrival, key, data) in enumerate(records):
        seq = str(first_seq + i)
        out.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": key, "sequenceNumber": seq,
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": arrival},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{SHARD}:{seq}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/x",
            "awsRegion": "eu-west-1", "eventSourceARN": ARN,
        })
    return {"Records": out}


def payloads(sluice: pathlib.Path, work: pathlib.Path):
    """Two consecutive batches of one shard: the scenarios interleaved in event-time order, bad
    records spread through them, a late record and a redelivered tail in the second batch."""
    merged = []
    for scenario in ["trades", "telemetry", "clickstream"]:
        for i, (arrival, key, data) in enumerate(generated(sluice, scenario, work)):
            event_time = json.loads(data)["event_time"]
            merged.append((event_time, scenario, i, arrival, key, data))
    merged.sort()
    records = [(arrival, key, data) for (_, _, _, arrival, key, data) in merged]
    for j, bad in enumerate(BAD):
        records.insert(100 + j * 211, (records[0][0], "bad", bad))
    half = len(records) // 2
    first, second = records[:half], records[half:]
    second.insert(20, (second[0][0], "AAPL", LATE))
    batch1 = kinesis_event(first, 1000)
    # The second batch starts with the first batch's last 5 records again (a redelivery).
    batch2 = kinesis_event(first[-5:] + second, 1000 + half - 5)
    return [batch1, batch2]


def cell(value):
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def dump(lake: pathlib.Path, out: pathlib.Path):
    """Every table as sorted JSON lines, partition columns (from the path) included."""
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "trades": "raw/scenario=trades", "telemetry": "raw/scenario=telemetry",
        "clickstream": "raw/scenario=clickstream", "windows": "windows", "anomalies": "anomalies",
        "late": "late", "quarantine": "quarantine",
    }
    for name, prefix in tables.items():
        rows = []
        for path in sorted((lake / prefix).rglob("*.parquet")):
            parts = dict(p.split("=", 1) for p in path.relative_to(lake).parts[:-1] if "=" in p)
            for row in pq.read_table(path).to_pylist():
                row = {k: cell(v) for k, v in row.items()}
                row.update(parts)
                rows.append(json.dumps(row, sort_keys=True))
        rows.sort()
        (out / f"{name}.jsonl").write_text("".join(r + "\n" for r in rows))


STATE_DIR = "state/aggregate/sluice-golden/shardId-000000000000"


def newest_state(lake: pathlib.Path) -> pathlib.Path:
    """The shard's newest state object: its newest generation (`<dir>/<20 digits>.json`), or
    the single `<dir>.json` of releases before generations."""
    generations = sorted((lake / STATE_DIR).glob("*.json"))
    return generations[-1] if generations else lake / f"{STATE_DIR}.json"


def capture(sluice: pathlib.Path, out: pathlib.Path, extra_args=(), state_after_first=None):
    """Runs both batches and dumps the lake to `out`. `state_after_first`, when given, is a
    shard state object put in place of the one the first batch committed (a state written by
    an earlier release, say), so the second batch starts from it."""
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        lake = work / "lake"
        for i, batch in enumerate(payloads(sluice, work)):
            event = work / f"batch-{i}.json"
            event.write_text(json.dumps(batch))
            subprocess.run([str(sluice), "invoke", "aggregate", "--event", str(event), "--lake", str(lake),
                            *extra_args], check=True, capture_output=True)
            if i == 0 and state_after_first is not None:
                newest_state(lake).write_bytes(pathlib.Path(state_after_first).read_bytes())
        dump(lake, out)


def first_batch_state(sluice: pathlib.Path, out: pathlib.Path):
    """The shard state object `sluice` commits after the first batch."""
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        event = work / "batch-0.json"
        event.write_text(json.dumps(payloads(sluice, work)[0]))
        subprocess.run([str(sluice), "invoke", "aggregate", "--event", str(event), "--lake", str(work / "lake")],
                       check=True, capture_output=True)
        out.write_bytes(newest_state(work / "lake").read_bytes())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sluice", type=pathlib.Path, required=True)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--state-only", action="store_true",
                        help="write only the state object after the first batch to --out (a file)")
    args = parser.parse_args()
    if args.state_only:
        first_batch_state(args.sluice, args.out)
    else:
        capture(args.sluice, args.out)
