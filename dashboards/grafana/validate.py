#!/usr/bin/env python3
"""Validate Grafana dashboard JSON with the models of grafana-foundation-sdk.

grafana-foundation-sdk (PyPI, Grafana Labs) is generated from Grafana's own schemas: the
dashboard kind, each core panel's options and field config, and the query models of the data
source plugins it covers (Athena among them). Its `from_json` does not check types and silently
drops fields it does not know, so this module makes three strict checks out of it:

1. Round trip: the JSON parsed into the models and serialised again must equal the input. A field
   the schema does not have (a misspelt option, a field of another panel kind) is dropped and a
   required field that is missing is added, so either shows up as a difference.
2. Types: every value held by a model is checked against the model's type annotation (str, int,
   float, bool, enums, literals, lists, unions, nested models), so `"h": "8"` or
   `"drawStyle": "bar"` fails.
3. Kinds: each panel's type must be a panel kind the SDK registers (timeseries, barchart, ...),
   and each query must parse into the query model of its data source.

Parts of Grafana's import format that the dashboard model does not describe are checked here:
`__inputs` / `__requires` / `__elements`, and annotation query targets (the schema's
AnnotationTarget only has the built-in Grafana annotation's fields; a data source annotation keeps
its query there, checked with that data source's query model). The SDK has no model for the Azure
Data Explorer plugin's query, so those are checked against the plugin's KustoQuery fields below.

Usage: python3 dashboards/grafana/validate.py FILE.json... (needs grafana-foundation-sdk, pinned
in tests/requirements.txt).
"""

from __future__ import annotations

import copy
import enum
import json
import sys
import types
import typing
from importlib.metadata import version
from pathlib import Path

from grafana_foundation_sdk.cog import encoder, plugins
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as dashboard_model

SDK_VERSION = "1769699379!11.6.0"  # the SDK build for Grafana 11.6's schemas

plugins.register_default_plugins()

# Fields of the Azure Data Explorer plugin's KustoQuery (grafana/azure-data-explorer-datasource
# src/types) that a raw KQL query uses: name -> type, or the set of allowed values.
ADX_PLUGIN = "grafana-azure-data-explorer-datasource"
ADX_QUERY_FIELDS: dict[str, type | set] = {
    "refId": str,
    "datasource": dict,
    "database": str,
    "pluginVersion": str,
    "query": str,
    "queryType": {"KQL"},
    "querySource": {"raw"},
    "rawMode": bool,
    "resultFormat": {"table", "time_series", "time_series_adx_series"},
}
ADX_REQUIRED = {"refId", "query", "database", "queryType", "resultFormat"}

IMPORT_INPUT_FIELDS = {
    "datasource": {"name", "label", "description", "type", "pluginId", "pluginName"},
    "constant": {"name", "label", "description", "type", "value"},
}
REQUIRE_FIELDS = {"type", "id", "name", "version"}


# ---------------------------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------------------------


