"""The Grafana dashboards in dashboards/grafana (Athena and Azure Data Explorer) are what
generate.py makes from the binary's tile list, carry each tile's query unchanged, name their data
source through an import input, and pass validation with Grafana's schema models
(grafana-foundation-sdk, pinned in tests/requirements.txt); a deliberately broken panel fails it."""

import copy
import importlib.util
import json
import subprocess

import pytest

from conftest import REPO, sluice_binary

GRAFANA_DIR = REPO / "dashboards" / "grafana"


def load(name):
    """dashboards/grafana/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(f"grafana_{name}", GRAFANA_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = load("generate")
validate = load("validate")


@pytest.fixture(scope="module")
def tiles():
    path = sluice_binary()
    if not path.exists():
        pytest.fail(f"sluice binary not found at {path}: build it (cargo build -p sluice --features lake) or set SLUICE_BIN")
    proc = subprocess.run([str(path), "dashboard", "--list-tiles"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def committed():
    """File name -> parsed JSON of the committed dashboards."""
    return {
        source["file"]: json.loads((GRAFANA_DIR / source["file"]).read_text(encoding="utf-8"))
        for source in (generate.ATHENA, generate.ADX)
    }


def test_regenerating_from_the_binarys_tiles_gives_the_committed_files(tiles, tmp_path):
    tiles_json = tmp_path / "tiles.json"
    tiles_json.write_text(json.dumps(tiles), encoding="utf-8")
    out = tmp_path / "out"
    assert generate.main(["--tiles-json", str(tiles_json), "--out", str(out)]) == 0
    for source in (generate.ATHENA, generate.ADX):
        fresh = (out / source["file"]).read_text(encoding="utf-8")
        kept = (GRAFANA_DIR / source["file"]).read_text(encoding="utf-8")
        assert fresh == kept, (
            f"dashboards/grafana/{source['file']} is stale: run "
            "python3 dashboards/grafana/generate.py --sluice target/debug/sluice"
        )


def test_generate_reads_the_tiles_from_the_binary_too(tmp_path):
    assert generate.main(["--sluice", str(sluice_binary()), "--out", str(tmp_path)]) == 0
    for source in (generate.ATHENA, generate.ADX):
        assert (tmp_path / source["file"]).read_text(encoding="utf-8") == (GRAFANA_DIR / source["file"]).read_text(
            encoding="utf-8")


def test_the_output_is_sorted_indented_and_ends_with_a_newline(committed):
    for name, doc in committed.items():
        text = (GRAFANA_DIR / name).read_text(encoding="utf-8")
        assert text == json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n", name


def test_every_athena_panel_runs_its_tiles_sql_unchanged(tiles, committed):
    doc = committed[generate.ATHENA["file"]]
    panels = doc["panels"]
    assert [p["title"] for p in panels] == [t["title"] for t in tiles]
    for tile, panel in zip(tiles, panels):
        assert len(panel["targets"]) == 1, tile["id"]
        assert panel["targets"][0]["rawSQL"] == tile["sql"], tile["id"]
        assert tile["id"] in panel["description"]


def test_the_adx_dashboard_has_exactly_the_tiles_with_kql_each_query_unchanged(tiles, committed):
    with_kql = [t for t in tiles if t.get("kql")]
    assert with_kql and len(with_kql) < len(tiles)
    panels = committed[generate.ADX["file"]]["panels"]
    assert [p["title"] for p in panels] == [t["title"] for t in with_kql]
    for tile, panel in zip(with_kql, panels):
        assert [t["query"] for t in panel["targets"]] == [tile["kql"]], tile["id"]


def test_charts_map_to_grafana_panel_kinds(tiles, committed):
    kinds = {p["description"].split("`")[1]: p["type"] for p in committed[generate.ATHENA["file"]]["panels"]}
    expected = {"line": {"timeseries"}, "bar": {"barchart", "timeseries"}, "pie": {"piechart"},
                "funnel": {"bargauge"}, "candlestick": {"candlestick"}, "table": {"table"}, "stat": {"stat"}}
    for tile in tiles:
        assert kinds[tile["id"]] in expected[tile["chart"]], tile["id"]
    candles = [p for p in committed[generate.ATHENA["file"]]["panels"] if p["type"] == "candlestick"]
    assert candles and all(p["options"]["includeAllFields"] for p in candles)
    assert {"vwap"} <= {o["matcher"]["options"] for p in candles for o in p["fieldConfig"]["overrides"]}


def test_the_athena_dashboard_draws_the_anomalies_as_an_annotation(committed):
    annotations = committed[generate.ATHENA["file"]]["annotations"]["list"]
    assert len(annotations) == 1
    sql = annotations[0]["target"]["rawSQL"]
    assert "FROM anomalies" in sql and "$__timeFilter(window_end)" in sql
    assert committed[generate.ADX["file"]]["annotations"]["list"] == []


def test_both_validate_against_grafanas_schema_models(committed):
    from importlib.metadata import version

    assert version("grafana-foundation-sdk") == validate.SDK_VERSION
    for name, doc in committed.items():
        assert validate.validate(doc) == [], name


def test_inputs_name_the_data_source_and_every_query_uses_it(committed):
    for source in (generate.ATHENA, generate.ADX):
        doc = committed[source["file"]]
        inputs = {i["name"]: i for i in doc["__inputs"]}
        assert inputs[source["input"]]["type"] == "datasource"
        assert inputs[source["input"]]["pluginId"] == source["plugin"]
        assert {"type": "datasource", "id": source["plugin"]}.items() <= next(
            r for r in doc["__requires"] if r["type"] == "datasource").items()
        ref = {"type": source["plugin"], "uid": "${" + source["input"] + "}"}
        queries = [t for p in doc["panels"] for t in p["targets"]] + [a["target"] for a in doc["annotations"]["list"]]
        assert all(p["datasource"] == ref for p in doc["panels"]), source["file"]
        assert all(q["datasource"] == ref for q in queries), source["file"]
        assert all(a["datasource"] == ref for a in doc["annotations"]["list"]), source["file"]


def test_dashboard_settings(committed):
    for source in (generate.ATHENA, generate.ADX):
        doc = committed[source["file"]]
        assert doc["uid"] == source["uid"]
        assert doc["time"] == {"from": "now-1h", "to": "now"}
        assert doc["refresh"] == "30s"
        (key,) = doc["templating"]["list"]
        assert (key["name"], key["type"], key["query"], key["current"]["value"]) == ("key", "textbox", "", "")


def broken(doc, change):
    out = copy.deepcopy(doc)
    change(out)
    return validate.validate(out)


def test_a_broken_panel_fails_validation(committed):
    doc = committed[generate.ATHENA["file"]]
    line = next(i for i, p in enumerate(doc["panels"]) if p["type"] == "timeseries")

    def set_(path, value):
        def change(d):
            node = d["panels"][line]
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return change

    cases = {
        "a wrong field type": (set_(["gridPos", "h"], "8"), "grid_pos.h: '8' is not an integer"),
        "an unknown panel kind": (set_(["type"], "timeseriess"), "is not a panel kind"),
        "an option of no panel": (set_(["options", "legendd"], {}), "legendd: not in the schema"),
        "a value outside an enum": (set_(["fieldConfig", "defaults", "custom", "drawStyle"], "bar"), "GraphDrawStyle"),
        "an Athena format as text": (set_(["targets", 0, "format"], "table"), "FormatOptions"),
    }
    for what, (change, message) in cases.items():
        problems = broken(doc, change)
        assert any(message in p for p in problems), (what, problems)


def test_a_broken_adx_query_and_missing_inputs_fail_validation(committed):
    doc = committed[generate.ADX["file"]]

    def bad_query(d):
        d["panels"][0]["targets"][0]["resultFormat"] = "timeseries"

    assert any("resultFormat" in p for p in broken(doc, bad_query))
    assert any("__inputs" in p for p in broken(doc, lambda d: d.pop("__inputs")))
