"""Handlers invoked through `sluice invoke` on real Lambda payloads; results read back with
pyarrow. Alert email delivered to a real SMTP server (aiosmtpd)."""

import base64
import hashlib
import json
import socket
import time

import pyarrow.parquet as pq

from conftest import REPO, outbox, parquet_files

ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/sluice-events"


def kinesis_event(payloads, shard="shardId-000000000007", first_seq=100, arrival=1795496410.0):
    records = []
    for i, data in enumerate(payloads):
        seq = str(first_seq + i)
        records.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "k", "sequenceNumber": seq,
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": arrival + i},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard}:{seq}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/x",
            "awsRegion": "eu-west-1", "eventSourceARN": ARN,
        })
    return {"Records": records}


def trade(i, minute, price=190.0):
    return json.dumps({"scenario": "trades", "event_id": f"h-{i}", "event_time": f"2026-11-24T05:{minute:02d}:{i % 60:02d}Z",
                       "key": "AAPL", "symbol": "AAPL", "side": "SELL", "price": price, "quantity": 7,
                       "trade_type": "MARKET"}).encode()


GARBAGE = {
    "malformed_json": b'{"scenario": "trades", "event_id": ',
    "missing_field": json.dumps({"scenario": "trades", "event_id": "g2", "event_time": "2026-11-24T05:00:00Z",
                                 "symbol": "AAPL", "side": "BUY", "quantity": 1, "trade_type": "LIMIT"}).encode(),
    "invalid_value": json.dumps({"scenario": "telemetry", "event_id": "g3", "event_time": "2026-11-24T05:00:00Z",
                                 "host": "h", "cpu_pct": 250.0, "mem_pct": 1, "error_count": 0, "latency_ms": 1}).encode(),
    "wrong_type": json.dumps({"scenario": "clickstream", "event_id": "g4", "event_time": "2026-11-24T05:00:00Z",
                              "user_id": "u", "product_id": "p", "action": "view", "amount": [1]}).encode(),
    "unknown_scenario": json.dumps({"scenario": "weather", "event_id": "g5"}).encode(),
}


def lake_of(sluice, lake, shards, arrival=1795496520.0):
    """A lake aggregated from shard id → payloads, each shard's as one batch arriving at 05:02."""
    for shard, payloads in shards.items():
        event = lake.parent / f"{lake.name}-{shard}.json"
        event.write_text(json.dumps(kinesis_event(payloads, shard=shard, arrival=arrival)))
        sluice("invoke", "aggregate", "--event", event, "--lake", lake)
    return lake


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_garbage_is_quarantined_exactly_with_bytes_and_reasons(sluice, tmp_path):
    good = [trade(i, 0) for i in range(20)] + [trade(i, 2) for i in range(20, 30)]
    payloads = good[:10] + list(GARBAGE.values()) + good[10:]
    event = tmp_path / "batch.json"
    event.write_text(json.dumps(kinesis_event(payloads)))
    lake = tmp_path / "lake"
    out = json.loads(sluice("invoke", "aggregate", "--event", event, "--lake", lake).stdout)
    assert out == {"batchItemFailures": []}

    rows = []
    for f in parquet_files(lake, "quarantine"):
        rows.extend(pq.read_table(f).to_pylist())
    assert len(rows) == len(GARBAGE), rows
    by_code = {r["reason_code"]: r for r in rows}
    assert set(by_code) == set(GARBAGE)
    for code, raw in GARBAGE.items():
        assert by_code[code]["raw"] == raw, code
        assert by_code[code]["reason"], code
    assert "price" in by_code["missing_field"]["reason"]
    assert "cpu_pct" in by_code["invalid_value"]["reason"] and "250" in by_code["invalid_value"]["reason"]
    assert "weather" in by_code["unknown_scenario"]["reason"]
    # The good records are all in raw, none lost.
    raw_ids = {r["event_id"] for f in parquet_files(lake, "raw") for r in pq.read_table(f).to_pylist()}
    assert raw_ids == {f"h-{i}" for i in range(30)}


