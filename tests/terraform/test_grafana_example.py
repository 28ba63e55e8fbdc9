"""Contract of the optional Grafana example (terraform/examples/grafana) with the generated
dashboards and the AWS module:

- each grafana_dashboard's config_json is a generated file of dashboards/grafana, with every
  import input that file declares (${DS_ATHENA}, ...) replaced and no other;
- the Athena data source is the grafana-athena-datasource plugin, configured from variables
  (region, workgroup, catalog, database, output location);
- the grafana provider is pinned to a version range, and neither the AWS module nor the
  aws-minimal example requires it (AWS-only users need no Grafana provider);
- the Athena dashboard's anomaly annotation (the one query the tiles do not cover) parses as
  Athena SQL and binds to the Glue anomalies table.
"""

from __future__ import annotations

import json
import re

import pytest
from test_athena_sql import glue_schema

from tfmodel import Module, Repo, parse_tf

sqlglot = pytest.importorskip("sqlglot")
from sqlglot.optimizer.qualify import qualify  # noqa: E402

DASHBOARDS = {"athena": "sluice-athena.json", "adx": "sluice-adx.json"}


@pytest.fixture(scope="module")
def example(repo: Repo) -> Module:
    return Module.load(repo.terraform / "examples" / "grafana")


def generated(repo: Repo, name: str) -> dict:
    return json.loads((repo.root / "dashboards" / "grafana" / name).read_text(encoding="utf-8"))


def required_providers(directory) -> dict:
    out = {}
    for path in sorted(directory.glob("*.tf")):
        for block in parse_tf(path).get("terraform", []):
            for providers in block.get("required_providers", []):
                out.update({k: v for k, v in providers.items() if not k.startswith("__")})
    return out


def test_each_dashboard_is_a_generated_file_with_its_inputs_replaced(example: Module, repo: Repo):
    dashboards = example.resources.get("grafana_dashboard", {})
    assert set(dashboards) == set(DASHBOARDS), "one grafana_dashboard per generated dashboard"
    for name, body in dashboards.items():
        config = str(body["config_json"])
        files = re.findall(r'file\("\$\{local\.dashboards_dir\}/([^"]+)"\)', config)
        assert files == [DASHBOARDS[name]], (name, config)
        assert example.locals["dashboards_dir"] == "${path.module}/../../../dashboards/grafana"
        inputs = {i["name"] for i in generated(repo, DASHBOARDS[name])["__inputs"]}
        replaced = set(re.findall(r'"\$\$\{(\w+)\}"', config))
        assert replaced == inputs, f"{name}: replaces {sorted(replaced)}, the file's inputs are {sorted(inputs)}"


def test_the_athena_dashboard_gets_the_athena_data_source(example: Module):
    config = str(example.resources["grafana_dashboard"]["athena"]["config_json"])
    assert re.search(r'"\$\$\{DS_ATHENA\}",\s*grafana_data_source\.athena\.uid', config), config


def test_the_athena_data_source_is_configured_from_variables(example: Module):
    source = example.resources["grafana_data_source"]["athena"]
    assert source["type"] == "grafana-athena-datasource"
    settings = str(source["json_data_encoded"])
    for key, variable in {"defaultRegion": "region", "workgroup": "athena_workgroup", "catalog": "athena_catalog",
                          "database": "athena_database", "outputLocation": "athena_output_location"}.items():
        assert re.search(rf"\b{key} = var\.{variable}\b", settings), (key, settings)
        assert variable in example.variables, variable


def test_the_grafana_provider_is_pinned_to_a_range(repo: Repo):
    grafana = required_providers(repo.terraform / "examples" / "grafana")["grafana"]
    assert grafana["source"] == "grafana/grafana"
    assert re.search(r">=\s*\d", grafana["version"]) and re.search(r"<\s*\d", grafana["version"]), grafana


@pytest.mark.parametrize("directory", ["modules/aws", "examples/aws-minimal"])
def test_aws_only_deployments_need_no_grafana_provider(repo: Repo, directory: str):
    path = repo.terraform / directory
    assert "grafana" not in required_providers(path)
    module = Module.load(path)
    assert not [t for t in module.resources if t.startswith("grafana_")]
    assert not re.search(r'provider\s+"grafana"', module.text)


def athena_expand(sql: str) -> str:
    """The Athena data source's macros, expanded for one day; an empty key filter."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 r"\1 BETWEEN TIMESTAMP '2026-11-01 00:00:00' AND TIMESTAMP '2026-11-02 00:00:00'", sql)
    return sql.replace("$key", "")


def test_the_anomaly_annotation_binds_to_the_glue_tables(repo: Repo, aws: Module):
    annotations = generated(repo, DASHBOARDS["athena"])["annotations"]["list"]
    assert annotations, "the Athena dashboard has no anomaly annotation"
    schema = glue_schema(view_columns=aws.locals["windows_merged_columns"])
    for annotation in annotations:
        sql = athena_expand(annotation["target"]["rawSQL"])
        assert "$" not in sql, sql
        expression = sqlglot.parse_one(sql, read="athena")
        qualify(expression, schema=schema, dialect="athena", validate_qualify_columns=True)
        assert {"time", "text", "tags"} <= set(expression.named_selects)
