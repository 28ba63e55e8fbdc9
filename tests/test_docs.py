"""Docs generated from the one schema definition must not drift from it."""

from conftest import REPO


def test_readme_lake_tables_match_the_rust_schema(sluice):
    generated = sluice("schema", "--format", "markdown").stdout
    readme = (REPO / "README.md").read_text()
    assert generated.strip() in readme, "README 'Lake tables' is stale: paste `sluice schema` output"


def test_readme_lists_every_shipped_example(sluice):
    readme = (REPO / "README.md").read_text()
    for line in sluice("query", "--list-examples").stdout.splitlines():
        assert f"`{line.split()[0]}`" in readme, line
