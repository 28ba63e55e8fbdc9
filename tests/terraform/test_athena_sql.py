"""The SQL sluice ships for Athena parses in Athena's dialect (Trino, via sqlglot) and names only
columns the Glue tables have. The same files run locally through `sluice query` (tests/test_pipeline.py)."""

import json
from pathlib import Path

import pytest

sqlglot = pytest.importorskip("sqlglot")
from sqlglot.optimizer.qualify import qualify  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QUERIES = sorted((ROOT / "terraform/modules/aws/queries").glob("*.sql"))
# The worked example of a stream sluice does not ship: its queries bind to its own Glue JSON.
EXAMPLE = ROOT / "streams/examples/stocks"
EXAMPLE_QUERIES = sorted(EXAMPLE.glob("*.sql"))


def glue_schema(path=ROOT / "terraform/modules/aws/glue_tables.json"):
    tables = json.loads(path.read_text())
    athena_type = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "timestamp": "TIMESTAMP",
                   "binary": "VARBINARY", "boolean": "BOOLEAN"}
    schema = {}
    for name, table in tables.items():
        columns = {p: "VARCHAR" for p in table["partitions"]}
        columns.update({c["name"]: athena_type[c["type"]] for c in table["columns"]})
        schema[name] = columns
    return schema


def test_there_are_queries():
    assert len(QUERIES) >= 6


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_query_parses_as_athena_and_binds_to_the_glue_columns(path):
    sql = path.read_text()
    expression = sqlglot.parse_one(sql, read="athena")  # raises on a syntax error
    qualify(expression, schema=glue_schema(), dialect="athena", validate_qualify_columns=True)


def test_the_example_has_queries():
    assert EXAMPLE_QUERIES, f"no *.sql beside {EXAMPLE}"


@pytest.mark.parametrize("path", EXAMPLE_QUERIES, ids=lambda p: p.stem)
def test_example_query_binds_to_its_own_glue_columns(path):
    expression = sqlglot.parse_one(path.read_text(), read="athena")
    qualify(expression, schema=glue_schema(EXAMPLE / "glue_tables.json"), dialect="athena", validate_qualify_columns=True)


def test_a_wrong_column_is_caught():
    bad = "SELECT symbl, COUNT(*) FROM trades GROUP BY symbl"
    with pytest.raises(sqlglot.errors.OptimizeError):
        qualify(sqlglot.parse_one(bad, read="athena"), schema=glue_schema(), dialect="athena", validate_qualify_columns=True)
