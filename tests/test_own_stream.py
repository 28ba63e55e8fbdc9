"""A stream sluice does not ship, defined only in tests/fixtures/streams/airquality.toml: records
in through `sluice invoke aggregate --streams`, every closed window checked against DuckDB over
the raw Parquet it wrote (percentiles within the sketch's stated 1%), the rollup's distinct
count, coercion and quarantine reasons, and the definition's errors."""

import base64
import json
import math
import random

import duckdb
import pytest

from conftest import REPO, close

DEFINITION = REPO / "tests" / "fixtures" / "streams" / "airquality.toml"
T0 = 1_795_496_400_000  # 2026-11-24T05:00:00Z
LATENESS_MS = 2_000
STATIONS = [f"st-{i:02d}" for i in range(6)]

BAD = {
    "invalid_value:pm25": {"reading_id": "bad-1", "station": "st-00", "ts": T0 + 5_000, "pm25": -5.0, "Status": "ok"},
    "invalid_value:no2": {"reading_id": "bad-2", "station": "st-00", "ts": T0 + 5_000, "pm25": 5.0,
                          "readings": {"no2": "abc"}, "Status": "ok"},
    "missing_field:station": {"reading_id": "bad-3", "ts": T0 + 5_000, "pm25": 5.0, "Status": "ok"},
    "invalid_value:Status": {"reading_id": "bad-4", "station": "st-01", "ts": T0 + 5_000, "pm25": 5.0, "Status": "broken"},
    "wrong_type:ts": {"reading_id": "bad-5", "station": "st-01", "ts": "soon", "pm25": 5.0, "Status": "ok"},
}


def readings():
    """Three minutes of readings from six stations, with the shapes producers send: NO2 as a
    number, as a string, or missing; Status in any case; a few late arrivals."""
    rng = random.Random(11)
    out = []
    t = T0
    for i in range(1_400):
        t += rng.randint(50, 200)
        ts = t - (rng.randint(3_000, 9_000) if i % 97 == 0 else 0)  # some arrive late
        r = {"reading_id": f"r-{i}", "station": rng.choice(STATIONS), "ts": ts,
             "pm25": round(math.exp(rng.gauss(2.5, 0.8)), 3), "Status": rng.choice(["ok", "OK", "Degraded", "ok"])}
        no2 = round(rng.uniform(5, 80), 2)
        shape = i % 3
        if shape == 0:
            r["readings"] = {"no2": no2}
        elif shape == 1:
            r["readings"] = {"no2": f"{no2:.2f}"}
        out.append(r)
    return out


def kinesis_event(records, first_seq=1_000):
    out = []
    for i, r in enumerate(records):
        seq = str(first_seq + i)
        data = r if isinstance(r, bytes) else json.dumps(r).encode()
        ts = r.get("ts") if isinstance(r, dict) and isinstance(r.get("ts"), int) else T0
        out.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "p", "sequenceNumber": seq,
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": ts / 1000 + 1},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000000:{seq}",
            "eventName": "aws:kinesis:record", "invokeIdentityArn": "arn:aws:iam::123456789012:role/x",
            "awsRegion": "eu-west-1", "eventSourceARN": "arn:aws:kinesis:eu-west-1:123456789012:stream/air",
        })
    return {"Records": out}


