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


VIEW = ROOT / "terraform/modules/aws/views/windows_merged.sql"
ATHENA_TYPE = {"string": "VARCHAR", "bigint": "BIGINT", "double": "DOUBLE", "timestamp": "TIMESTAMP",
               "binary": "VARBINARY", "boolean": "BOOLEAN"}


def glue_schema(path=ROOT / "terraform/modules/aws/glue_tables.json", view_columns=None):
    """Table → column → Athena type, from the Glue JSON; with `view_columns` (the Terraform
    view's column list) the windows_merged view as well."""
    tables = json.loads(path.read_text())
    schema = {}
    for name, table in tables.items():
        columns = {p: "VARCHAR" for p in table["partitions"]}
        columns.update({c["name"]: ATHENA_TYPE[c["type"]] for c in table["columns"]})
        schema[name] = columns
    if view_columns is not None:
        schema["windows_merged"] = {c["name"]: ATHENA_TYPE[c["type"]] for c in view_columns}
    return schema


@pytest.fixture(scope="module")
def view_columns(aws):
    return aws.locals["windows_merged_columns"]


def test_the_merged_view_parses_as_athena_binds_to_windows_and_outputs_its_declared_columns(view_columns):
    expression = sqlglot.parse_one(VIEW.read_text(), read="athena")
    qualified = qualify(expression, schema=glue_schema(), dialect="athena", validate_qualify_columns=True)
    assert qualified.named_selects == [c["name"] for c in view_columns]


def test_there_are_queries():
    assert len(QUERIES) >= 6


@pytest.mark.parametrize("path", QUERIES, ids=lambda p: p.stem)
def test_query_parses_as_athena_and_binds_to_the_glue_columns(path, view_columns):
    sql = path.read_text()
    expression = sqlglot.parse_one(sql, read="athena")  # raises on a syntax error
    qualify(expression, schema=glue_schema(view_columns=view_columns), dialect="athena",
            validate_qualify_columns=True)


def test_the_example_has_queries():
    assert EXAMPLE_QUERIES, f"no *.sql beside {EXAMPLE}"


@pytest.mark.parametrize("path", EXAMPLE_QUERIES, ids=lambda p: p.stem)
def test_example_query_binds_to_its_own_glue_columns(path, view_columns):
    expression = sqlglot.parse_one(path.read_text(), read="athena")
    qualify(expression, schema=glue_schema(EXAMPLE / "glue_tables.json", view_columns), dialect="athena",
            validate_qualify_columns=True)


def test_a_wrong_column_is_caught():
    bad = "SELECT symbl, COUNT(*) FROM trades GROUP BY symbl"
    with pytest.raises(sqlglot.errors.OptimizeError):
        qualify(sqlglot.parse_one(bad, read="athena"), schema=glue_schema(), dialect="athena", validate_qualify_columns=True)
