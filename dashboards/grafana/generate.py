#!/usr/bin/env python3
"""Generate sluice's Grafana dashboards from the tile list.

The tiles come from `sluice dashboard --list-tiles` (dashboards/tiles.toml plus one generated
tile per metric of each stream definition), either read from a JSON file (--tiles-json) or by
running the binary (--sluice). Two importable dashboards are written:

- sluice-athena.json: every tile, each panel one Athena query (`rawSQL`, the tile's SQL with its
  macros unchanged), and the anomalies table drawn as a dashboard annotation;
- sluice-adx.json: the tiles that have KQL (Azure Data Explorer has the raw event tables, not
  windows, anomalies or the pipeline's own table), each panel one KQL query, unchanged.

Both are in Grafana's import format: `__inputs` names the data source (DS_ATHENA, DS_ADX) so
Grafana asks for it on import, `__requires` lists the plugins. The output is deterministic
(sorted keys, 2-space indent, trailing newline) and is exactly what dashboards/grafana/validate.py
checks against grafana-foundation-sdk's models; the field values below are those models'
canonical form (fields with a default are written out), so a round trip through the models
gives the same JSON.

Only the standard library is used, so `python3 dashboards/grafana/generate.py` runs anywhere.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

GRAFANA_VERSION = "11.6.0"  # the dashboard schema the models of grafana-foundation-sdk describe
SCHEMA_VERSION = 41
GRID_WIDTH = 24

ATHENA = {
    "plugin": "grafana-athena-datasource",
    "plugin_name": "Amazon Athena",
    "input": "DS_ATHENA",
    "label": "Athena",
    "uid": "sluice-athena",
    "title": "sluice (Athena)",
    "file": "sluice-athena.json",
}
ADX = {
    "plugin": "grafana-azure-data-explorer-datasource",
    "plugin_name": "Azure Data Explorer Datasource",
    "input": "DS_ADX",
    "label": "Azure Data Explorer",
    "uid": "sluice-adx",
    "title": "sluice (Azure Data Explorer)",
    "file": "sluice-adx.json",
}
# The ADX queries name their database; it is asked for on import, like the data source.
ADX_DATABASE_INPUT = "VAR_ADX_DATABASE"

# Athena data source formats (grafana-athena-datasource FormatOptions) and ADX result formats.
ATHENA_TIME_SERIES, ATHENA_TABLE = 0, 1
ADX_TIME_SERIES, ADX_TABLE = "time_series", "table"

# Columns of the lake that are timestamps; a column made by $__timeGroup is one too.
TIME_COLUMNS = {"window_start", "window_end", "event_time", "arrival_time", "time"}

# The anomalies, drawn on every time panel of the Athena dashboard. Grafana reads the columns
# `time`, `text` and `tags` of an annotation query.
ANOMALY_ANNOTATION_SQL = """SELECT window_end AS time,
       concat(scenario, ' ', key, ' ', metric, ': ', detector, ' ', direction,
              ', value ', CAST(value AS VARCHAR), ', score ', CAST(ROUND(score, 3) AS VARCHAR)) AS text,
       concat(scenario, ',', detector) AS tags
FROM anomalies
WHERE $__timeFilter(window_end) AND ('$key' = '' OR key = '$key')
ORDER BY window_end
"""

CHARTS = {"line", "bar", "pie", "funnel", "candlestick", "table", "stat"}


class TileError(ValueError):
    """A tile that cannot be drawn as asked (names the tile and what is wrong)."""


# ---------------------------------------------------------------------------------------------
# Reading the tiles
# ---------------------------------------------------------------------------------------------


def load_tiles(tiles_json: Path | None, sluice: Path | None) -> list[dict]:
    """The tile list, from a JSON file or from `<sluice> dashboard --list-tiles`."""
    if tiles_json is not None:
        text = tiles_json.read_text(encoding="utf-8")
        source = str(tiles_json)
    else:
        if not sluice.is_file():
            raise SystemExit(f"sluice binary not found at {sluice}: build it (cargo build -p sluice --features lake)")
        proc = subprocess.run(
            [str(sluice), "dashboard", "--list-tiles"], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            raise SystemExit(f"{sluice} dashboard --list-tiles exited {proc.returncode}:\n{proc.stderr}")
        text, source = proc.stdout, f"{sluice} dashboard --list-tiles"
    tiles = json.loads(text)
    if not isinstance(tiles, list) or not tiles:
        raise SystemExit(f"{source}: expected a non-empty JSON list of tiles")
    for tile in tiles:
        check_tile(tile)
    return tiles


def check_tile(tile: dict) -> None:
    """Raise TileError unless the tile has the fields this generator reads."""
    name = tile.get("id", "<no id>")
    for field in ("id", "title", "chart", "sql"):
        if not isinstance(tile.get(field), str) or not tile[field]:
            raise TileError(f"tile {name}: `{field}` must be a non-empty string")
    if tile["chart"] not in CHARTS:
        raise TileError(f"tile {name}: chart {tile['chart']!r} is not one of {sorted(CHARTS)}")
    if tile["chart"] not in ("table",) and not tile.get("y"):
        raise TileError(f"tile {name}: a {tile['chart']} tile needs `y` columns")


def is_time_column(tile: dict, column: str | None) -> bool:
    """Whether the tile's column is a timestamp: a lake timestamp column or made by $__timeGroup."""
    if column is None:
        return False
    grouped = re.search(r"\$__timeGroup\([^)]*\)\s+AS\s+" + re.escape(column) + r"\b", tile["sql"])
    return column in TIME_COLUMNS or grouped is not None


