"""A stream defined only in a test fixture (tests/fixtures/streams/airquality.toml): the Glue
columns and Kusto commands `sluice schema --streams` generates for it pass the same checks as the
shipped ones. Athena SQL over its tables parses and binds in Trino's dialect (sqlglot), KQL over
its Kusto table parses and binds in Microsoft's Kusto parser."""

import json
import os
import subprocess
from pathlib import Path

import pytest

sqlglot = pytest.importorskip("sqlglot")
from sqlglot.optimizer.qualify import qualify  # noqa: E402

from test_athena_sql import glue_schema  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests/fixtures/streams/airquality.toml"

pytestmark = pytest.mark.skipif(not os.environ.get("SLUICE_BIN"), reason="SLUICE_BIN is not set")


def schema(fmt: str) -> str:
    binary = os.environ["SLUICE_BIN"]
    result = subprocess.run([binary, "schema", "--format", fmt, "--streams", str(FIXTURE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


SQL = """
SELECT w.key AS station, w.window_end, w.p95, w.distinct_count, r.readings
FROM windows w
JOIN (SELECT station, dt, count(*) AS readings, approx_percentile(pm25, 0.95) AS raw_p95
      FROM airquality WHERE status = 'degraded' AND no2 IS NOT NULL GROUP BY station, dt) r
  ON r.station = w.key AND r.dt = w.dt
WHERE w.scenario = 'airquality' AND w.window_name = 'tumbling_1m' AND w.metric = 'pm25'
"""


def test_athena_sql_binds_to_the_generated_glue_columns(tmp_path):
    glue = tmp_path / "glue_tables.json"
    glue.write_text(schema("glue"))
    tables = glue_schema(glue)
    assert set(tables) == {"airquality", "windows", "anomalies", "late", "quarantine", "pipeline", "alerts"}
    qualify(sqlglot.parse_one(SQL, read="athena"), schema=tables, dialect="athena", validate_qualify_columns=True)
    with pytest.raises(sqlglot.errors.OptimizeError):
        bad = SQL.replace("no2 IS NOT NULL", "o3 IS NOT NULL")
        qualify(sqlglot.parse_one(bad, read="athena"), schema=tables, dialect="athena", validate_qualify_columns=True)
    assert json.loads(glue.read_text())["airquality"]["prefix"] == "raw/scenario=airquality"


@pytest.mark.skipif(not os.environ.get("SLUICE_KUSTO_LS"), reason="SLUICE_KUSTO_LS is not set")
def test_kql_binds_to_the_generated_kusto_table(tmp_path):
    (tmp_path / "tables.kql").write_text(schema("kusto"))
    query = tmp_path / "query.kql"

    def check(text):
        query.write_text(text)
        return subprocess.run(
            ["node", str(Path(__file__).with_name("kql_check.js")), os.environ["SLUICE_KUSTO_LS"],
             str(tmp_path / "tables.kql"), str(query)],
            capture_output=True, text=True, timeout=120,
        )

    good = check("airquality\n| where status == 'degraded'\n| summarize p95 = percentile(pm25, 95), n = count() by station, bin(ts, 1m)\n")
    assert good.returncode == 0, good.stdout + good.stderr
    bad = check("airquality\n| summarize avg(o3) by station\n")
    assert bad.returncode != 0 and "o3" in bad.stdout, bad.stdout