def test_same_batch_twice_leaves_the_lake_byte_identical(sluice, tmp_path):
    payloads = [trade(i, m) for m in range(0, 3) for i in range(m * 60, m * 60 + 40)]
    event = tmp_path / "batch.json"
    event.write_text(json.dumps(kinesis_event(payloads, arrival=1795496700.0)))
    lake = tmp_path / "lake"
    sluice("invoke", "aggregate", "--event", event, "--lake", lake)
    first = digest(lake)
    assert any(k.startswith("windows/") for k in first), first
    sluice("invoke", "aggregate", "--event", event, "--lake", lake)
    assert digest(lake) == first


def test_a_bad_rules_file_is_a_clear_error_naming_the_line(sluice, tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\nname = "x"\nsource = "windows"\nwhen = "avgg > 1"\nseverity = "info"\n')
    proc = sluice("run", "--duration", "1s", "--lake", tmp_path / "lake", "--rules", rules, check=False)
    assert proc.returncode != 0
    assert f"{rules}:4:" in proc.stderr and "avgg" in proc.stderr, proc.stderr
    rules.write_text('[[rule]]\nname = "x"\nsource = "windowz"\nwhen = "true"\nseverity = "info"\n')
    proc = sluice("run", "--duration", "1s", "--lake", tmp_path / "lake", "--rules", rules, check=False)
    assert proc.returncode != 0 and "line 3" in proc.stderr, proc.stderr


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_alerts_arrive_by_email_on_a_real_smtp_server(sluice, tmp_path):
    from aiosmtpd.controller import Controller

    received = []

    class Collect:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content.decode()))
            return "250 OK"

    port = free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        lake = tmp_path / "lake"
        sluice("run", "--duration", "1s", "--history", "12m", "--rate", "30", "--scenario", "trades",
               "--quiet", "--lake", lake, "--smtp-url", f"smtp://127.0.0.1:{port}",
               "--smtp-from", "sluice@example.com", "--smtp-to", "oncall@example.com")
        deadline = time.time() + 5
        while not received and time.time() < deadline:
            time.sleep(0.1)
    finally:
        controller.stop()
    alerts = outbox(lake)
    assert alerts, "the default rules fired nothing"
    assert len(received) == len(alerts), "every alert in the outbox was also emailed"
    sender, rcpts, content = received[0]
    assert sender == "sluice@example.com" and rcpts == ["oncall@example.com"]
    assert "Subject: [" in content and "Rule:" in content and "Inspect:" in content
    subjects = {line for _, _, c in received for line in c.splitlines() if line.startswith("Subject:")}
    assert any(a["rule"] in s for a in alerts for s in subjects)


def test_bench_aggregate_accounts_for_every_record(sluice, tmp_path):
    event = tmp_path / "batch.json"
    sluice("bench", "make-event", "--records", "3000", "--rate", "100", "--output", event)
    batch = json.loads(event.read_text())
    assert len(batch["Records"]) == 3000
    assert base64.b64decode(batch["Records"][0]["kinesis"]["data"]).startswith(b'{"scenario":"trades"')
    out = json.loads(sluice("bench", "aggregate", "--event", event, "--repeat", "1").stdout)
    assert out["records"] == 3000 and out["events"] + out["quarantined"] == 3000
    assert out["windows"] > 0 and out["objects"] >= 2 and out["parquet_bytes"] > 0
    assert out["events_per_s"] > 0 and out["peak_rss_mb"] > 0


def test_aggregate_refuses_a_payload_of_another_trigger_naming_it(sluice, tmp_path):
    """An Amazon MQ (RabbitMQ) event is neither a stream batch nor a sweep: an error naming what
    arrived, not a silent success that writes nothing."""
    event = tmp_path / "rmq.json"
    event.write_text(json.dumps({
        "eventSource": "aws:rmq",
        "eventSourceArn": "arn:aws:mq:us-west-2:111122223333:broker:pizzaBroker:b-9bcfa592-423a-4942-879d",
        "rmqMessagesByQueue": {"pizzaQueue::/": [{"data": "e30="}]},
    }))
    lake = tmp_path / "lake"
    proc = sluice("invoke", "aggregate", "--event", event, "--lake", lake, check=False)
    assert proc.returncode != 0, proc.stdout
    assert 'eventSource "aws:rmq"' in proc.stderr, proc.stderr
    assert not list(lake.rglob("*.parquet"))