@pytest.fixture(scope="module")
def lake(sluice, tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    records = readings()
    for j, bad in enumerate(BAD.values()):
        records.insert(50 + 100 * j, bad)
    lake = root / "lake"
    # Two batches of one shard: open windows and their sketches go through the state between.
    half = len(records) // 2
    for i, (part, first_seq) in enumerate(((records[:half], 1_000), (records[half:], 1_000 + half))):
        event = root / f"event-{i}.json"
        event.write_text(json.dumps(kinesis_event(part, first_seq)))
        sluice("invoke", "aggregate", "--streams", DEFINITION, "--event", event, "--lake", lake)
    return lake


def recompute(lake, size):
    """Every (series, window) from the raw rows that were on time, from first principles."""
    raw = f"read_parquet('{lake}/raw/scenario=airquality/**/*.parquet')"
    late = list((lake / "late").rglob("*.parquet"))
    on_time = f"reading_id NOT IN (SELECT event_id FROM read_parquet('{lake}/late/**/*.parquet'))" if late else "true"
    sql = f"""
    WITH r AS (SELECT *, CAST(sequence_number AS BIGINT) AS seq FROM {raw} WHERE {on_time}),
    s AS (
        SELECT station AS key, 'key' AS scope, 'pm25' AS metric, pm25 AS v, NULL::DOUBLE AS w, ts, seq, station FROM r
        UNION ALL SELECT 'all_stations', 'rollup', 'pm25', pm25, NULL, ts, seq, station FROM r
        UNION ALL SELECT station, 'key', 'no2', no2, pm25, ts, seq, station FROM r WHERE no2 IS NOT NULL
        UNION ALL SELECT station, 'key', 'degraded', 1.0, NULL, ts, seq, station FROM r WHERE status = 'degraded'
        UNION ALL SELECT 'all_stations', 'rollup', 'station', 1.0, NULL, ts, seq, station FROM r
    )
    SELECT key, scope, metric, (epoch_ms(ts) // {size}) * {size} AS start_ms,
           COUNT(*) AS count, SUM(v) AS sum, MIN(v) AS min, MAX(v) AS max, AVG(v) AS avg, STDDEV_SAMP(v) AS stddev,
           first(v ORDER BY ts, seq) AS first, last(v ORDER BY ts, seq) AS last,
           SUM(v * w) / SUM(w) AS weighted_avg,
           list_sort(list(v)) AS sorted, COUNT(DISTINCT station) AS distinct_stations
    FROM s GROUP BY ALL
    """
    return {(r[0], r[1], r[2], r[3]): r[4:] for r in duckdb.connect().execute(sql).fetchall()}


def engine_rows(lake, name):
    sql = f"""
    SELECT key, scope, metric, epoch_ms(window_start), epoch_ms(window_end),
           count, sum, min, max, avg, stddev, first, last, weighted_avg, p50, p90, p95, p99, distinct_count
    FROM read_parquet('{lake}/windows/**/*.parquet', hive_partitioning = true)
    WHERE window_name = '{name}' AND scenario = 'airquality'
    """
    return duckdb.connect().execute(sql).fetchall()


@pytest.mark.parametrize("name,size", [("tumbling_10s", 10_000), ("tumbling_1m", 60_000)])
def test_windows_equal_duckdb_over_the_raw_rows(lake, name, size):
    expected = recompute(lake, size)
    watermark = duckdb.connect().execute(
        f"SELECT epoch_ms(MAX(ts)) FROM read_parquet('{lake}/raw/scenario=airquality/**/*.parquet')").fetchone()[0] - LATENESS_MS
    rows = engine_rows(lake, name)
    assert len(rows) > 20
    got = {}
    for r in rows:
        key = (r[0], r[1], r[2], r[3])
        assert key not in got, f"window emitted twice: {key}"
        assert r[4] - r[3] == size and r[4] <= watermark, r
        got[key] = r[5:]
    closed = {k for k in expected if k[3] + size <= watermark}
    assert set(got) == closed, f"missing {sorted(closed - set(got))[:3]}, extra {sorted(set(got) - closed)[:3]}"
    for key, have in got.items():
        (count, s, mn, mx, avg, sd, first, last, wavg, p50, p90, p95, p99, distinct) = have
        want = expected[key]
        metric = key[2]
        assert count == want[0], key
        if metric == "pm25":
            for h, w in zip((s, mn, mx, avg, sd, first, last), want[1:8]):
                assert close(h, w), (key, h, w)
            ordered = want[9]
            for q, h in zip((0.5, 0.9, 0.95, 0.99), (p50, p90, p95, p99)):
                exact = ordered[int(q * (len(ordered) - 1))]
                assert abs(h - exact) <= 0.01 * abs(exact), (key, q, h, exact)
            assert distinct is None and wavg is None
        elif metric == "no2":
            assert close(avg, want[4]) and close(wavg, want[8]), key
            exact = want[9][int(0.5 * (len(want[9]) - 1))]
            assert abs(p50 - exact) <= 0.01 * exact, (key, p50, exact)
            assert s is None and p95 is None, "aggregates not declared are null"
        elif metric == "station":
            assert key[1] == "rollup" and distinct == want[10], (key, distinct, want[10])
        else:
            assert metric == "degraded" and s is None and avg is None


def test_the_rollup_is_a_series_of_its_own(lake):
    scopes = duckdb.connect().execute(
        f"SELECT DISTINCT key, scope FROM read_parquet('{lake}/windows/**/*.parquet') WHERE scope = 'rollup'").fetchall()
    assert scopes == [("all_stations", "rollup")]


def test_coerced_values_are_stored_in_their_type(lake):
    con = duckdb.connect()
    raw = f"read_parquet('{lake}/raw/scenario=airquality/**/*.parquet')"
    statuses = {r[0] for r in con.execute(f"SELECT DISTINCT status FROM {raw}").fetchall()}
    assert statuses == {"ok", "degraded"}, "enumerations are stored in their declared spelling"
    strings = [r for r in readings() if isinstance(r.get("readings", {}).get("no2"), str)]
    sample = strings[0]
    got = con.execute(f"SELECT no2 FROM {raw} WHERE reading_id = ?", [sample["reading_id"]]).fetchone()[0]
    assert got == float(sample["readings"]["no2"])
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {raw})").fetchall())
    assert types["ts"].startswith("TIMESTAMP WITH TIME ZONE") and types["no2"] == "DOUBLE"