def to_plain(model: object) -> object:
    """A model (or list of models) as plain JSON data, the way the SDK serialises it."""
    return json.loads(json.dumps(model, cls=encoder.JSONEncoder))


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def differences(before: object, after: object, path: str) -> list[str]:
    """Where `after` (the round trip) differs from `before` (the input), by JSON path."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            where = join(path, key)
            if key not in after:
                out.append(f"{where}: not in the schema (dropped by the model)")
            elif key not in before:
                out.append(f"{where}: missing (the model requires it or defaults it to {after[key]!r})")
            else:
                out.extend(differences(before[key], after[key], where))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, f"{path}[{i}]")]
    if before != after or type(before) is not type(after):
        return [f"{path}: {before!r} changes to {after!r} through the model"]
    return []


# ---------------------------------------------------------------------------------------------
# Types
# ---------------------------------------------------------------------------------------------


def is_model(value: object) -> bool:
    return callable(getattr(value, "to_json", None)) and not isinstance(value, cogruntime.UnknownDataquery)


def hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def type_problems(value: object, hint: object, path: str) -> list[str]:
    """Why `value` does not fit the annotation `hint` ([] when it does); recurses into models."""
    if is_model(value):
        if isinstance(hint, type) and hint is not object and not isinstance(value, hint):
            return [f"{path}: a {type(value).__name__} where the schema has {hint.__name__}"]
        return model_problems(value, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, object):
        return []
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        arms = [arm for arm in args if arm is not type(None)]
        found = [type_problems(value, arm, path) for arm in arms]
        if any(not p for p in found):
            return []
        if len(arms) == 1:  # Optional[X]: why it is not an X
            return found[0]
        return [f"{path}: {value!r} is none of {[getattr(a, '__name__', str(a)) for a in arms]}"]
    if hint is type(None):
        return [] if value is None else [f"{path}: {value!r} where the schema has null"]
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {value!r} is not a list"]
        return [p for i, item in enumerate(value) for p in type_problems(item, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not an object"]
        return [p for k, v in value.items() for p in type_problems(v, args[1], join(path, k))]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        allowed = [m.value for m in hint]
        return [] if value in allowed and type(value) is not bool else [
            f"{path}: {value!r} is not one of {hint.__name__}'s values {allowed}"]
    if hint is bool:
        return [] if isinstance(value, bool) else [f"{path}: {value!r} is not a boolean"]
    if hint is int:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: {value!r} is not an integer"]
    if hint is float:
        return [] if isinstance(value, (int, float)) and not isinstance(value, bool) else [f"{path}: {value!r} is not a number"]
    if hint is str:
        return [] if isinstance(value, str) else [f"{path}: {value!r} is not a string"]
    if hint is Dataquery:
        return [] if isinstance(value, Dataquery) else [f"{path}: {value!r} is not a data query"]
    if isinstance(hint, type) and callable(getattr(hint, "from_json", None)):
        # Some fields (panel transformations, links) are kept as raw JSON by from_json; check them
        # with the model their annotation names.
        if not isinstance(value, dict):
            return [f"{path}: {value!r} is not a {hint.__name__} object"]
        model = hint.from_json(value)
        return differences(value, to_plain(model), path) + model_problems(model, path)
    return [f"{path}: no check for the annotation {hint!r}"]


def model_problems(model: object, path: str) -> list[str]:
    """Type problems of every annotated attribute of a model object."""
    out = []
    for attr, hint in hints(type(model)).items():
        out.extend(type_problems(getattr(model, attr), hint, join(path, attr)))
    return out


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def adx_query_problems(query: dict, path: str) -> list[str]:
    """A raw KQL query of the Azure Data Explorer plugin, against ADX_QUERY_FIELDS."""
    out = [f"{path}.{k}: not a field of the ADX plugin's query" for k in sorted(set(query) - set(ADX_QUERY_FIELDS))]
    out += [f"{path}.{k}: missing" for k in sorted(ADX_REQUIRED - set(query))]
    for key, expected in ADX_QUERY_FIELDS.items():
        if key not in query:
            continue
        value = query[key]
        if isinstance(expected, set) and value not in expected:
            out.append(f"{path}.{key}: {value!r} is not one of {sorted(expected)}")
        elif isinstance(expected, type) and not isinstance(value, expected):
            out.append(f"{path}.{key}: {value!r} is not a {expected.__name__}")
    return out


def query_problems(query: object, datasource_type: str, path: str, *, deep: bool) -> list[str]:
    """A query of the given data source type. deep=False only checks that the SDK has a model for
    it (a panel's targets are parsed with that model by the dashboard's own round trip);
    deep=True also round-trips and type-checks it (an annotation's target, which the dashboard
    model does not parse as a query)."""
    if not isinstance(query, dict):
        return [f"{path}: {query!r} is not an object"]
    if datasource_type == ADX_PLUGIN:
        return adx_query_problems(query, path)
    model = cogruntime.dataquery_from_json(query, datasource_type)
    if isinstance(model, cogruntime.UnknownDataquery):
        return [f"{path}: grafana-foundation-sdk has no query model for data source type {datasource_type!r}"]
    return differences(query, to_plain(model), path) + model_problems(model, path) if deep else []


# ---------------------------------------------------------------------------------------------
# The dashboard
# ---------------------------------------------------------------------------------------------


def import_problems(doc: dict) -> list[str]:
    """The import-format fields: __inputs, __requires, __elements."""
    out = []
    inputs = doc.get("__inputs")
    if not isinstance(inputs, list) or not inputs:
        out.append("__inputs: missing or empty (an import would not ask for the data source)")
        inputs = []
    for i, item in enumerate(inputs):
        fields = IMPORT_INPUT_FIELDS.get(item.get("type") if isinstance(item, dict) else None)
        if fields is None:
            out.append(f"__inputs[{i}]: type must be one of {sorted(IMPORT_INPUT_FIELDS)}")
        elif set(item) != fields or not all(isinstance(v, str) for v in item.values()):
            out.append(f"__inputs[{i}]: fields must be exactly {sorted(fields)}, all strings; got {sorted(item)}")
    requires = doc.get("__requires")
    if not isinstance(requires, list) or not requires:
        out.append("__requires: missing or empty")
        requires = []
    for i, item in enumerate(requires):
        if not isinstance(item, dict) or set(item) != REQUIRE_FIELDS or not all(isinstance(v, str) for v in item.values()):
            out.append(f"__requires[{i}]: fields must be exactly {sorted(REQUIRE_FIELDS)}, all strings")
    if doc.get("__elements", {}) != {}:
        out.append("__elements: library panels are not expected")
    return out


def validate(doc: dict) -> list[str]:
    """Every problem found in an import-ready dashboard JSON document ([] when it is valid)."""
    if not isinstance(doc, dict):
        return ["the dashboard is not a JSON object"]
    out = import_problems(doc)
    body = copy.deepcopy({k: v for k, v in doc.items() if not k.startswith("__")})
    for i, annotation in enumerate(body.get("annotations", {}).get("list", [])):
        if isinstance(annotation, dict) and "target" in annotation:
            ds_type = (annotation.get("datasource") or {}).get("type", "")
            out += query_problems(annotation.pop("target"), ds_type, f"annotations.list[{i}].target", deep=True)
    for i, panel in enumerate(body.get("panels", [])):
        if not isinstance(panel, dict):
            out.append(f"panels[{i}]: not an object")
            continue
        kind = panel.get("type", "")
        if kind != "row" and cogruntime.panelcfg_config(kind) is None:
            out.append(f"panels[{i}].type: {kind!r} is not a panel kind of grafana-foundation-sdk")
        ds_type = (panel.get("datasource") or {}).get("type", "")
        for j, target in enumerate(panel.get("targets", [])):
            where = f"panels[{i}].targets[{j}]"
            out += query_problems(target, (target.get("datasource") or {}).get("type", ds_type), where, deep=False)
    try:
        model = dashboard_model.Dashboard.from_json(body)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        return out + [f"the dashboard does not parse into the SDK's Dashboard model: {err!r}"]
    return out + differences(body, to_plain(model), "") + model_problems(model, "")


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: validate.py DASHBOARD.json...", file=sys.stderr)
        return 2
    if version("grafana-foundation-sdk") != SDK_VERSION:
        print(f"validate.py: expects grafana-foundation-sdk=={SDK_VERSION}, found {version('grafana-foundation-sdk')}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in argv:
        problems = validate(json.loads(Path(name).read_text(encoding="utf-8")))
        for problem in problems:
            print(f"{name}: {problem}", file=sys.stderr)
        failed += bool(problems)
        print(f"{name}: {'INVALID' if problems else 'valid'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