def test_producer_retries_are_counted_once_by_windows_and_the_shipped_query(sluice, tmp_path):
    # Issue "Every event exactly once", example 3: trades ord-0..2 sent twice (a PutRecords
    # retried after its response was lost: new sequence numbers, same bytes), then ord-3 at
    # 05:00:30. The code before dedup counted 6 trades and 600 in [05:00:00, 05:00:10).
    def order(i, second):
        return json.dumps({"scenario": "trades", "event_id": f"ord-{i}",
                           "event_time": f"2026-11-24T05:00:{second:02d}Z", "key": "AAPL", "symbol": "AAPL",
                           "side": "BUY", "price": 190.0, "quantity": 100, "trade_type": "LIMIT"}).encode()

    sent = [order(i, i) for i in range(3)]
    event = tmp_path / "batch.json"
    event.write_text(json.dumps(kinesis_event(sent + sent + [order(3, 30)], arrival=1795496404.0)))
    lake = tmp_path / "lake"
    sluice("invoke", "aggregate", "--event", event, "--lake", lake)
    rows = [r for f in parquet_files(lake, "windows") for r in pq.read_table(f).to_pylist()]
    first = [r for r in rows if r["window_name"] == "tumbling_10s" and r["metric"] == "quantity"
             and r["window_start"].isoformat() == "2026-11-24T05:00:00+00:00"]
    assert [(r["count"], r["sum"]) for r in first] == [(3, 300.0)]
    out = sluice("query", "--lake", lake, "--example", "trades-quantity-by-symbol", "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert rows == [{"symbol": "AAPL", "total_quantity": 400, "trades": 4}]
    # The pipeline table says what happened: one committed batch, 7 records, 4 events, 3 copies.
    out = sluice("query", "--lake", lake, "--format", "json",
                 "SELECT kind, records, events, duplicate_events, state_bytes > 0 AS has_state FROM pipeline").stdout
    assert [json.loads(line) for line in out.splitlines()] == [
        {"kind": "batch", "records": 7, "events": 4, "duplicate_events": 3, "has_state": True}]


def test_a_scheduled_sweep_closes_the_windows_of_a_quiet_shard(sluice, tmp_path):
    # Trades 05:00:00-05:00:14 and then silence (market close, or a parent shard after a
    # reshard): without a sweep [05:00:00, 05:00:10) is never written. A scheduled event sent
    # to aggregate is a sweep whose `time` is "now".
    def order(second):
        return json.dumps({"scenario": "trades", "event_id": f"q-{second}",
                           "event_time": f"2026-11-24T05:00:{second:02d}Z", "key": "AAPL", "symbol": "AAPL",
                           "side": "BUY", "price": 190.0, "quantity": 1, "trade_type": "LIMIT"}).encode()

    event = tmp_path / "batch.json"
    event.write_text(json.dumps(kinesis_event([order(s) for s in range(15)], arrival=1795496400.5)))
    lake = tmp_path / "lake"
    sluice("invoke", "aggregate", "--event", event, "--lake", lake)

    def tumbling_counts():
        rows = [r for f in parquet_files(lake, "windows") for r in pq.read_table(f).to_pylist()]
        return sorted((r["window_start"].strftime("%H:%M:%S"), r["count"]) for r in rows
                      if r["window_name"] == "tumbling_10s" and r["metric"] == "quantity")

    assert tumbling_counts() == []

    def sweep(time):
        path = tmp_path / "scheduled.json"
        path.write_text(json.dumps({"version": "0", "id": "x", "detail-type": "Scheduled Event",
                                    "source": "aws.scheduler", "account": "123456789012", "time": time,
                                    "region": "eu-west-1", "resources": [], "detail": {}}))
        sluice("invoke", "aggregate", "--event", path, "--lake", lake)

    sweep("2026-11-24T05:01:00Z")  # 45.5 s after the last arrival: not idle for a minute yet
    assert tumbling_counts() == []
    sweep("2026-11-24T05:01:20Z")
    assert tumbling_counts() == [("05:00:00", 10), ("05:00:10", 5)]
    sweep("2026-11-24T05:02:20Z")  # nothing more to close: nothing written twice
    assert tumbling_counts() == [("05:00:00", 10), ("05:00:10", 5)]
    out = sluice("query", "--lake", lake, "--format", "json",
                 "SELECT kind, shard_id, idle_flushes, keys_on_several_shards FROM pipeline "
                 "WHERE kind = 'sweep' ORDER BY time, shard_id").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [
        {"kind": "sweep", "shard_id": "*", "idle_flushes": 0, "keys_on_several_shards": 0},  # 05:01:00
        {"kind": "sweep", "shard_id": "*", "idle_flushes": 1, "keys_on_several_shards": 0},  # 05:01:20
        {"kind": "sweep", "shard_id": "shardId-000000000007", "idle_flushes": 1},  # NULLs are left out
        # 05:02:20: the 5-minute hopping window ending 05:02 closes; no tumbling row is rewritten.
        {"kind": "sweep", "shard_id": "*", "idle_flushes": 1, "keys_on_several_shards": 0},
        {"kind": "sweep", "shard_id": "shardId-000000000007", "idle_flushes": 1},
    ], rows


def test_a_key_spread_over_shards_is_one_candle_in_windows_merged(sluice, tmp_path):
    # Issue "Every event exactly once", example 5: a producer with random partition keys puts
    # AAPL on two shards; each writes its own partial 1-minute row. windows_merged gives the
    # row one shard would have written for all of them.
    trades = []
    for i in range(40):
        trades.append(json.dumps({
            "scenario": "trades", "event_id": f"s-{i}", "event_time": f"2026-11-24T05:00:{i:02d}.{i % 7}00Z",
            "key": "AAPL", "symbol": "AAPL", "side": "BUY", "price": 190.0 + (i * 37 % 11) / 4,
            "quantity": 1 + i % 9, "trade_type": "LIMIT"}).encode())
    closer = json.dumps({"scenario": "trades", "event_id": "s-late", "event_time": "2026-11-24T05:02:00Z",
                         "key": "MSFT", "symbol": "MSFT", "side": "BUY", "price": 1.0, "quantity": 1,
                         "trade_type": "LIMIT"}).encode()

    one = lake_of(sluice, tmp_path / "one", {"shardId-000000000000": trades + [closer]})
    spread = lake_of(sluice, tmp_path / "spread", {"shardId-000000000000": trades[0::2] + [closer],
                                                   "shardId-000000000001": trades[1::2] + [closer]})
    columns = "count, sum, min, max, avg, stddev, first, last, weighted_avg"
    where = "WHERE key = 'AAPL' AND window_name = 'tumbling_1m' AND metric = 'price'"

    def rows(lake, table):
        out = sluice("query", "--lake", lake, "--format", "json",
                     f"SELECT {columns} FROM {table} {where}").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    assert len(rows(spread, "windows")) == 2, "each shard wrote its part"
    [want] = rows(one, "windows")
    [got] = rows(spread, "windows_merged")
    for name in ("count", "min", "max", "first", "last"):
        assert got[name] == want[name], name
    for name in ("sum", "avg", "stddev", "weighted_avg"):
        assert abs(got[name] - want[name]) <= 1e-9 * abs(want[name]), (name, got[name], want[name])
    out = sluice("query", "--lake", spread, "--format", "json",
                 f"SELECT partials FROM windows_merged {where}").stdout
    assert json.loads(out.splitlines()[0])["partials"] == 2


def test_a_dlq_range_is_replayed_once(sluice, tmp_path):
    # Issue "Every event exactly once", item 6: Lambda gave up on records 110-119 (they went to
    # the DLQ as a shard and sequence range) and went on. `sluice replay` processes exactly the
    # range, once; the events are in raw (and late: the watermark has moved on).
    trades = [trade(i, 0) for i in range(30)]
    everything = kinesis_event(trades, first_seq=100)
    for part in (slice(0, 10), slice(20, 30)):
        event = tmp_path / f"batch-{part.start}.json"
        event.write_text(json.dumps({"Records": everything["Records"][part]}))
        sluice("invoke", "aggregate", "--event", event, "--lake", tmp_path / "lake")
    records = tmp_path / "records.json"
    records.write_text(json.dumps(everything))
    message = tmp_path / "dlq.json"
    message.write_text(json.dumps({
        "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:f",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2026-11-24T05:10:00.000Z",
        "KinesisBatchInfo": {"shardId": "shardId-000000000007", "startSequenceNumber": "110",
                             "endSequenceNumber": "119", "approximateArrivalOfFirstRecord": "2026-11-24T05:00:20Z",
                             "approximateArrivalOfLastRecord": "2026-11-24T05:00:29Z", "batchSize": 10,
                             "streamArn": ARN}}))

    def raw_ids():
        return sorted(r["event_id"] for f in parquet_files(tmp_path / "lake", "raw") for r in pq.read_table(f).to_pylist())

    assert len(raw_ids()) == 20
    out = json.loads(sluice("replay", "--dlq-message", message, "--records", records, "--lake", tmp_path / "lake").stdout)
    assert (out["records"], out["events"], out["already_in_the_lake"]) == (10, 10, 0)
    assert raw_ids() == sorted(f"h-{i}" for i in range(30))
    before = digest(tmp_path / "lake")
    again = json.loads(sluice("replay", "--dlq-message", message, "--records", records, "--lake", tmp_path / "lake").stdout)
    assert (again["events"], again["already_in_the_lake"]) == (0, 10)
    assert digest(tmp_path / "lake") == before, "a second replay writes nothing"
    missing = sluice("replay", "--dlq-message", message, "--lake", tmp_path / "lake", check=False)
    assert missing.returncode != 0 and "--records" in missing.stderr


def test_percentiles_of_a_host_spread_over_shards_come_from_merged_sketches(sluice, tmp_path):
    # windows_merged in `sluice query` merges the rows' DDSketches: the p50/p95/p99 of a window
    # spread over two shards equal those one shard writes for all its events.
    readings = [json.dumps({"scenario": "telemetry", "event_id": f"t-{i}", "event_time": f"2026-11-24T05:00:{i:02d}Z",
                            "host": "h1", "cpu_pct": 10.0, "mem_pct": 20.0, "error_count": 0,
                            "latency_ms": float((i * 37) % 53 + 1)}).encode() for i in range(50)]
    closer = json.dumps({"scenario": "telemetry", "event_id": "t-end", "event_time": "2026-11-24T05:02:00Z",
                         "host": "h2", "cpu_pct": 1.0, "mem_pct": 1.0, "error_count": 0, "latency_ms": 1.0}).encode()

    one = lake_of(sluice, tmp_path / "one", {"shardId-000000000000": readings + [closer]})
    spread = lake_of(sluice, tmp_path / "spread", {"shardId-000000000000": readings[:20] + [closer],
                                                   "shardId-000000000001": readings[20:] + [closer]})
    where = "WHERE key = 'h1' AND window_name = 'tumbling_1m' AND metric = 'latency_ms'"

    def row(lake, table):
        out = sluice("query", "--lake", lake, "--format", "json",
                     f"SELECT count, p50, p95, p99 FROM {table} {where}").stdout
        [line] = out.splitlines()
        return json.loads(line)

    want = row(one, "windows")
    assert want["count"] == 50 and want["p95"] > want["p50"]
    assert row(spread, "windows_merged") == want


def test_kpl_aggregated_records_are_unpacked_and_a_bad_digest_is_quarantined(sluice, tmp_path):
    # Issue "Every real producer", item 1: records packed by AWS's reference aggregator
    # (aws_kinesis_agg, what the KPL and many connectors write), mixed with a plain record, a
    # one-record aggregate and an aggregate whose MD5 does not match.
    from aws_kinesis_agg.aggregator import RecordAggregator

    def order(i):
        return json.dumps({"scenario": "trades", "event_id": f"k-{i}", "event_time": f"2026-11-24T05:00:{i:02d}Z",
                           "symbol": ["AAPL", "MSFT", "TSLA"][i % 3], "side": "BUY", "price": 100.0 + i,
                           "quantity": 1 + i, "trade_type": "LIMIT"}).encode()

    def aggregate(indices):
        agg = RecordAggregator()
        for i in indices:
            assert agg.add_user_record(["AAPL", "MSFT", "TSLA"][i % 3], order(i)) is None
        _, _, data = agg.clear_and_get().get_contents()
        return data

    three = aggregate([0, 1, 2])
    corrupt = bytearray(aggregate([4, 5]))
    corrupt[10] ^= 0xFF
    payloads = [three, order(3), aggregate([6]), bytes(corrupt), order(30)]
    event = tmp_path / "kpl.json"
    event.write_text(json.dumps(kinesis_event(payloads, first_seq=500, arrival=1795496401.0)))
    lake = tmp_path / "lake"
    out = json.loads(sluice("invoke", "aggregate", "--event", event, "--lake", lake).stdout)
    assert out.get("batchItemFailures") == []
    raw = sorted((r["event_id"], r["sequence_number"], r["sub_sequence_number"])
                 for f in parquet_files(lake, "raw") for r in pq.read_table(f).to_pylist())
    assert raw == [("k-0", "500", 0), ("k-1", "500", 1), ("k-2", "500", 2), ("k-3", "501", None),
                   ("k-30", "504", None), ("k-6", "502", 0)]
    [bad] = [r for f in parquet_files(lake, "quarantine") for r in pq.read_table(f).to_pylist()]
    assert (bad["sequence_number"], bad["reason_code"], bad["raw"]) == ("503", "malformed_envelope", bytes(corrupt))
    assert "MD5" in bad["reason"]

    # The same events sent plain give the same window rows.
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(kinesis_event([order(i) for i in (0, 1, 2, 3, 6, 30)], first_seq=500,
                                              arrival=1795496401.0)))
    sluice("invoke", "aggregate", "--event", plain, "--lake", tmp_path / "plain")

    def windows(root):
        return sorted((r["window_name"], r["key"], r["metric"], r["window_start"], r["count"], r["sum"])
                      for f in parquet_files(root, "windows") for r in pq.read_table(f).to_pylist())

    assert windows(lake) and windows(lake) == windows(tmp_path / "plain")


