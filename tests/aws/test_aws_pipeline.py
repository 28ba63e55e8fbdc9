"""sluice's real Lambda binaries against moto, through the real Lambda Runtime API protocol:

    generate --(Kinesis PutRecords)--> stream --(KinesisEvent per shard)--> aggregate
        --(Parquet)--> S3 lake --(S3 event per object)--> alert --(SNS)--> topic --> SQS queue

The test plays the Lambda service: it invokes each function with the payload Lambda would
deliver (scheduled event, KinesisEvent read back from the stream, S3 notifications) and reads
every result back with independent clients (boto3, pyarrow).

Binaries: $SLUICE_LAMBDA_BIN_DIR/<fn>, default ${CARGO_TARGET_DIR:-<repo>/target}/debug/<fn>;
the test is skipped while they are not built (SLUICE_AWS_REQUIRE_BINARIES=1: failed instead).
"""

import datetime as dt
import io
import json
import re
import time
from collections import Counter

from aws_deps import require_modules

require_modules("boto3", "moto", "pyarrow")

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import aws_helpers  # noqa: E402

SCENARIOS = ("trades", "telemetry")
TICKS = 6  # generate invocations, one minute of event time apart (plus the 60 s backfill)
BATCH = 2000  # records per KinesisEvent
INVOKE_TIMEOUT = 180  # seconds; debug builds on 2 cores
TS_MS_UTC = pa.timestamp("ms", tz="UTC")

# A rule that fires on every closed one-minute window, so alerts are deterministic on any data;
# the cooldown leaves one alert per (rule, scenario, key) for this run's few minutes.
RULES_KEY = "config/rules.toml"
RULES_TOML = """\
[[rule]]
name = "any-window"
description = "Test rule: fires on every closed one-minute window."
source = "windows"
when = 'window_name == "tumbling_1m" && count > 0'
severity = "info"
cooldown = "1h"
"""

PART_KEY = re.compile(
    r"^(raw|windows|anomalies|late|quarantine)/scenario=([a-z]+)/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/"
    r"part-(shardId-\d+)-(\d+)-(\d+)\.parquet$"
)


base_env = aws_helpers.base_env


