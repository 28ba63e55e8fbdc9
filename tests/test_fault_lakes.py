"""Lakes the fault-injection harness left (functions/aggregate/tests/faults.rs, run with
SLUICE_FAULT_LAKES=DIR by tests/run.sh), read with DuckDB, an engine sluice does not use itself:
after failed writes, lost responses, bisected and grown retries, refused commits, redeliveries,
producer duplicates and sweeps, each raw event is there once, and the windows equal the
one-pass reference's."""

import os
import pathlib

import duckdb
import pytest

LAKES = os.environ.get("SLUICE_FAULT_LAKES")


@pytest.fixture(scope="module")
def lakes():
    if not LAKES:
        pytest.fail("SLUICE_FAULT_LAKES is not set: bash tests/run.sh runs the harness with it first")
    root = pathlib.Path(LAKES)
    reference = root / "reference"
    schedules = sorted(p for p in root.glob("schedule-*") if p.is_dir())
    assert reference.is_dir() and len(schedules) == 3, f"the harness saved no lakes under {root}"
    return reference, schedules


def query(lake: pathlib.Path, sql: str):
    con = duckdb.connect()
    for table in ("raw", "windows"):
        files = sorted(str(p) for p in (lake / table).rglob("*.parquet"))
        assert files, f"{lake} has no {table} objects"
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files!r}, union_by_name = true)")
    return con.execute(sql).fetchall()


def test_each_event_is_in_raw_once(lakes):
    reference, schedules = lakes
    [(events,)] = query(reference, "SELECT COUNT(*) FROM raw")
    assert events > 100
    for lake in schedules:
        [(rows, distinct)] = query(lake, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM raw")
        assert rows == distinct == events, lake.name


def test_windows_equal_the_one_pass_reference(lakes):
    reference, schedules = lakes
    # The harness adds a tumbling_2m window halfway (a configuration change): its rows are new.
    sql = """SELECT window_name, scope, key, metric, epoch_ms(window_start), count, sum, min, max, first, last
             FROM windows WHERE window_name <> 'tumbling_2m' ORDER BY ALL"""
    want = query(reference, sql)
    assert want
    for lake in schedules:
        assert query(lake, sql) == want, lake.name