def kafka_event(source, payloads, keys, topic="trades", partition=0, first_offset=15, timestamp_type="CREATE_TIME",
                headers=None):
    """Lambda's Kafka event as its documentation shows it (Amazon MSK or self-managed Kafka);
    `payloads` may hold None (a tombstone), `keys` None (a null key); `headers` one dict per
    record (name → bytes), by default the documentation's."""
    b64 = lambda b: None if b is None else base64.b64encode(b).decode()  # noqa: E731
    headers = headers or [{"headerKey": b"headerValue"}] * len(payloads)
    records = [{"topic": topic, "partition": partition, "offset": first_offset + i, "timestamp": (1795496401 + i) * 1000,
                "timestampType": timestamp_type, "key": b64(k), "value": b64(v),
                "headers": [{name: list(value)} for name, value in h.items()]}
               for i, (k, v, h) in enumerate(zip(keys, payloads, headers))]
    event = {"eventSource": source,
             "bootstrapServers": "b-2.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092,"
                                 "b-1.demo-cluster-1.a1bcde.c1.kafka.us-east-1.amazonaws.com:9092",
             "records": {f"{topic}-{partition}": records}}
    if source == "aws:kafka":
        event["eventSourceArn"] = ("arn:aws:kafka:us-east-1:123456789012:cluster/vpc-2priv-2pub/"
                                   "751d2973-a626-431c-9d4e-d7975eb44dd7-2")
    return event


