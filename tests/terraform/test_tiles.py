"""The dashboard tiles (dashboards/tiles.toml and the tiles generated per metric) are valid where
Grafana would send them: each tile's SQL, its macros expanded as Grafana's Athena data source
expands them (by the binary, `sluice dashboard --list-tiles --expand athena`), parses in
Athena's dialect and binds to the Glue tables and the windows_merged view; each tile's KQL,
its macros expanded as the Azure Data Explorer data source does, parses and binds with
Microsoft's Kusto parser against the tables the Azure module creates. Running them is
tests/test_dashboard.py's part (DataFusion over a real lake)."""

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_athena_sql import glue_schema

sqlglot = pytest.importorskip("sqlglot")
from sqlglot.optimizer.qualify import qualify  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def list_tiles(*extra):
    binary = os.environ.get("SLUICE_BIN")
    if not binary:
        pytest.fail("SLUICE_BIN is not set: the tiles are listed by the binary")
    out = subprocess.run([binary, "dashboard", "--list-tiles", *extra], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def athena_tiles():
    return list_tiles("--expand", "athena")


def test_the_tiles_cover_the_dashboard_the_issue_names():
    ids = {t["id"] for t in list_tiles()}
    assert {"trades-count-by-type", "trades-price-trend", "trades-cumulative-quantity", "trades-quantity-by-symbol",
            "trades-volume-share", "trades-moving-average", "trades-volatility", "trades-ohlc-vwap",
            "telemetry-cpu", "telemetry-memory", "telemetry-latency-p95", "telemetry-errors",
            "clickstream-funnel", "clickstream-shoppers", "anomalies-recent", "pipeline-health"} <= ids


def test_tiles_reading_windows_read_the_merged_view():
    for tile in list_tiles():
        for sql in (tile["sql"], tile.get("markers_sql") or ""):
            assert "FROM windows\n" not in sql and "FROM windows " not in sql, tile["id"]


def test_every_tile_sql_parses_as_athena_and_binds_to_the_glue_tables(athena_tiles, aws):
    schema = glue_schema(view_columns=aws.locals["windows_merged_columns"])
    assert len(athena_tiles) >= 20
    for tile in athena_tiles:
        for sql in filter(None, (tile["sql"], tile.get("markers_sql"))):
            assert "$" not in sql, (tile["id"], "a macro was left unexpanded")
            expression = sqlglot.parse_one(sql, read="athena")
            qualify(expression, schema=schema, dialect="athena", validate_qualify_columns=True)


def test_a_tile_naming_a_wrong_column_is_caught(aws):
    schema = glue_schema(view_columns=aws.locals["windows_merged_columns"])
    bad = "SELECT symbl, COUNT(*) FROM trades WHERE event_time BETWEEN TIMESTAMP '2026-01-01 00:00:00' AND TIMESTAMP '2026-01-02 00:00:00' GROUP BY symbl"
    with pytest.raises(sqlglot.errors.OptimizeError):
        qualify(sqlglot.parse_one(bad, read="athena"), schema=schema, dialect="athena", validate_qualify_columns=True)


def adx_expand(kql):
    """Macros as Grafana's Azure Data Explorer data source expands them."""
    return (kql.replace("$key", "")
            .replace("$__timeFilter(event_time)",
                     "event_time >= datetime(2026-11-01T00:00:00Z) and event_time <= datetime(2026-11-02T00:00:00Z)"))


@pytest.mark.skipif(not os.environ.get("SLUICE_KUSTO_LS"),
                    reason="SLUICE_KUSTO_LS (dir of npm @kusto/language-service-next) is not set")
def test_every_tile_kql_parses_and_binds_with_kustos_parser():
    tiles = [t for t in list_tiles() if t.get("kql")]
    assert len(tiles) >= 12
    with tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "tiles.kql"
        blocks = []
        for tile in tiles:
            kql = adx_expand(tile["kql"]).strip()
            assert "$" not in kql, (tile["id"], "a macro the ADX expansion does not know")
            assert "\n\n" not in kql, (tile["id"], "a blank line would split the query in two")
            blocks.append(f"// {tile['id']}\n{kql}")
        queries.write_text("\n\n".join(blocks) + "\n")
        result = subprocess.run(
            ["node", str(Path(__file__).with_name("kql_check.js")), os.environ["SLUICE_KUSTO_LS"],
             str(ROOT / "terraform/modules/azure/kusto/tables.kql"), str(queries)],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