# ---------------------------------------------------------------------------------------------
# Panels
# ---------------------------------------------------------------------------------------------


def legend(placement: str = "bottom", display_mode: str = "list") -> dict:
    return {"calcs": [], "displayMode": display_mode, "placement": placement, "showLegend": True}


def tooltip(mode: str = "multi") -> dict:
    return {"mode": mode, "sort": "none"}


def reduce_options(values: bool) -> dict:
    """Each row one value (values=True: bars, slices) or the last value of the field (a stat)."""
    return {"calcs": ["lastNotNull"], "fields": "", "values": values}


def field_config(custom: dict, overrides: list | None = None) -> dict:
    return {"defaults": {"custom": custom}, "overrides": overrides or []}


def time_series_custom(draw_style: str, stacked: bool) -> dict:
    """The timeseries panel's field config for lines, or for bars over time (stacked)."""
    bars = draw_style == "bars"
    return {
        "drawStyle": draw_style,
        "fillOpacity": 80 if bars else 0,
        "lineWidth": 1,
        "showPoints": "never" if bars else "auto",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
    }


def visual(tile: dict) -> dict:
    """Panel type, options, field config and transformations for the tile's chart, and whether its
    query is read as a time series (long rows become one series per string column value) or as a
    table."""
    chart, x, y, series = tile["chart"], tile.get("x"), tile.get("y") or [], tile.get("series")
    name = tile["id"]
    if chart == "line" or (chart == "bar" and is_time_column(tile, x)):
        if not is_time_column(tile, x):
            raise TileError(f"tile {name}: a line tile needs a time x column, got {x!r}")
        bars = chart == "bar"
        return {
            "type": "timeseries",
            "time_series": True,
            "options": {"legend": legend(), "tooltip": tooltip()},
            "fieldConfig": field_config(time_series_custom("bars" if bars else "line", stacked=bars)),
        }
    if chart == "bar":
        if series and len(y) != 1:
            raise TileError(f"tile {name}: a bar tile with series needs exactly one y column, got {y}")
        options = {
            "barRadius": 0,
            "barWidth": 0.97,
            "fullHighlight": False,
            "groupWidth": 0.7,
            "legend": legend(),
            "orientation": "auto",
            "showValue": "auto",
            "stacking": "none",
            "tooltip": tooltip(),
            "xTickLabelMaxLength": 0,
            "xTickLabelRotation": 0,
            "xTickLabelSpacing": 0,
        }
        transformations = []
        if series:
            # One bar group per x value, one bar per series value. The matrix's first column is
            # named "<x>\<series>", so the chart takes its x from the first string field.
            transformations.append({
                "id": "groupingToMatrix",
                "options": {"columnField": series, "emptyValue": "zero", "rowField": x, "valueField": y[0]},
            })
        else:
            options["xField"] = x
        return {
            "type": "barchart",
            "time_series": False,
            "options": options,
            "fieldConfig": field_config({"fillOpacity": 80, "gradientMode": "none", "lineWidth": 1}),
            "transformations": transformations,
        }
    if chart == "pie":
        return {
            "type": "piechart",
            "time_series": False,
            "options": {
                "displayLabels": ["name", "percent"],
                "legend": {**legend("right", "table"), "values": ["value"]},
                "orientation": "auto",
                "pieType": "pie",
                "reduceOptions": reduce_options(values=True),
                "tooltip": tooltip("single"),
            },
            "fieldConfig": field_config({}),
        }
    if chart == "funnel":
        return {
            "type": "bargauge",
            "time_series": False,
            "options": {
                "displayMode": "basic",
                "legend": {**legend(), "showLegend": False},
                "maxVizHeight": 300,
                "minVizHeight": 16,
                "minVizWidth": 8,
                "namePlacement": "left",
                "orientation": "horizontal",
                "reduceOptions": reduce_options(values=True),
                "showUnfilled": True,
                "sizing": "auto",
                "valueMode": "color",
            },
            "fieldConfig": field_config({}),
            # A funnel's widest step first, whatever order the rows arrive in.
            "transformations": [{"id": "sortBy", "options": {"sort": [{"desc": True, "field": y[0]}]}}],
        }
    if chart == "candlestick":
        if len(y) != 4:
            raise TileError(f"tile {name}: a candlestick tile needs y = [open, close, low, high], got {y}")
        open_, close, low, high = y
        line_overrides = [
            {
                "matcher": {"id": "byName", "options": line},
                "properties": [{"id": "custom.drawStyle", "value": "line"}, {"id": "custom.lineWidth", "value": 2}],
            }
            for line in tile.get("lines") or []
        ]
        return {
            "type": "candlestick",
            "time_series": True,
            "options": {
                "candleStyle": "candles",
                "colorStrategy": "open-close",
                "colors": {"down": "red", "flat": "gray", "up": "green"},
                "fields": {"close": close, "high": high, "low": low, "open": open_},
                # The extra line columns (VWAP) are drawn as lines beside the candles.
                "includeAllFields": bool(line_overrides),
                "legend": legend(),
                "mode": "candles",
                "tooltip": tooltip(),
            },
            "fieldConfig": field_config({}, line_overrides),
        }
    if chart == "table":
        return {
            "type": "table",
            "time_series": False,
            "options": {
                "cellHeight": "sm",
                "footer": {"countRows": False, "reducer": [], "show": False},
                "frameIndex": 0,
                "showHeader": True,
                "showTypeIcons": False,
            },
            "fieldConfig": field_config({"align": "auto", "inspect": False}),
        }
    # stat
    return {
        "type": "stat",
        "time_series": False,
        "options": {
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": reduce_options(values=False),
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
        "fieldConfig": field_config({}),
    }


def panel_size(panel_type: str) -> tuple[int, int]:
    """(width, height) on Grafana's 24-column grid."""
    if panel_type in ("table", "candlestick"):
        return GRID_WIDTH, 10
    if panel_type == "stat":
        return 6, 8
    return 12, 8


def layout(panels: list[dict]) -> None:
    """Place the panels left to right, starting a new row where the next one does not fit."""
    x = y = row_height = 0
    for panel in panels:
        w, h = panel_size(panel["type"])
        if x + w > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        x += w
        row_height = max(row_height, h)


def datasource_ref(source: dict) -> dict:
    return {"type": source["plugin"], "uid": "${" + source["input"] + "}"}


def athena_query(sql: str, ref_id: str, time_series: bool) -> dict:
    """An Athena raw SQL query; region, catalog and database are the data source's defaults."""
    return {
        "connectionArgs": {
            "catalog": "__default",
            "database": "__default",
            "region": "__default",
            "resultReuseEnabled": False,
            "resultReuseMaxAgeInMinutes": 60,
        },
        "datasource": datasource_ref(ATHENA),
        "format": ATHENA_TIME_SERIES if time_series else ATHENA_TABLE,
        "rawSQL": sql,
        "refId": ref_id,
    }


def adx_query(kql: str, time_series: bool) -> dict:
    """An Azure Data Explorer raw KQL query (the plugin's KustoQuery, query type KQL)."""
    return {
        "database": "${" + ADX_DATABASE_INPUT + "}",
        "datasource": datasource_ref(ADX),
        "query": kql,
        "queryType": "KQL",
        "querySource": "raw",
        "rawMode": True,
        "refId": "A",
        "resultFormat": ADX_TIME_SERIES if time_series else ADX_TABLE,
    }


def panel(tile: dict, panel_id: int, source: dict) -> dict:
    """One panel for the tile, querying the source (ATHENA: its sql, ADX: its kql)."""
    look = visual(tile)
    if source is ATHENA:
        target = athena_query(tile["sql"], "A", look["time_series"])
    else:
        target = adx_query(tile["kql"], look["time_series"])
    out = {
        "datasource": datasource_ref(source),
        "description": f"sluice tile `{tile['id']}`" + (f" (stream {tile['stream']})" if tile.get("stream") else ""),
        "fieldConfig": look["fieldConfig"],
        "id": panel_id,
        "options": look["options"],
        "repeatDirection": "h",
        "targets": [target],
        "title": tile["title"],
        "transparent": False,
        "type": look["type"],
    }
    if look.get("transformations"):
        out["transformations"] = look["transformations"]
    return out


# ---------------------------------------------------------------------------------------------
# Dashboards
# ---------------------------------------------------------------------------------------------

PANEL_NAMES = {
    "bargauge": "Bar gauge",
    "barchart": "Bar chart",
    "candlestick": "Candlestick",
    "piechart": "Pie chart",
    "stat": "Stat",
    "table": "Table",
    "timeseries": "Time series",
}


def key_variable() -> dict:
    """The `key` text box: a symbol, host or user id to filter on; empty shows every key."""
    empty = {"selected": True, "text": "", "value": ""}
    return {
        "allowCustomValue": True,
        "auto": False,
        "auto_count": 30,
        "auto_min": "10s",
        "current": empty,
        "description": "Filter on one key (symbol, host or user id); empty shows every key.",
        "hide": 0,
        "includeAll": False,
        "label": "key",
        "multi": False,
        "name": "key",
        "options": [empty],
        "query": "",
        "skipUrlSync": False,
        "type": "textbox",
    }


def anomaly_annotation() -> dict:
    """The anomalies table as annotations on the Athena dashboard's time panels."""
    return {
        "builtIn": 0,
        "datasource": datasource_ref(ATHENA),
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "name": "Anomalies",
        "target": athena_query(ANOMALY_ANNOTATION_SQL, "Anomalies", time_series=False),
    }


def dashboard(tiles: list[dict], source: dict) -> dict:
    """The import-ready dashboard for ATHENA (every tile) or ADX (the tiles with KQL)."""
    chosen = tiles if source is ATHENA else [t for t in tiles if t.get("kql")]
    if not chosen:
        raise TileError(f"no tile for the {source['label']} dashboard")
    panels = [panel(tile, i, source) for i, tile in enumerate(chosen, start=1)]
    layout(panels)
    inputs = [{
        "description": "",
        "label": source["label"],
        "name": source["input"],
        "pluginId": source["plugin"],
        "pluginName": source["plugin_name"],
        "type": "datasource",
    }]
    if source is ADX:
        inputs.append({
            "description": "The database with sluice's event tables (the Azure module's `name`).",
            "label": "ADX database",
            "name": ADX_DATABASE_INPUT,
            "type": "constant",
            "value": "sluice",
        })
    requires = [
        {"id": "grafana", "name": "Grafana", "type": "grafana", "version": GRAFANA_VERSION},
        {"id": source["plugin"], "name": source["plugin_name"], "type": "datasource", "version": ""},
    ] + [
        {"id": kind, "name": PANEL_NAMES[kind], "type": "panel", "version": ""}
        for kind in sorted({p["type"] for p in panels})
    ]
    return {
        "__elements": {},
        "__inputs": inputs,
        "__requires": requires,
        "annotations": {"list": [anomaly_annotation()] if source is ATHENA else []},
        "description": "sluice's dashboard tiles (generated by dashboards/grafana/generate.py from "
        "`sluice dashboard --list-tiles`; do not edit by hand).",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "links": [],
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["sluice"],
        "templating": {"list": [key_variable()]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {"hidden": False, "refresh_intervals": ["10s", "30s", "1m", "5m", "15m", "1h"]},
        "timezone": "browser",
        "title": source["title"],
        "uid": source["uid"],
        "version": 1,
    }


def render(doc: dict) -> str:
    """The file text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def dashboards(tiles: list[dict]) -> dict[str, str]:
    """File name -> file text of both dashboards."""
    return {source["file"]: render(dashboard(tiles, source)) for source in (ATHENA, ADX)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--tiles-json", type=Path, help="output of `sluice dashboard --list-tiles`")
    given.add_argument("--sluice", type=Path, help="the sluice binary, to run `dashboard --list-tiles`")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="directory to write the dashboards to (default: this script's directory)")
    args = parser.parse_args(argv)
    try:
        files = dashboards(load_tiles(args.tiles_json, args.sluice))
    except TileError as err:
        print(f"generate.py: {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