def test_kafka_events_give_the_windows_the_same_events_give_on_kinesis(sluice, tmp_path):
    # Issue "Every real producer", item 2: Amazon MSK and self-managed Kafka payloads; the
    # partition is <topic>-<partition>, the position the offset; a tombstone is quarantined as
    # null_value, a null key is a NULL partition key, a key that is not UTF-8 is hex.
    trades = [trade(i, 0) for i in range(20)] + [trade(i, 1) for i in range(20, 25)]
    keys = [b"AAPL"] * len(trades)
    lakes = {}
    for name, event in (("kinesis", kinesis_event(trades, arrival=1795496401.0)),
                        # LOG_APPEND_TIME: the broker's clock, the arrival time Kinesis would give.
                        ("msk", kafka_event("aws:kafka", trades, keys, timestamp_type="LOG_APPEND_TIME")),
                        ("self-managed", kafka_event("SelfManagedKafka", trades, keys,
                                                     timestamp_type="LOG_APPEND_TIME"))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(event))
        out = json.loads(sluice("invoke", "aggregate", "--event", path, "--lake", tmp_path / name).stdout)
        assert out.get("batchItemFailures") == [], out
        lakes[name] = tmp_path / name

    def windows(lake):
        return sorted((r["window_name"], r["key"], r["metric"], r["window_start"], r["count"], r["sum"], r["first"],
                       r["last"]) for f in parquet_files(lake, "windows") for r in pq.read_table(f).to_pylist())

    assert windows(lakes["kinesis"])
    assert windows(lakes["msk"]) == windows(lakes["kinesis"]) == windows(lakes["self-managed"])
    raw = [r for f in parquet_files(lakes["msk"], "raw") for r in pq.read_table(f).to_pylist()]
    assert {r["shard_id"] for r in raw} == {"trades-0"}
    assert sorted(int(r["sequence_number"]) for r in raw) == list(range(15, 40))
    def state_dirs(lake):  # <cluster>/<topic>-<partition> of each state generation
        return sorted(f"{p.parent.parent.name}/{p.parent.name}"
                      for p in (lake / "state" / "aggregate").rglob("*.json") if p.stem.isdigit())

    assert state_dirs(lakes["msk"]) == ["msk-751d2973-a626-431c-9d4e-d7975eb44dd7-2/trades-0"], "names the cluster"
    [managed] = state_dirs(lakes["self-managed"])
    assert managed.startswith("kafka-") and managed.endswith("/trades-0"), managed

    odd = tmp_path / "odd.json"
    # CREATE_TIME is the producer's clock: the arrival is when the function received the batch.
    odd.write_text(json.dumps(kafka_event("aws:kafka", [None, b"{", b"{", trade(90, 0)],
                                          [b"AAPL", None, b"\xff\xfe", b"AAPL"])))
    before = time.time()
    sluice("invoke", "aggregate", "--event", odd, "--lake", tmp_path / "odd")
    [received] = [r["arrival_time"].timestamp() for f in parquet_files(tmp_path / "odd", "raw")
                  for r in pq.read_table(f).to_pylist()]
    assert before - 1 <= received <= time.time() + 1
    quarantined = sorted((r["sequence_number"], r["reason_code"], r["partition_key"])
                         for f in parquet_files(tmp_path / "odd", "quarantine") for r in pq.read_table(f).to_pylist())
    assert quarantined == [("15", "null_value", "AAPL"), ("16", "malformed_json", None),
                           ("17", "malformed_json", "fffe")]


