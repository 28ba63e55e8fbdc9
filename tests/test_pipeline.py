"""The local pipeline end to end, checked by readers that share no code with sluice:
DuckDB recomputes the windows from the raw Parquet, pyarrow checks the types."""

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import close, outbox, parquet_files


def test_run_writes_raw_windows_anomalies_and_alerts(lake):
    root = lake["dir"]
    for scenario in ("trades", "telemetry", "clickstream"):
        assert parquet_files(root, f"raw/scenario={scenario}"), f"no raw {scenario}"
        assert parquet_files(root, f"windows/scenario={scenario}"), f"no {scenario} windows"
    assert parquet_files(root, "anomalies"), "no anomalies"
    alerts = outbox(root)
    assert alerts, f"no alert from the default rules\n{lake['stderr']}"
    for a in alerts:
        assert a["rule"] and a["severity"] in ("info", "warning", "critical")
        assert a["inspect_query"].startswith("SELECT * FROM ")
    assert "summary after" in lake["stderr"]
    # What was sent is in the lake's alerts table: exactly the outbox's alerts, once each.
    table = [r for f in parquet_files(root, "alerts") for r in pq.read_table(f).to_pylist()]
    assert sorted(r["alert_id"] for r in table) == sorted(a["alert_id"] for a in alerts)
    by_id = {a["alert_id"]: a for a in alerts}
    for r in table:
        a = by_id[r["alert_id"]]
        assert (r["rule"], r["key"], r["metric"], r["severity"]) == (a["rule"], a["key"], a["metric"], a["severity"])


def test_parquet_has_real_types_and_utc_timestamps(lake):
    root = lake["dir"]
    import pyarrow as pa

    trades = pq.read_schema(parquet_files(root, "raw/scenario=trades")[0])
    assert trades.field("event_time").type == pa.timestamp("ms", tz="UTC")
    assert trades.field("price").type == pa.float64()
    assert trades.field("quantity").type == pa.int64()
    assert "scenario" not in trades.names, "partition columns stay in the path"
    windows = pq.read_schema(parquet_files(root, "windows")[0])
    assert windows.field("window_end").type == pa.timestamp("ms", tz="UTC")
    assert windows.field("count").type == pa.int64()
    # Column chunks are zstd-compressed, except those under 2 KB, where zstd's framing costs more
    # than it saves (written uncompressed).
    codecs = []
    for f in parquet_files(root, "windows"):
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                chunk = meta.row_group(g).column(c)
                codecs.append(chunk.compression)
                assert chunk.compression == "ZSTD" or chunk.total_uncompressed_size < 2048, (f, c)
    assert "ZSTD" in codecs


# Aggregates recomputed from raw events with DuckDB: one row per (scenario, key, window, metric).
def recompute_sql(root, size):
    """Aggregates recomputed from raw events: one row per (scenario, key, metric, window start)."""
    late_files = list((root / "late").rglob("*.parquet"))
    late = (
        f"SELECT event_id FROM read_parquet('{root}/late/**/*.parquet')"
        if late_files
        else "SELECT CAST(NULL AS VARCHAR) AS event_id WHERE false"
    )
    def raw(stream):
        return f"read_parquet('{root}/raw/scenario={stream}/**/*.parquet')"

    seq = "CAST(sequence_number AS UBIGINT)"
    fresh = "event_id NOT IN (SELECT event_id FROM late)"
    # `part` tells rows apart that share a key: '' for a key's row, the shard for a rollup's
    # (each shard aggregates its own part of the stream total).
    branches = [
        f"SELECT 'trades' AS scenario, symbol AS key, '' AS part, 'price' AS metric, price AS value, CAST(quantity AS DOUBLE) AS weight, event_time, {seq} AS seq FROM {raw('trades')} WHERE {fresh}",
        f"SELECT 'trades', symbol, '', 'quantity', CAST(quantity AS DOUBLE), NULL, event_time, {seq} FROM {raw('trades')} WHERE {fresh}",
    ]
    for metric in ("cpu_pct", "mem_pct", "error_count", "latency_ms"):
        branches.append(
            f"SELECT 'telemetry', host, '', '{metric}', CAST({metric} AS DOUBLE), NULL, event_time, {seq} FROM {raw('telemetry')} WHERE {fresh}"
        )
    # The clickstream definition rolls every event up into the stream-wide series `all`.
    for key, part in (("user_id", "''"), ("'all'", "shard_id")):
        branches.append(
            f"SELECT 'clickstream', {key}, {part}, 'actions', 1.0, NULL, event_time, {seq} FROM {raw('clickstream')} WHERE {fresh}"
        )
        branches.append(
            f"SELECT 'clickstream', {key}, {part}, 'purchase_amount', amount, NULL, event_time, {seq} FROM {raw('clickstream')} WHERE action = 'purchase' AND {fresh}"
        )
    samples = "\n    UNION ALL\n    ".join(branches)
    return f"""
WITH late AS ({late}),
samples AS (
    {samples}
)
SELECT scenario, key, part, metric, {size} AS size_ms,
       (epoch_ms(event_time) // {size}) * {size} AS start_ms,
       COUNT(*) AS count, SUM(value) AS sum, MIN(value) AS min, MAX(value) AS max, AVG(value) AS avg,
       STDDEV_SAMP(value) AS stddev,
       first(value ORDER BY event_time, seq) AS first, last(value ORDER BY event_time, seq) AS last,
       SUM(value * weight) / SUM(weight) AS weighted_avg
FROM samples
GROUP BY ALL
"""