def parse_rfc3339(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def read_parquet(s3, bucket, key):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_table(io.BytesIO(body))


def read_all(s3, bucket, keys):
    return [read_parquet(s3, bucket, k) for k in sorted(keys)]


def test_pipeline_generate_kinesis_aggregate_s3_alert_sns_sqs(lambda_binaries, aws, resources, start_lambda):
    res = resources
    s3, kinesis, sqs = aws["s3"], aws["kinesis"], aws["sqs"]
    env = base_env(aws, res)

    # ---------------------------------------------------------------- 1. generate → Kinesis
    generate = start_lambda(lambda_binaries["generate"], "sluice-generate", {
        **env,
        "SLUICE_SINK": "kinesis",
        "SLUICE_STREAM_NAME": res.stream,
        "SLUICE_SCENARIOS": ",".join(SCENARIOS),
        "SLUICE_RATE": "50",
        "SLUICE_SEED": "7",
    })
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    t0 = now - dt.timedelta(minutes=TICKS - 1)
    generated = 0
    for i in range(TICKS):
        tick = t0 + dt.timedelta(minutes=i)
        out = generate.invoke_ok(aws_helpers.scheduled_event(tick), timeout=INVOKE_TIMEOUT)
        reports = {r["scenario"]: r for r in out["scenarios"]}
        assert sorted(reports) == sorted(SCENARIOS), f"tick {i}: scenarios reported {out}"
        for sc, r in reports.items():
            assert r["events"] > 0, f"tick {i}: {sc} generated no events: {out}"
            assert isinstance(r["anomalies_planted"], int) and r["anomalies_planted"] >= 0, r
            assert parse_rfc3339(r["until"]) == tick, f"tick {i}: {sc} should reach the tick's time {tick}: {r}"
            generated += r["events"]

    by_shard = aws_helpers.read_stream(kinesis, res.stream)
    in_stream = sum(len(r) for r in by_shard.values())
    assert in_stream > 0, "the stream holds no records after generate"
    assert in_stream == generated, f"generate reported {generated} events, the stream holds {in_stream}"
    assert all(by_shard.values()), f"every shard should get records: { {k: len(v) for k, v in by_shard.items()} }"

    kinesis_events = {}  # event_id -> (shard, sequence, event)
    for shard_id, records in by_shard.items():
        for r in records:
            ev = json.loads(r["Data"])  # the generator sends no garbage
            assert ev["scenario"] in SCENARIOS, ev
            assert r["PartitionKey"] == ev["key"], f"partition key is the event key: {r['PartitionKey']} vs {ev}"
            assert ev["event_id"] not in kinesis_events, f"duplicate event id in the stream: {ev['event_id']}"
            kinesis_events[ev["event_id"]] = (shard_id, r["SequenceNumber"], ev)
    per_scenario = Counter(ev["scenario"] for _, _, ev in kinesis_events.values())
    assert set(per_scenario) == set(SCENARIOS), per_scenario

    # ------------------------------------------------------- 2. Kinesis → aggregate → S3
    aggregate = start_lambda(lambda_binaries["aggregate"], "sluice-aggregate", {
        **env,
        "SLUICE_LATENESS": "5s",
        "SLUICE_WINDOWS": "",
    })
    batches = aws_helpers.deliver_all(aggregate, res.stream_arn, by_shard, timeout=INVOKE_TIMEOUT, batch=BATCH)
    # Each invocation logs its figures in CloudWatch's embedded metric format on stdout.
    emf = [json.loads(line) for line in aggregate.stdout_path.read_text().splitlines()
           if line.startswith("{") and '"_aws"' in line]
    assert len(emf) == sum(len(b) for b in batches.values()), "one metrics line per invocation"
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "sluice"
    assert sum(e["records_in"] for e in emf) == in_stream, "records_in adds up to the stream's records"

    # --------------------------------------------------------------------- 3. the lake
    objects = aws_helpers.list_objects(s3, res.bucket)
    keys = sorted(objects)
    by_prefix = lambda p: [k for k in keys if k.startswith(p)]  # noqa: E731
    for sc in SCENARIOS:
        assert by_prefix(f"raw/scenario={sc}/"), f"no raw/scenario={sc}/ objects; keys: {keys[:50]}"
    assert by_prefix("windows/"), f"no windows/ objects; keys: {keys[:50]}"
    assert by_prefix("quarantine/") == [], f"generated events were quarantined: {by_prefix('quarantine/')}"
    for shard_id in by_shard:
        state = f"state/aggregate/{res.stream}/{shard_id}/"  # its generations
        assert by_prefix(state), f"missing shard state {state}; state keys: {by_prefix('state/')}"
    for k in by_prefix("raw/") + by_prefix("windows/") + by_prefix("anomalies/") + by_prefix("late/"):
        m = PART_KEY.match(k)
        assert m, f"lake key does not follow the layout: {k}"
        assert m.group(3) in by_shard, f"unknown shard in {k}"
        assert int(m.group(4)) <= int(m.group(5)), k

    raw = read_all(s3, res.bucket, by_prefix("raw/"))
    for t in raw:
        assert t.schema.field("event_time").type == TS_MS_UTC, t.schema
        assert t.schema.field("arrival_time").type == TS_MS_UTC, t.schema
    raw_rows = sum(t.num_rows for t in raw)
    assert raw_rows == in_stream, f"raw rows {raw_rows} != Kinesis records {in_stream}"
    raw_ids = Counter(i for t in raw for i in t.column("event_id").to_pylist())
    assert not [i for i, c in raw_ids.items() if c > 1], "duplicated raw rows"
    assert set(raw_ids) == set(kinesis_events), "raw event ids differ from the stream's"
    for t in raw:
        for eid, shard, seq in zip(t.column("event_id").to_pylist(), t.column("shard_id").to_pylist(),
                                   t.column("sequence_number").to_pylist()):
            assert (shard, seq) == kinesis_events[eid][:2], f"lineage of {eid}: {(shard, seq)} vs {kinesis_events[eid][:2]}"

    windows = pa.concat_tables(read_all(s3, res.bucket, by_prefix("windows/")), promote_options="default")
    assert windows.num_rows > 0, "windows/ objects hold no rows"
    for col in ("window_start", "window_end"):
        assert windows.schema.field(col).type == TS_MS_UTC, windows.schema
    rows = windows.to_pylist()
    one_minute = [r for r in rows if r["window_name"] == "tumbling_1m"]
    assert one_minute, f"no tumbling_1m windows; names: {Counter(r['window_name'] for r in rows)}"
    for r in one_minute:
        assert r["window_end"] - r["window_start"] == dt.timedelta(minutes=1), r
        assert r["window_end"].timestamp() % 60 == 0, f"windows are aligned to the epoch: {r}"
        assert r["count"] > 0, r
    # Late events (older than the watermark when they arrived) stay in raw and go to no window.
    late_ids = set()
    for t in read_all(s3, res.bucket, by_prefix("late/")):
        assert t.schema.field("event_time").type == TS_MS_UTC, t.schema
        late_ids.update(t.column("event_id").to_pylist())
    assert late_ids <= set(raw_ids), "late events must also be stored raw"
    # Each closed one-minute price window of a symbol counts exactly the symbol's raw trades in
    # [start, end) that were not late: the window engine checked end to end against the stream.
    trade_times = {}  # symbol -> event times of its on-time trades
    for eid, (_, _, ev) in kinesis_events.items():
        if ev["scenario"] == "trades" and eid not in late_ids:
            trade_times.setdefault(ev["key"], []).append(parse_rfc3339(ev["event_time"]))
    checked = 0
    for r in one_minute:
        if r["metric"] != "price" or r["key"].startswith("*"):
            continue
        start, end = r["window_start"], r["window_end"]
        expected = sum(1 for t in trade_times.get(r["key"], []) if start <= t < end)
        assert r["count"] == expected, f"window {r['key']} [{start}, {end}) counts {r['count']}, raw has {expected} on time"
        checked += 1
    assert checked > 0, "no per-symbol tumbling_1m price windows to check"

    # ---------------------------------------------- 4. redelivery changes nothing in the lake
    before = aws_helpers.list_objects(s3, res.bucket)
    redeliver = [(s, b[0]) for s, b in batches.items()] + [(s, b[-1]) for s, b in batches.items()]
    for shard_id, event in redeliver:
        out = aggregate.invoke_ok(event, timeout=INVOKE_TIMEOUT)
        assert out.get("batchItemFailures") == [], f"redelivery to {shard_id}: {out}"
    after = aws_helpers.list_objects(s3, res.bucket)
    assert sorted(after) == sorted(before), (
        f"redelivery changed the key set: added {sorted(set(after) - set(before))}, removed {sorted(set(before) - set(after))}"
    )
    changed = [k for k in before if before[k]["etag"] != after[k]["etag"]]
    assert changed == [], f"redelivery rewrote objects with different bytes: {changed}"

    # ---------------------- 4b. staged uploads all completed; the sweep closes the rest
    uploads = s3.list_multipart_uploads(Bucket=res.bucket).get("Uploads", [])
    assert uploads == [], f"staged uploads left incomplete after their commits: {uploads}"
    # Nothing arrives after the last batch: a sweep five minutes later finds every shard idle
    # and writes the windows the watermark had not reached.
    aggregate.invoke_ok(aws_helpers.scheduled_event(now + dt.timedelta(minutes=5)), timeout=INVOKE_TIMEOUT)
    swept = sorted(set(aws_helpers.list_objects(s3, res.bucket)) - set(after))
    swept_windows = [k for k in swept if k.startswith("windows/")]
    assert swept_windows, f"the sweep wrote no windows: {swept}"
    assert all("sweep" in k for k in swept_windows), swept_windows
    late_rows = [r for t in read_all(s3, res.bucket, swept_windows) for r in t.to_pylist()]
    closed_late = [r for r in late_rows if r["window_name"] == "tumbling_1m" and r["metric"] == "price"
                   and not r["key"].startswith("*")]
    assert closed_late, "the sweep closed no one-minute price windows"
    for r in closed_late:
        start, end = r["window_start"], r["window_end"]
        expected = sum(1 for t in trade_times.get(r["key"], []) if start <= t < end)
        assert r["count"] == expected, f"swept window {r['key']} [{start}, {end}) counts {r['count']}, raw {expected}"
    assert s3.list_multipart_uploads(Bucket=res.bucket).get("Uploads", []) == []

    # ------------ 4c. a DLQ message sent to aggregate replays its range, read from Kinesis:
    # a range every record of which is committed already changes nothing.
    shard_id, events = next(iter(batches.items()))
    first_batch = events[0]["Records"]
    dlq = {
        "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "version": "1.0",
        "KinesisBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first_batch[0]["kinesis"]["sequenceNumber"],
            "endSequenceNumber": first_batch[-1]["kinesis"]["sequenceNumber"],
            "batchSize": len(first_batch),
            "streamArn": res.stream_arn,
        },
    }
    before_replay = aws_helpers.list_objects(s3, res.bucket)
    aggregate.invoke_ok(dlq, timeout=INVOKE_TIMEOUT)
    logged = re.findall(r"replay shard_id=\S+ first=\S+ last=\S+ read=(\d+) replayed=(\d+)", aggregate.output())
    assert logged and logged[-1] == (str(len(first_batch)), "0"), f"read the range from Kinesis, replayed none: {logged}"
    assert sorted(aws_helpers.list_objects(s3, res.bucket)) == sorted(before_replay), "nothing replayed twice"

    # ------------------------------------------------------ 5. S3 events → alert → SNS → SQS
    s3.put_object(Bucket=res.bucket, Key=RULES_KEY, Body=RULES_TOML.encode())
    alert = start_lambda(lambda_binaries["alert"], "sluice-alert", {
        **env,
        "SLUICE_TOPIC_ARN": res.topic_arn,
        "SLUICE_RULES_KEY": RULES_KEY,
    })
    sent = 0
    notify_keys = by_prefix("windows/") + by_prefix("anomalies/")
    for k in notify_keys:
        out = alert.invoke_ok(aws_helpers.s3_event(res.bucket, k, objects[k]["size"], objects[k]["etag"]),
                              timeout=INVOKE_TIMEOUT)
        assert out.get("objects") == 1, f"alert did not evaluate {k}: {out}"
        assert out.get("rule_errors", []) == [], f"rule errors on {k}: {out}"
        sent += out["sent"]
    # One alert per (scenario, key) having a one-minute window (cooldown 1h > this run).
    expected_slots = {(m.group(2), r["key"])
                      for k in by_prefix("windows/") if (m := PART_KEY.match(k))
                      for r in read_parquet(s3, res.bucket, k).to_pylist()
                      if r["window_name"] == "tumbling_1m" and r["count"] > 0}
    assert sent >= 1, "the always-firing test rule sent nothing"
    assert sent == len(expected_slots), f"alert sent {sent}, expected one per (scenario, key): {len(expected_slots)}"

    messages = aws_helpers.receive_all(sqs, res.queue_url, expected=sent, timeout=20)
    assert len(messages) == sent, f"SQS got {len(messages)} messages, alert reported {sent} sent"
    slots = set()
    for m in messages:
        attrs = m.get("MessageAttributes", {})
        for name in ("severity", "scenario", "key"):
            assert name in attrs and attrs[name]["DataType"] == "String", f"attribute {name} missing: {m}"
        assert attrs["severity"]["StringValue"] in ("info", "warning", "critical"), attrs
        assert attrs["severity"]["StringValue"] == "info", "the only rule is severity info"
        assert attrs["scenario"]["StringValue"] in SCENARIOS, attrs
        assert attrs.get("rule", {}).get("StringValue") == "any-window", f"attribute rule: {attrs}"
        assert "Rule:" in m["Body"] and "any-window" in m["Body"], m["Body"]
        slots.add((attrs["scenario"]["StringValue"], attrs["key"]["StringValue"]))
    assert slots == expected_slots, f"alerted (scenario, key) pairs differ: {sorted(slots ^ expected_slots)[:20]}"
    # What was sent is in the lake's alerts table too: one row per message, under its scenario.
    alert_keys = [k for k in aws_helpers.list_objects(s3, res.bucket) if k.startswith("alerts/")]
    rows = [(k, r) for k in alert_keys for r in read_parquet(s3, res.bucket, k).to_pylist()]
    assert len(rows) == sent, f"alerts table has {len(rows)} rows for {sent} alerts sent: {alert_keys[:10]}"
    assert len({r["alert_id"] for _, r in rows}) == sent, "one row per alert id"
    assert {(re.search(r"scenario=([^/]+)/", k).group(1), r["key"]) for k, r in rows} == slots
    assert all(r["rule"] == "any-window" and r["sent_time"].tzinfo is not None for _, r in rows)

    for fn in (generate, aggregate, alert):
        assert fn.alive(), f"{fn.function_name} exited: it must stay warm between invocations"
        assert fn.api.init_errors == [] and fn.api.protocol_errors == [], fn.output()