def test_definitions_may_route_kafka_records_by_topic(sluice, tmp_path):
    # `[route] topic`: the records of each Kafka topic belong to one definition, whatever their
    # members say.
    streams = tmp_path / "streams"
    streams.mkdir()
    for name, topic in (("orders", "shop.orders"), ("payments", "shop.payments")):
        (streams / f"{name}.toml").write_text(
            f'name = "{name}"\nkey = "id"\n[route]\ntopic = "{topic}"\n[time]\nfield = "t"\nformat = "epoch_ms"\n'
            '[fields.id]\ntype = "string"\n[fields.amount]\ntype = "double"\n'
            '[[metrics]]\nfield = "amount"\naggregates = ["count", "sum"]\n[[windows]]\nspec = "tumbling:1m"\n')
    record = lambda i: json.dumps({"id": f"c{i % 2}", "t": 1795496400000 + i * 1000, "amount": 1.0}).encode()  # noqa: E731
    for topic in ("shop.orders", "shop.payments", "shop.returns"):
        event = tmp_path / f"{topic}.json"
        event.write_text(json.dumps(kafka_event("aws:kafka", [record(i) for i in range(5)], [b"k"] * 5, topic=topic,
                                                timestamp_type="LOG_APPEND_TIME")))
        sluice("invoke", "aggregate", "--streams", streams, "--event", event, "--lake", tmp_path / "lake")
    for name in ("orders", "payments"):
        rows = [r for f in parquet_files(tmp_path / "lake", f"raw/scenario={name}") for r in pq.read_table(f).to_pylist()]
        assert len(rows) == 5 and {r["shard_id"] for r in rows} == {f"shop.{name}-0"}, name
    returns = [r for f in parquet_files(tmp_path / "lake", "quarantine") for r in pq.read_table(f).to_pylist()]
    assert len(returns) == 5 and {r["reason_code"] for r in returns} == {"unknown_scenario"}
    assert "shop.returns" in returns[0]["reason"]