ENGINE = """
SELECT scenario, key, CASE WHEN scope = 'rollup' THEN shard_id ELSE '' END AS part, metric, window_name,
       epoch_ms(window_start) AS start_ms, epoch_ms(window_end) AS end_ms,
       count, sum, min, max, avg, stddev, first, last, weighted_avg
FROM read_parquet('{root}/windows/**/*.parquet', hive_partitioning = true)
WHERE window_name = '{name}'
"""


@pytest.mark.parametrize("name,size", [("tumbling_10s", 10_000), ("tumbling_1m", 60_000)])
def test_tumbling_windows_equal_duckdb_over_raw_events(lake, name, size):
    root = lake["dir"]
    con = duckdb.connect()
    expected = {
        (r[0], r[1], r[2], r[3], r[5]): r[6:]
        for r in con.execute(recompute_sql(root, size)).fetchall()
    }
    got = {}
    for r in con.execute(ENGINE.format(root=root, name=name)).fetchall():
        key = (r[0], r[1], r[2], r[3], r[5])
        assert key not in got, f"window emitted twice: {key}"
        assert r[6] - r[5] == size, r
        got[key] = r[7:]
    assert set(got) == set(expected), (
        f"missing from engine: {sorted(set(expected) - set(got))[:5]}, "
        f"not in raw: {sorted(set(got) - set(expected))[:5]}"
    )
    assert len(got) > 100
    names = ["count", "sum", "min", "max", "avg", "stddev", "first", "last", "weighted_avg"]
    for key, want in expected.items():
        have = got[key]
        assert have[0] == want[0], f"{key}: count {have[0]} != {want[0]}"
        for n, h, w in zip(names[1:], have[1:], want[1:]):
            assert close(h, w), f"{key}: {n} engine={h} duckdb={w}"


def test_every_example_query_runs_and_returns_rows(lake, sluice):
    names = [line.split()[0] for line in sluice("query", "--list-examples").stdout.splitlines()]
    assert len(names) >= 6
    for name in names:
        out = sluice("query", "--lake", lake["dir"], "--example", name, "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if name != "quarantine-reasons":  # the generators send no garbage
            assert rows, f"{name} returned nothing"


def test_dashboard_answers_agree_with_duckdb(lake, sluice):
    root = lake["dir"]
    out = sluice("query", "--lake", root, "--example", "trades-volume-share", "--format", "json").stdout
    shares = {r["symbol"]: r["share_pct"] for r in map(json.loads, out.splitlines())}
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT symbol, 100.0 * SUM(quantity) / SUM(SUM(quantity)) OVER () FROM read_parquet('{root}/raw/scenario=trades/**/*.parquet') GROUP BY symbol"
    ).fetchall()
    assert {s: round(v, 2) for s, v in rows} == shares
    assert abs(sum(shares.values()) - 100.0) < 0.05


def test_query_formats_and_partition_pruning(lake, sluice):
    root = lake["dir"]
    csv = sluice("query", "--lake", root, "--format", "csv",
                 "SELECT dt, hour, COUNT(*) AS n FROM trades GROUP BY dt, hour ORDER BY dt, hour").stdout
    lines = csv.strip().splitlines()
    assert lines[0] == "dt,hour,n" and len(lines) >= 2
    dt, hour, _ = lines[1].split(",")
    pruned = sluice("query", "--lake", root, "--format", "json",
                    f"SELECT COUNT(*) AS n FROM trades WHERE dt = '{dt}' AND hour = '{hour}'").stdout
    assert json.loads(pruned)["n"] == int(lines[1].split(",")[2])
    bad = sluice("query", "--lake", root, "SELECT nope FROM trades", check=False)
    assert bad.returncode != 0 and "nope" in bad.stderr
