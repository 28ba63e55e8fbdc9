"""AWS-side plumbing for the moto tests: resources, and trigger payloads built exactly as
Lambda delivers them (Kinesis event source mapping, S3 event notifications, EventBridge
Scheduler)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass

import boto3
from botocore.config import Config

REGION = "us-east-1"
ACCOUNT = "123456789012"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# Lambda's Kinesis event source mapping: at most 10,000 records and 6 MB per invocation; this
# harness uses smaller batches so each invocation stays well under the payload limit.
DEFAULT_BATCH = 2000


def clients(endpoint: str) -> dict:
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}, region_name=REGION)
    make = lambda svc: boto3.client(svc, endpoint_url=endpoint, config=cfg, **CREDENTIALS)  # noqa: E731
    return {svc: make(svc) for svc in ("kinesis", "s3", "sns", "sqs", "secretsmanager")}


def base_env(aws: dict, res: "Resources") -> dict:
    """The environment every sluice function gets: the moto endpoint, dummy credentials, the
    bucket (`aws` is the conftest fixture: clients plus "endpoint")."""
    return {
        "AWS_ENDPOINT_URL": aws["endpoint"],
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SLUICE_BUCKET": res.bucket,
        "SLUICE_LOG": "info",
    }


@dataclass
class Resources:
    stream: str
    stream_arn: str
    bucket: str
    topic_arn: str
    queue_url: str
    queue_arn: str
    subscription_arn: str


def create_resources(c: dict, shards: int = 2) -> Resources:
    """A fresh stream, bucket, topic and raw-delivery queue subscription (uuid names)."""
    tag = uuid.uuid4().hex[:10]
    stream = f"sluice-events-{tag}"
    c["kinesis"].create_stream(StreamName=stream, ShardCount=shards)
    c["kinesis"].get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    stream_arn = c["kinesis"].describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]

    bucket = f"sluice-lake-{tag}"
    c["s3"].create_bucket(Bucket=bucket)

    topic_arn = c["sns"].create_topic(Name=f"sluice-alerts-{tag}")["TopicArn"]
    queue_url = c["sqs"].create_queue(QueueName=f"sluice-alerts-{tag}")["QueueUrl"]
    queue_arn = c["sqs"].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    }
    c["sqs"].set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    sub = c["sns"].subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
        Attributes={"RawMessageDelivery": "true"}, ReturnSubscriptionArn=True,
    )
    return Resources(stream, stream_arn, bucket, topic_arn, queue_url, queue_arn, sub["SubscriptionArn"])


# ------------------------------------------------------------------------------- Kinesis

def shard_ids(kinesis, stream: str) -> list[str]:
    shards, token = [], None
    while True:
        page = kinesis.list_shards(NextToken=token) if token else kinesis.list_shards(StreamName=stream)
        shards += [s["ShardId"] for s in page["Shards"]]
        token = page.get("NextToken")
        if not token:
            return sorted(shards)


def read_shard(kinesis, stream: str, shard_id: str, limit: int = 10_000) -> list[dict]:
    """Every record of a shard from TRIM_HORIZON, in order (boto3 record dicts)."""
    it = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while it:
        page = kinesis.get_records(ShardIterator=it, Limit=limit)
        records += page["Records"]
        it = page.get("NextShardIterator")
        if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
            break
    return records


def read_stream(kinesis, stream: str) -> dict[str, list[dict]]:
    return {sid: read_shard(kinesis, stream, sid) for sid in shard_ids(kinesis, stream)}


def kinesis_event_record(stream_arn: str, shard_id: str, r: dict) -> dict:
    arrival = r["ApproximateArrivalTimestamp"]
    if isinstance(arrival, dt.datetime):
        arrival = arrival.timestamp()
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": r["PartitionKey"],
            "sequenceNumber": r["SequenceNumber"],
            "data": base64.b64encode(r["Data"]).decode(),
            "approximateArrivalTimestamp": float(arrival),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{shard_id}:{r['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/sluice-aggregate",
        "awsRegion": REGION,
        "eventSourceARN": stream_arn,
    }


def kinesis_events(stream_arn: str, shard_id: str, records: list[dict], batch: int = DEFAULT_BATCH) -> list[dict]:
    """KinesisEvents for one shard's records, in order, at most `batch` records each."""
    return [
        {"Records": [kinesis_event_record(stream_arn, shard_id, r) for r in records[i:i + batch]]}
        for i in range(0, len(records), batch)
    ]



def deliver_all(function, stream_arn: str, by_shard: dict[str, list[dict]], timeout: float,
                batch: int = DEFAULT_BATCH) -> dict[str, list[dict]]:
    """Invoke `function` (a started Lambda) with every shard's records as KinesisEvents of at
    most `batch` records, in order, asserting that no batch reports an item failure.
    Returns the events delivered, by shard id, for redelivery."""
    delivered = {}
    for shard_id, records in by_shard.items():
        delivered[shard_id] = kinesis_events(stream_arn, shard_id, records, batch=batch)
        for n, event in enumerate(delivered[shard_id]):
            out = function.invoke_ok(event, timeout=timeout)
            assert "batchItemFailures" in out and out["batchItemFailures"] == [], (
                f"{shard_id} batch {n}: {json.dumps(out)[:2000]}"
            )
    return delivered


# ------------------------------------------------------------------------------ S3 / SQS

def list_objects(s3, bucket: str, prefix: str = "") -> dict[str, dict]:
    """key → {"etag", "size"} for every object under `prefix`."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = {"etag": o["ETag"], "size": o["Size"]}
    return out


def s3_event(bucket: str, key: str, size: int, etag: str = "", event_time: str | None = None) -> dict:
    """An S3 ObjectCreated:Put notification for one object, key URL-encoded as S3 does."""
    event_time = event_time or rfc3339(dt.datetime.now(dt.timezone.utc))
    return {"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": event_time,
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "sluice-alert",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": urllib.parse.quote_plus(key, safe="/"),
                "size": size,
                "eTag": etag.strip('"'),
                "sequencer": f"{time.time_ns():016X}",
            },
        },
    }]}


def receive_all(sqs, queue_url: str, expected: int, timeout: float = 20.0) -> list[dict]:
    """Long-polls until `expected` messages arrived (then one short extra poll, so surplus
    messages are seen too) or `timeout` passed; deletes what it received."""
    messages: dict[str, dict] = {}
    end = time.monotonic() + timeout
    extra_done = False
    while True:
        if len(messages) >= expected:
            if extra_done:
                break
            extra_done = True
            wait = 1
        else:
            wait = max(1, min(5, int(end - time.monotonic())))
        page = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
            MessageAttributeNames=["All"], AttributeNames=["All"],
        )
        for m in page.get("Messages", []):
            messages[m["MessageId"]] = m
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        if len(messages) < expected and time.monotonic() > end:
            break
    return list(messages.values())


# ------------------------------------------------------------------------------ Scheduler

def rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_event(t: dt.datetime) -> dict:
    """An EventBridge Scheduler / scheduled-rule event for time `t`."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": rfc3339(t),
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/sluice-generate"],
        "detail": {},
    }