def test_ndjson_and_gzip_records_are_unwrapped_when_a_definition_asks(sluice, tmp_path):
    # Issue "Every real producer", item 5: framing = "ndjson" and compression = "gzip". The
    # default stays one JSON object per record: the same NDJSON record is quarantined then.
    import gzip

    def lines(ids):
        return b"\n".join(trade(i, 0) for i in ids) + b"\n"

    payloads = [gzip.compress(lines(range(3))), lines(range(3, 6)), trade(6, 0), gzip.compress(b"{}")[:-4]]
    event = tmp_path / "framed.json"
    event.write_text(json.dumps(kinesis_event(payloads, first_seq=700, arrival=1795496401.0)))
    definition = tmp_path / "trades.toml"
    text = (REPO / "streams" / "trades.toml").read_text()
    definition.write_text('framing = "ndjson"\ncompression = "gzip"\n' + text)
    sluice("invoke", "aggregate", "--streams", definition, "--event", event, "--lake", tmp_path / "framed")
    raw = sorted((r["sequence_number"], r["sub_sequence_number"] if r["sub_sequence_number"] is not None else -1,
                  r["event_id"])
                 for f in parquet_files(tmp_path / "framed", "raw") for r in pq.read_table(f).to_pylist())
    assert raw == [("700", 0, "h-0"), ("700", 1, "h-1"), ("700", 2, "h-2"),
                   ("701", 0, "h-3"), ("701", 1, "h-4"), ("701", 2, "h-5"), ("702", -1, "h-6")]
    [broken] = [r for f in parquet_files(tmp_path / "framed", "quarantine") for r in pq.read_table(f).to_pylist()]
    assert (broken["sequence_number"], broken["reason_code"]) == ("703", "malformed_envelope")
    assert broken["reason"].startswith("gzip")

    sluice("invoke", "aggregate", "--event", event, "--lake", tmp_path / "default")
    codes = sorted((r["sequence_number"], r["reason_code"])
                   for f in parquet_files(tmp_path / "default", "quarantine") for r in pq.read_table(f).to_pylist())
    assert ("701", "malformed_json") in codes, codes