def test_aggregate_without_bucket_is_an_init_error_naming_the_variable(lambda_binaries, aws, resources, start_lambda):
    env = base_env(aws, resources)
    env["SLUICE_BUCKET"] = None  # removed from the environment
    fn = start_lambda(lambda_binaries["aggregate"], "sluice-aggregate-misconfigured",
                      {**env, "SLUICE_LATENESS": "5s", "SLUICE_WINDOWS": ""})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and fn.alive() and not fn.api.init_errors:
        time.sleep(0.1)
    code = fn.wait_exit(5)
    assert fn.api.init_errors or (code is not None and code != 0), (
        f"a missing SLUICE_BUCKET must fail at start (init error or non-zero exit); "
        f"exit code {code}, polls of /next: {fn.api.next_polls}\n{fn.output()}"
    )
    text = "\n".join(e.text() for e in fn.api.init_errors) + "\n" + fn.output()
    assert "SLUICE_BUCKET" in text, f"the error must name SLUICE_BUCKET:\n{text}"
    assert fn.api.next_polls == 0 or fn.api.init_errors, "it polled for events despite the missing variable"


def test_a_shard_closed_by_a_reshard_is_flushed_and_retired_by_the_sweep(lambda_binaries, aws, resources, start_lambda):
    """Issue "Every event exactly once", item 2: after a reshard, the sweep asks Kinesis
    (ListShards) which shards are closed and whether anything follows their committed position;
    a drained parent has every window flushed and its state retired, and later sweeps pass it by."""
    res, kinesis, s3 = resources, aws["kinesis"], aws["s3"]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    trades = [{"scenario": "trades", "event_id": f"r-{i}", "event_time": aws_helpers.rfc3339(now - dt.timedelta(seconds=30 - i)),
               "symbol": "AAPL", "side": "BUY", "price": 190.0, "quantity": 1, "trade_type": "LIMIT"} for i in range(20)]
    kinesis.put_records(StreamName=res.stream, Records=[
        {"Data": json.dumps(t).encode(), "PartitionKey": "AAPL"} for t in trades])
    by_shard = {s: r for s, r in aws_helpers.read_stream(kinesis, res.stream).items() if r}
    [(parent, _)] = by_shard.items()
    aggregate = start_lambda(lambda_binaries["aggregate"], "sluice-aggregate-reshard",
                             {**base_env(aws, res), "SLUICE_LATENESS": "5s", "SLUICE_WINDOWS": ""})
    aws_helpers.deliver_all(aggregate, res.stream_arn, by_shard, timeout=INVOKE_TIMEOUT)
    windows_before = [k for k in aws_helpers.list_objects(s3, res.bucket, "windows/")]

    hash_range = next(s["HashKeyRange"] for s in kinesis.list_shards(StreamName=res.stream)["Shards"]
                      if s["ShardId"] == parent)
    middle = (int(hash_range["StartingHashKey"]) + int(hash_range["EndingHashKey"])) // 2
    kinesis.split_shard(StreamName=res.stream, ShardToSplit=parent, NewStartingHashKey=str(middle))
    aggregate.invoke_ok(aws_helpers.scheduled_event(now), timeout=INVOKE_TIMEOUT)

    states = aws_helpers.list_objects(s3, res.bucket, f"state/aggregate/{res.stream}/{parent}/")
    newest = json.loads(s3.get_object(Bucket=res.bucket, Key=max(states))["Body"].read())
    assert newest.get("retired") is True, "the drained parent's state is retired"
    windows = aws_helpers.list_objects(s3, res.bucket, "windows/")
    flushed = sorted(set(windows) - set(windows_before))
    assert flushed and all(parent in k for k in flushed), f"the parent's open windows were written: {flushed}"
    rows = [r for t in read_all(s3, res.bucket, list(windows)) for r in t.to_pylist()]
    minute = [r for r in rows if r["window_name"] == "tumbling_1m" and r["metric"] == "price"]
    assert sum(r["count"] for r in minute) == 20, "every trade in its one-minute window, once"
    aggregate.invoke_ok(aws_helpers.scheduled_event(now), timeout=INVOKE_TIMEOUT)
    assert aws_helpers.list_objects(s3, res.bucket, f"state/aggregate/{res.stream}/{parent}/") == states, (
        "a retired shard is passed by")


