"""The committed dashboards conform to Grafana's own schema (grafana-foundation-sdk), and broken ones do not."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.constants import ROOT

DASHBOARDS = ROOT / "dashboards"
DASHBOARD_FILES = ("nbmon-overview.json", "nbmon-quota.json")

JSON = dict[str, Any]


def _load_validator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nbmon_dashboards_validate", DASHBOARDS / "validate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:  # pragma: no cover - a virtualenv without the dev extras
        pytest.fail(f"{exc}: the dashboard schema check needs the dev extras (pip install -e '.[dev]')")
    return module


validator = _load_validator()


def _load(name: str) -> JSON:
    data = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _panel(dash: JSON, kind: str, title: str | None = None) -> JSON:
    """The first panel of a type (and title prefix): mutations survive reordering in the generator."""
    for p in dash["panels"]:
        if p["type"] == kind and (title is None or p["title"].startswith(title)):
            panel: JSON = p
            return panel
    raise AssertionError(f"no {kind} panel {title or ''} in {dash['uid']}")


def _mapping_panel(dash: JSON) -> JSON:
    return next(p for p in dash["panels"] if p["fieldConfig"]["defaults"].get("mappings"))


def _set_prop(dash: JSON, kind: str, prop_id: str, **changes: Any) -> None:
    for p in dash["panels"]:
        if p["type"] != kind:
            continue
        for o in p["fieldConfig"]["overrides"]:
            for prop in o["properties"]:
                if prop["id"] == prop_id:
                    prop.update(changes)
                    return
    raise AssertionError(f"no {prop_id} override on a {kind} panel")


# --------------------------------------------------------------------------- the committed files


def test_sdk_is_the_pinned_release() -> None:
    installed = importlib.metadata.version("grafana-foundation-sdk").removeprefix("v")
    assert installed == validator.SDK_VERSION, "the schema checked is not the pinned one"


def test_pyproject_pins_the_sdk() -> None:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    pins = [r for r in dev["dev"] if re.match(r"grafana-foundation-sdk\b", r)]
    assert pins == [f"grafana-foundation-sdk=={validator.SDK_VERSION}"], (
        "pin grafana-foundation-sdk exactly in pyproject's dev extras (an unpinned install picks an epoch build)"
    )


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_committed_dashboard_matches_grafana_schema(name: str) -> None:
    errors = validator.validate(_load(name))
    assert not errors, "\n".join([f"{name} breaks Grafana's dashboard schema:", *errors])


def test_generator_output_matches_grafana_schema() -> None:
    """The generator itself, not only the committed copy (which the freshness test ties to it)."""
    spec = importlib.util.spec_from_file_location("nbmon_dashboards_generate_schema", DASHBOARDS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for dash in (gen.overview(), gen.quota()):
        assert validator.validate(json.loads(json.dumps(dash))) == [], dash["uid"]


def test_cli_checks_the_committed_dashboards(capsys: pytest.CaptureFixture[str]) -> None:
    assert validator.main([]) == 0
    assert capsys.readouterr().out == ""


def test_cli_reports_a_broken_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dash = _load("nbmon-quota.json")
    dash["panels"][0]["gridPos"]["w"] = 30
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dash), encoding="utf-8")
    assert validator.main([str(broken), str(DASHBOARDS / "nbmon-overview.json")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{broken}: $.panels[0].gridPos.w: w must be <= 24"]


# --------------------------------------------------------------------------- broken dashboards are rejected

Mutation = Callable[[JSON], None]

BROKEN: dict[str, tuple[Mutation, str]] = {
    # The dashboard object: closed, typed, with required keys.
    "unknown top-level key (an export's __inputs)": (
        lambda d: d.update(__inputs=[]),
        r"^\$\.__inputs: unknown key: Grafana's dashboard\.Dashboard schema has only .*schemaVersion",
    ),
    "missing schemaVersion": (
        lambda d: d.pop("schemaVersion"),
        r"^\$\.schemaVersion: required by Grafana's dashboard\.Dashboard schema$",
    ),
    "missing annotations": (
        lambda d: d.pop("annotations"),
        r"^\$\.annotations: required",
    ),
    "schemaVersion as a string": (
        lambda d: d.update(schemaVersion="39"),
        r'^\$\.schemaVersion: expected integer, got string "39"$',
    ),
    "tags as a string": (lambda d: d.update(tags="nbmon"), r"^\$\.tags: expected array, got string$"),
    "graphTooltip out of its enum": (
        lambda d: d.update(graphTooltip=3),
        r"^\$\.graphTooltip: 3 is not a valid DashboardCursorSync \(one of 0, 1, 2\)$",
    ),
    "editable as a string": (
        lambda d: d.update(editable="true"),
        r'^\$\.editable: expected boolean, got string "true"$',
    ),
    "time range without `to`": (lambda d: d["time"].pop("to"), r"^\$\.time\.to: required"),
    "link of an unknown type": (
        lambda d: d["links"][0].update(type="folder"),
        r'^\$\.links\[0\]\.type: "folder" is not a valid DashboardLinkType',
    ),
    # Panels.
    "panel: misspelt key": (
        lambda d: d["panels"][0].update(titel="x"),
        r"^\$\.panels\[0\]\.titel: unknown key: Grafana's dashboard\.Panel schema has only .*title",
    ),
    "panel: title as a number": (
        lambda d: d["panels"][0].update(title=5),
        r"^\$\.panels\[0\]\.title: expected string, got integer 5$",
    ),
    "panel: no type": (lambda d: d["panels"][0].pop("type"), r"^\$\.panels\[0\]\.type: required"),
    "panel: unknown plugin type": (
        lambda d: d["panels"][0].update(type="timeseris"),
        r'^\$\.panels\[0\]\.type: "timeseris" is not a panel plugin the schema knows$',
    ),
    "panel: id as a string": (
        lambda d: d["panels"][0].update(id="1"),
        r'^\$\.panels\[0\]\.id: expected integer, got string "1"$',
    ),
    "row: collapsed as a string": (
        lambda d: d["panels"].append(
            {
                "type": "row",
                "title": "r",
                "collapsed": "no",
                "id": 99,
                "panels": [],
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": 99},
            }
        ),
        r'\.collapsed: expected boolean, got string "no"$',
    ),
    # gridPos: types, required keys, closed, and the schema's bounds.
    "gridPos: width over 24": (
        lambda d: d["panels"][0]["gridPos"].update(w=25),
        r"^\$\.panels\[0\]\.gridPos\.w: w must be <= 24$",
    ),
    "gridPos: zero height": (
        lambda d: d["panels"][0]["gridPos"].update(h=0),
        r"^\$\.panels\[0\]\.gridPos\.h: h must be > 0$",
    ),
    "gridPos: x as a string": (
        lambda d: d["panels"][0]["gridPos"].update(x="0"),
        r'^\$\.panels\[0\]\.gridPos\.x: expected integer, got string "0"$',
    ),
    "gridPos: fractional height": (
        lambda d: d["panels"][0]["gridPos"].update(h=4.5),
        r"^\$\.panels\[0\]\.gridPos\.h: expected integer, got number 4\.5$",
    ),
    "gridPos: no y": (
        lambda d: d["panels"][0]["gridPos"].pop("y"),
        r"^\$\.panels\[0\]\.gridPos\.y: required by Grafana's dashboard\.GridPos schema$",
    ),
    "gridPos: unknown key": (
        lambda d: d["panels"][0]["gridPos"].update(width=6),
        r"^\$\.panels\[0\]\.gridPos\.width: unknown key",
    ),
    # fieldConfig.
    "unit as a number": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unit=1),
        r"^\$\.panels\[0\]\.fieldConfig\.defaults\.unit: expected string, got integer 1$",
    ),
    "unit that Grafana does not know": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unit="percentunits"),
        r'\.unit: "percentunits" is neither a Grafana unit id nor a custom unit',
    ),
    "unit null": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unit=None),
        r"\.unit: null is not allowed here",
    ),
    "decimals as a string": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(decimals="2"),
        r'\.decimals: expected number, got string "2"$',
    ),
    "min as a boolean": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(min=True),
        r"\.min: expected number, got boolean true$",
    ),
    "fieldConfig without overrides": (
        lambda d: d["panels"][0]["fieldConfig"].pop("overrides"),
        r"^\$\.panels\[0\]\.fieldConfig\.overrides: required",
    ),
    "thresholds: unknown mode": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"].update(mode="abs"),
        r'\.thresholds\.mode: "abs" is not a valid ThresholdsMode \(one of "absolute", "percentage"\)$',
    ),
    "thresholds: step value as a string": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][-1].update(value="1"),
        r'\.thresholds\.steps\[\d+\]\.value: expected number, got string "1"$',
    ),
    "thresholds: step without color": (
        lambda d: d["panels"][0]["fieldConfig"]["defaults"]["thresholds"]["steps"][0].pop("color"),
        r"\.thresholds\.steps\[0\]\.color: required",
    ),
    "value mapping: unknown type": (
        lambda d: _mapping_panel(d)["fieldConfig"]["defaults"]["mappings"][0].update(type="values"),
        r'\.mappings\[0\]\.type: "values" names none of "value", "range", "regex", "special"$',
    ),
    "value mapping: misspelt result key": (
        lambda d: _mapping_panel(d)["fieldConfig"]["defaults"]["mappings"][0]["options"]["1"].update(colour="red"),
        r"\.mappings\[0\]\.options\.1\.colour: unknown key: Grafana's dashboard\.ValueMappingResult schema",
    ),
    "timeseries custom: unknown drawStyle": (
        lambda d: _panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"].update(drawStyle="area"),
        r'\.custom\.drawStyle: "area" is not a valid GraphDrawStyle \(one of "line", "bars", "points"\)$',
    ),
    "timeseries custom: misspelt key": (
        lambda d: _panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"].update(lineWidht=1),
        r"\.custom\.lineWidht: unknown key: Grafana's common\.GraphFieldConfig schema",
    ),
    "timeseries custom: stacking mode": (
        lambda d: _panel(d, "timeseries")["fieldConfig"]["defaults"]["custom"]["stacking"].update(mode="stacked"),
        r'\.custom\.stacking\.mode: "stacked" is not a valid StackingMode',
    ),
    "override: property id Grafana does not know": (
        lambda d: _set_prop(d, "timeseries", "custom.lineStyle", id="custom.lineStyles"),
        r'\.properties\[\d+\]\.id: "custom\.lineStyles" is not a field config key of a timeseries panel$',
    ),
    "override: property value of the wrong type": (
        lambda d: _set_prop(d, "timeseries", "custom.lineWidth", value="2"),
        r'\.properties\[\d+\]\.value: expected number, got string "2"$',
    ),
    "override: unit value Grafana does not know": (
        lambda d: _set_prop(d, "timeseries", "unit", value="bool_onoff"),
        r'\.properties\[\d+\]\.value: "bool_onoff" is neither a Grafana unit id',
    ),
    "override: table cell type": (
        lambda d: _set_prop(d, "table", "custom.cellOptions", value={"type": "colour-background"}),
        r'\.properties\[\d+\]\.value\.type: "colour-background" names none of "auto", .*"color-background"',
    ),
    "override: no matcher": (
        lambda d: _panel(d, "timeseries", "503 ratio vs")["fieldConfig"]["overrides"][0].pop("matcher"),
        r"\.overrides\[0\]\.matcher: required",
    ),
    # Plugin options.
    "stat options: colorMode out of its enum": (
        lambda d: _panel(d, "stat")["options"].update(colorMode="rainbow"),
        r'\.options\.colorMode: "rainbow" is not a valid BigValueColorMode',
    ),
    "stat options: unknown key": (
        lambda d: _panel(d, "stat")["options"].update(sparkline=True),
        r"\.options\.sparkline: unknown key: Grafana's stat\.Options schema",
    ),
    "stat options: reduceOptions.calcs as a string": (
        lambda d: _panel(d, "stat")["options"]["reduceOptions"].update(calcs="lastNotNull"),
        r"\.options\.reduceOptions\.calcs: expected array, got string$",
    ),
    "timeseries options: legend placement": (
        lambda d: _panel(d, "timeseries")["options"]["legend"].update(placement="middle"),
        r'\.options\.legend\.placement: "middle" is not a valid LegendPlacement',
    ),
    "table options: required showHeader missing": (
        lambda d: _panel(d, "table")["options"].pop("showHeader"),
        r"\.options\.showHeader: required by Grafana's table\.Options schema$",
    ),
    "table options: footer fields as a string": (
        lambda d: _panel(d, "table")["options"]["footer"].update(fields=""),
        r"\.options\.footer\.fields: expected array, got string$",
    ),
    "barchart options: orientation": (
        lambda d: _panel(d, "barchart")["options"].update(orientation="sideways"),
        r'\.options\.orientation: "sideways" is not a valid VizOrientation',
    ),
    # Prometheus targets.
    "target: expr as a number": (
        lambda d: d["panels"][0]["targets"][0].update(expr=1),
        r"^\$\.panels\[0\]\.targets\[0\]\.expr: expected string, got integer 1$",
    ),
    "target: no expr": (
        lambda d: d["panels"][0]["targets"][0].pop("expr"),
        r"\.targets\[0\]\.expr: required by Grafana's prometheus\.Dataquery schema$",
    ),
    "target: misspelt key": (
        lambda d: d["panels"][0]["targets"][0].update(legend="x"),
        r"\.targets\[0\]\.legend: unknown key: Grafana's prometheus\.Dataquery schema",
    ),
    "target: format out of its enum": (
        lambda d: _panel(d, "table")["targets"][0].update(format="tables"),
        r'\.targets\[0\]\.format: "tables" is not a valid PromQueryFormat',
    ),
    "target: data source type without a schema": (
        lambda d: d["panels"][0].update(datasource={"type": "prometheus-x", "uid": "${datasource}"}),
        r'\.targets\[0\]: query of data source type "prometheus-x": no schema for it',
    ),
    # Variables and annotations.
    "variable: type out of its enum": (
        lambda d: d["templating"]["list"][0].update(type="datasources"),
        r'^\$\.templating\.list\[0\]\.type: "datasources" is not a valid VariableType',
    ),
    "variable: hide out of its enum": (
        lambda d: d["templating"]["list"][0].update(hide=5),
        r"\.list\[0\]\.hide: 5 is not a valid VariableHide",
    ),
    "variable: no name": (lambda d: d["templating"]["list"][0].pop("name"), r"\.list\[0\]\.name: required"),
    "variable: current without value": (
        lambda d: d["templating"]["list"][0].update(current={"text": "Prometheus"}),
        r"\.list\[0\]\.current\.value: required by Grafana's dashboard\.VariableOption schema$",
    ),
    "annotation: enable as a string": (
        lambda d: d["annotations"]["list"][1].update(enable="true"),
        r'^\$\.annotations\.list\[1\]\.enable: expected boolean, got string "true"$',
    ),
    "annotation: no iconColor": (
        lambda d: d["annotations"]["list"][1].pop("iconColor"),
        r"\.list\[1\]\.iconColor: required",
    ),
    "transformation: id as a number": (
        lambda d: _panel(d, "barchart")["transformations"][0].update(id=1),
        r"\.transformations\[0\]\.id: expected string, got integer 1$",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_dashboard_is_rejected(case: str) -> None:
    mutate, expected = BROKEN[case]
    dash = _load("nbmon-overview.json")
    assert validator.validate(dash) == []
    mutate(dash)
    errors = validator.validate(dash)
    assert errors, f"{case}: accepted"
    assert any(re.search(expected, e) for e in errors), f"{case}: {expected!r} not in {errors}"
    # One mistake, one message: no cascade that would bury the real one.
    assert len(errors) == 1, errors


def test_every_error_is_reported_not_only_the_first() -> None:
    dash = _load("nbmon-quota.json")
    dash["panels"][0]["gridPos"]["w"] = 0
    dash["panels"][1]["options"]["showHeader"] = "yes"
    dash["templating"]["list"][1]["refresh"] = 7
    errors = validator.validate(dash)
    assert [e.split(":")[0] for e in errors] == [
        "$.panels[0].gridPos.w",
        "$.panels[1].options.showHeader",
        "$.templating.list[1].refresh",
    ]


def test_not_an_object() -> None:
    assert validator.validate([]) == ["$: expected object (dashboard.Dashboard), got array"]


# --------------------------------------------------------------------------- valid variations are accepted


PANEL_LINK = {
    "title": "runbook",
    "type": "link",
    "url": "https://example.com",
    "tags": [],
    "asDropdown": False,
    "targetBlank": True,
    "includeVars": False,
    "keepTime": False,
    "icon": "doc",
    "tooltip": "",
}
VALID: dict[str, Mutation] = {
    "a row panel": lambda d: d["panels"].append(
        {
            "type": "row",
            "title": "More",
            "collapsed": False,
            "id": 99,
            "panels": [],
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": 99},
        }
    ),
    "a range value mapping": lambda d: _mapping_panel(d)["fieldConfig"]["defaults"]["mappings"].append(
        {"type": "range", "options": {"from": 2, "to": 9, "result": {"text": "odd", "color": "purple"}}}
    ),
    "a custom unit": lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(unit="suffix: images"),
    "an integer where a number is expected": lambda d: d["panels"][0]["fieldConfig"]["defaults"].update(decimals=2),
    "a table column hidden by an override": lambda d: _panel(d, "table")["fieldConfig"]["overrides"].append(
        {"matcher": {"id": "byName", "options": "service"}, "properties": [{"id": "custom.hidden", "value": True}]}
    ),
    "a panel link": lambda d: d["panels"][0].update(links=[PANEL_LINK]),
    "a plain-string variable query": lambda d: d["templating"]["list"].append(
        {"type": "custom", "name": "size", "query": "1K,2K,4K"}
    ),
}


@pytest.mark.parametrize("case", sorted(VALID))
def test_valid_variation_is_accepted(case: str) -> None:
    dash = _load("nbmon-overview.json")
    VALID[case](dash)
    assert validator.validate(dash) == []


def test_schema_classes_come_from_the_sdk() -> None:
    """The validator learns keys from the SDK's own to_json, e.g. `id_val` is written as `id`."""
    fields = validator.schema_fields(validator.sdk.Panel)
    assert fields["id"].attr == "id_val"
    assert fields["type"].required
    assert not fields["title"].required
    assert {"h", "w", "x", "y"} == {k for k, f in validator.schema_fields(validator.sdk.GridPos).items() if f.required}
