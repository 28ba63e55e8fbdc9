"""`sluice bench`: each subcommand measures what it says, checked against independent readers."""

import base64
import csv
import json

import duckdb

from conftest import REPO

NAB = REPO.parent / "shared" / "nab" / "data"


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_query_bench_times_the_example_over_exactly_the_rows_it_wrote(sluice, tmp_path):
    lake = tmp_path / "lake"
    report = last_json(sluice("bench", "query", "--lake", lake, "--rows", "25000", "--repeat", "1").stdout)
    files = [str(p) for p in (lake / "raw" / "scenario=trades").rglob("*.parquet")]
    con = duckdb.connect()
    rows, symbols = con.execute(
        "SELECT COUNT(*), COUNT(DISTINCT symbol) FROM read_parquet(?, hive_partitioning = true)", [files]
    ).fetchone()
    assert rows == report["lake_rows"] == 25000
    assert report["result_rows"] == symbols > 1
    assert report["seconds"] > 0 and report["rows_per_s"] == report["lake_rows"] / report["seconds"]
    # A second run reuses the lake instead of writing it again.
    before = sorted(p.stat().st_mtime_ns for p in (lake / "raw" / "scenario=trades").rglob("*.parquet"))
    sluice("bench", "query", "--lake", lake, "--rows", "25000", "--repeat", "1")
    assert sorted(p.stat().st_mtime_ns for p in (lake / "raw" / "scenario=trades").rglob("*.parquet")) == before
    # Asking for more rows rewrites the table: no stale files from the smaller lake remain.
    sluice("bench", "query", "--lake", lake, "--rows", "30000", "--repeat", "1")
    files = [str(p) for p in (lake / "raw" / "scenario=trades").rglob("*.parquet")]
    assert con.execute("SELECT COUNT(*) FROM read_parquet(?)", [files]).fetchone()[0] == 30000
    unknown = sluice("bench", "query", "--lake", lake, "--rows", "10", "--example", "nope", check=False)
    assert unknown.returncode != 0 and "nope" in unknown.stderr


def test_make_event_and_aggregate_bench_agree_on_the_batch(sluice, tmp_path):
    batch = tmp_path / "batch.json"
    sluice("bench", "make-event", "--records", "700", "--keys", "7", "--rate", "50", "--output", batch)
    records = json.loads(batch.read_text())["Records"]
    assert len(records) == 700
    assert len({r["kinesis"]["partitionKey"] for r in records}) == 7
    events = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in records]
    assert {e["key"] for e in events} == {r["kinesis"]["partitionKey"] for r in records}
    report = last_json(sluice("bench", "aggregate", "--event", batch, "--repeat", "1").stdout)
    assert report["records"] == 700
    assert report["events"] + report["quarantined"] == 700 and report["quarantined"] == 0
    assert report["objects"] >= 1 and report["parquet_bytes"] > 0
    # Steady state: the first half builds the shard's state, the second half is timed from it.
    warm = last_json(sluice("bench", "aggregate", "--event", batch, "--repeat", "1", "--warm").stdout)
    assert warm["records"] == 350 and warm["events"] == 350
    assert warm["prior_state_bytes"] > 0 and warm["state_bytes"] > 0


def test_detect_bench_scores_every_point_with_bounded_state(sluice, tmp_path):
    source = NAB / "realAWSCloudwatch" / "ec2_cpu_utilization_24ae8d.csv"
    report = last_json(sluice("bench", "detect", "--input", source, "--repeat", "2").stdout)
    with source.open() as f:
        rows = sum(1 for _ in csv.DictReader(f))
    assert report["points"] == rows
    assert 0 < report["state_bytes"] <= 8 * 1024
    # The same detector through `sluice detect` flags the same number of points.
    out = tmp_path / "scores.csv"
    sluice("detect", "--input", source, "--output", out)
    with out.open() as f:
        flagged = sum(r["flagged"] == "1" for r in csv.DictReader(f))
    assert report["flagged"] == flagged