def test_sluice_log_filters_by_target_and_a_bad_filter_is_reported(lambda_binaries, aws, resources, start_lambda):
    """SLUICE_LOG takes `level` and `target=level` directives: the aggregate function's
    per-batch summary (an info event of target sluice_aggregate) shows under
    `warn,sluice_aggregate=info`, not under `warn`; a filter that does not parse is named in a
    warning and logging falls back to info."""
    trade = {"event_id": "log-1", "symbol": "AAPL", "price": 190.0, "quantity": 5, "side": "buy",
             "trade_type": "market", "timestamp": aws_helpers.rfc3339(dt.datetime.now(dt.timezone.utc))}
    record = {"PartitionKey": "AAPL", "SequenceNumber": "49650000000000000000000000000000000000000000000000000001",
              "Data": json.dumps(trade).encode(), "ApproximateArrivalTimestamp": time.time()}
    outputs = {}
    for log in ("warn", "warn,sluice_aggregate=info", "sluice_aggregate=[oops"):
        # A shard of its own per run: a shared one would skip the record as a redelivery.
        shard = f"shardId-00000000000{len(outputs)}"
        event = aws_helpers.kinesis_events(resources.stream_arn, shard, [record])[0]
        fn = start_lambda(lambda_binaries["aggregate"], f"sluice-aggregate-log-{len(outputs)}", {
            **aws_helpers.base_env(aws, resources), "SLUICE_LOG": log,
            "SLUICE_LATENESS": "5s", "SLUICE_WINDOWS": ""})
        ok, response = fn.api.invoke(event, timeout=30, alive=fn.alive)
        assert ok, f"SLUICE_LOG={log!r}: the invocation failed: {response}\n{fn.output()}"
        fn.stop()
        outputs[log] = fn.output()
    summary = re.compile(r"INFO .*sluice_aggregate: batch committed .*records=1")
    assert not summary.search(outputs["warn"]), outputs["warn"]
    assert summary.search(outputs["warn,sluice_aggregate=info"]), outputs["warn,sluice_aggregate=info"]
    bad = outputs["sluice_aggregate=[oops"]
    assert 'SLUICE_LOG="sluice_aggregate=[oops" is not a log filter' in bad, bad
    assert summary.search(bad), bad