def test_bad_records_are_quarantined_naming_the_field(lake):
    rows = duckdb.connect().execute(
        f"SELECT reason_code, reason, raw FROM read_parquet('{lake}/quarantine/**/*.parquet', hive_partitioning = true)"
        " WHERE scenario = 'airquality'").fetchall()
    assert len(rows) == len(BAD)
    for code_field, record in BAD.items():
        code, field = code_field.split(":")
        match = [r for r in rows if json.loads(r[2]) == record]
        assert match, f"{record} not quarantined with its bytes"
        assert match[0][0] == code and f"`{field}`" in match[0][1], match[0]


def test_query_and_schema_know_the_stream(sluice, lake):
    out = sluice("query", "--streams", DEFINITION, "--lake", lake, "--format", "json",
                 "SELECT COUNT(*) AS n FROM airquality").stdout
    n = duckdb.connect().execute(
        f"SELECT COUNT(*) FROM read_parquet('{lake}/raw/scenario=airquality/**/*.parquet')").fetchone()[0]
    assert json.loads(out.splitlines()[0])["n"] == n == len(readings())
    glue = json.loads(sluice("schema", "--format", "glue", "--streams", DEFINITION).stdout)
    assert [c["name"] for c in glue["airquality"]["columns"]][:6] == ["ts", "reading_id", "station", "pm25", "no2", "status"]
    assert glue["airquality"]["prefix"] == "raw/scenario=airquality"
    kusto = sluice("schema", "--format", "kusto", "--streams", DEFINITION).stdout
    assert ".create-merge table airquality (['ts']: datetime, ['reading_id']: string, ['station']: string, ['pm25']: real" in kusto
    assert '"path":"$.readings.no2"' in kusto


def test_a_bad_definition_fails_before_any_record_naming_file_and_line(sluice, tmp_path):
    text = DEFINITION.read_text().replace('type = "double"\nmin = 0.0\nmax = 1000.0', 'type = "decimal"\nmin = 0.0\nmax = 1000.0')
    bad = tmp_path / "air.toml"
    bad.write_text(text)
    line = text[: text.index('type = "decimal"')].count("\n") + 1
    event = tmp_path / "event.json"
    event.write_text(json.dumps(kinesis_event(readings()[:5])))
    proc = sluice("invoke", "aggregate", "--streams", bad, "--event", event, "--lake", tmp_path / "lake", check=False)
    assert proc.returncode != 0
    assert f"{bad}:{line}:" in proc.stderr and "decimal" in proc.stderr, proc.stderr
    assert not (tmp_path / "lake" / "raw").exists(), "nothing is written"


def test_definition_changes_must_be_additive(sluice, lake, tmp_path):
    """The lake recorded the stream's columns on first use; a later definition may add nullable
    fields but not retype one or add one that old rows lack."""
    import shutil

    copy = tmp_path / "lake"
    shutil.copytree(lake, copy)
    event = tmp_path / "event.json"
    event.write_text(json.dumps(kinesis_event(readings()[:3], first_seq=90_000)))
    base = DEFINITION.read_text()

    def invoke(text):
        path = tmp_path / "air.toml"
        path.write_text(text)
        return path, sluice("invoke", "aggregate", "--streams", path, "--event", event, "--lake", copy, check=False)

    path, proc = invoke(base.replace('type = "double"\nmin = 0.0\nmax = 1000.0', 'type = "long"\nmin = 0.0\nmax = 1000.0'))
    assert proc.returncode != 0
    assert f"{path}: field \"pm25\" (column pm25) was double and is now long" in proc.stderr, proc.stderr
    path, proc = invoke(base + '\n[fields.o3]\ntype = "double"\n')
    assert proc.returncode != 0 and "new field \"o3\" (column o3) is not nullable" in proc.stderr, proc.stderr
    path, proc = invoke(base + '\n[fields.o3]\ntype = "double"\nnullable = true\n')
    assert proc.returncode == 0, proc.stderr
    recorded = json.loads((copy / "state" / "aggregate" / "_columns" / "airquality.json").read_text())
    assert [c["column"] for c in recorded["columns"]][-1] == "o3"
