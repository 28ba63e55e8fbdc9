"""The AWS side of the harness against a real moto server, without the Rust functions: the
resources, reading a stream back into KinesisEvents exactly as Lambda delivers them, SNS →
SQS raw delivery with message attributes, and S3 event keys. If these pass, a failure in
test_aws_pipeline.py is about the functions, not the plumbing."""

import base64
import datetime as dt
import json
import pathlib
import sys
import urllib.parse

from aws_deps import require_modules

require_modules("boto3", "moto")

import aws_helpers  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
FAKE = [sys.executable, str(HERE / "fake_bootstrap.py")]


def put_events(kinesis, stream, n):
    events = [
        {"scenario": "trades", "event_id": f"e{i:04d}", "event_time": f"2026-01-01T00:00:{i % 60:02d}.000Z",
         "key": f"SYM{i % 13}", "symbol": f"SYM{i % 13}", "side": "BUY", "price": 10.0 + i,
         "quantity": i + 1, "trade_type": "MARKET"}
        for i in range(n)
    ]
    for i in range(0, n, 500):
        chunk = events[i:i + 500]
        out = kinesis.put_records(StreamName=stream, Records=[
            {"Data": json.dumps(e).encode(), "PartitionKey": e["key"]} for e in chunk
        ])
        assert out["FailedRecordCount"] == 0
    return events


def test_resources_exist_as_the_pipeline_expects(aws, resources):
    shards = aws_helpers.shard_ids(aws["kinesis"], resources.stream)
    assert len(shards) == 2
    assert resources.stream_arn.endswith(f":stream/{resources.stream}")
    aws["s3"].head_bucket(Bucket=resources.bucket)
    attrs = aws["sns"].get_subscription_attributes(SubscriptionArn=resources.subscription_arn)["Attributes"]
    assert attrs["RawMessageDelivery"] == "true"
    assert attrs["Endpoint"] == resources.queue_arn


def test_stream_reads_back_into_lambda_kinesis_events(aws, resources, start_lambda):
    sent = put_events(aws["kinesis"], resources.stream, 130)
    by_shard = aws_helpers.read_stream(aws["kinesis"], resources.stream)
    assert sum(len(r) for r in by_shard.values()) == 130
    assert all(by_shard.values()), "13 partition keys should land on both shards"
    got_ids = sorted(json.loads(r["Data"])["event_id"] for rs in by_shard.values() for r in rs)
    assert got_ids == sorted(e["event_id"] for e in sent)

    fn = start_lambda(FAKE, "aggregate-plumbing")
    for shard_id, records in by_shard.items():
        seqs = [int(r["SequenceNumber"]) for r in records]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "shard order is sequence order"
        events = aws_helpers.kinesis_events(resources.stream_arn, shard_id, records, batch=20)
        assert [len(e["Records"]) for e in events][:-1] == [20] * (len(events) - 1)
        assert 0 < len(events[-1]["Records"]) <= 20
        flat = [rec for e in events for rec in e["Records"]]
        assert [rec["kinesis"]["sequenceNumber"] for rec in flat] == [r["SequenceNumber"] for r in records]
        for rec, r in zip(flat, records):
            assert rec["eventID"] == f"{shard_id}:{r['SequenceNumber']}"
            assert rec["eventSourceARN"] == resources.stream_arn
            assert rec["eventSource"] == "aws:kinesis"
            assert base64.b64decode(rec["kinesis"]["data"]) == r["Data"]
            assert rec["kinesis"]["partitionKey"] == json.loads(r["Data"])["key"]
            arrival = rec["kinesis"]["approximateArrivalTimestamp"]
            assert isinstance(arrival, float) and abs(arrival - dt.datetime.now().timestamp()) < 600
        # The event survives the trip through the Runtime API byte for byte (as JSON).
        assert fn.invoke_ok(events[0], timeout=30) == {"event": events[0]}


def test_sns_to_sqs_raw_delivery_carries_string_attributes(aws, resources):
    for sev in ("warning", "critical"):
        aws["sns"].publish(
            TopicArn=resources.topic_arn,
            Subject="[WARNING] rule",
            Message=f"Rule:       r\nSeverity:   {sev}\n",
            MessageAttributes={
                "severity": {"DataType": "String", "StringValue": sev},
                "scenario": {"DataType": "String", "StringValue": "trades"},
                "key": {"DataType": "String", "StringValue": "SYM1"},
            },
        )
    msgs = aws_helpers.receive_all(aws["sqs"], resources.queue_url, expected=2, timeout=10)
    assert len(msgs) == 2
    for m in msgs:
        attrs = m["MessageAttributes"]
        assert attrs["severity"]["DataType"] == "String"
        assert attrs["scenario"]["StringValue"] == "trades"
        assert attrs["key"]["StringValue"] == "SYM1"
        assert m["Body"].startswith("Rule:")  # raw: the message itself, not the SNS envelope
    assert sorted(m["MessageAttributes"]["severity"]["StringValue"] for m in msgs) == ["critical", "warning"]
    # Nothing left over.
    assert aws_helpers.receive_all(aws["sqs"], resources.queue_url, expected=1, timeout=1) == []


def test_s3_listing_and_event_key_encoding(aws, resources):
    key = "windows/scenario=trades/dt=2026-01-01/hour=00/part-shardId-000000000000-1-9.parquet"
    aws["s3"].put_object(Bucket=resources.bucket, Key=key, Body=b"PAR1")
    objs = aws_helpers.list_objects(aws["s3"], resources.bucket, "windows/")
    assert list(objs) == [key]
    assert objs[key]["size"] == 4 and objs[key]["etag"].startswith('"')
    event = aws_helpers.s3_event(resources.bucket, key, objs[key]["size"], objs[key]["etag"])
    raw = event["Records"][0]["s3"]["object"]["key"]
    assert "%3D" in raw and "=" not in raw and "/" in raw
    assert urllib.parse.unquote_plus(raw) == key
    assert event["Records"][0]["s3"]["bucket"]["arn"] == f"arn:aws:s3:::{resources.bucket}"
    # Conditional puts behave as on AWS (the functions commit state with them).
    import botocore.exceptions
    try:
        aws["s3"].put_object(Bucket=resources.bucket, Key=key, Body=b"x", IfNoneMatch="*")
        raise AssertionError("IfNoneMatch=* on an existing key must fail")
    except botocore.exceptions.ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_scheduled_event_shape():
    t = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    ev = aws_helpers.scheduled_event(t)
    assert ev["time"] == "2026-01-02T03:04:05Z"
    assert ev["detail-type"] == "Scheduled Event" and ev["detail"] == {}