def test_definitions_may_route_kafka_records_by_header(sluice, tmp_path):
    # `[route] header = "type"` and `value`: one topic carrying two kinds of record, told apart
    # by a Kafka header, as Lambda delivers headers (name → list of bytes).
    streams = tmp_path / "streams"
    streams.mkdir()
    for name in ("order", "payment"):
        (streams / f"{name}.toml").write_text(
            f'name = "{name}s"\nkey = "id"\n[route]\nheader = "type"\nvalue = "{name}"\n[time]\nfield = "t"\n'
            'format = "epoch_ms"\n[fields.id]\ntype = "string"\n[fields.amount]\ntype = "double"\n')
    record = json.dumps({"id": "c1", "t": 1795496400000, "amount": 1.0}).encode()
    kinds = [b"order", b"payment", b"order", b"refund"]
    event = tmp_path / "shop.json"
    event.write_text(json.dumps(kafka_event("aws:kafka", [record] * 4, [b"k"] * 4, topic="shop",
                                            headers=[{"type": k} for k in kinds])))
    sluice("invoke", "aggregate", "--streams", streams, "--event", event, "--lake", tmp_path / "lake")
    count = lambda name: sum(pq.read_table(f).num_rows  # noqa: E731
                             for f in parquet_files(tmp_path / "lake", f"raw/scenario={name}"))
    assert (count("orders"), count("payments")) == (2, 1)
    [refund] = [r for f in parquet_files(tmp_path / "lake", "quarantine") for r in pq.read_table(f).to_pylist()]
    assert refund["reason_code"] == "unknown_scenario" and "type=refund" in refund["reason"]
