"""The committed Grafana dashboards are current, well formed and use only contract metrics."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest

from tests.support.constants import ROOT

DASHBOARDS = ROOT / "dashboards"
DASHBOARD_FILES = ("nbmon-overview.json", "nbmon-quota.json")
PANEL_TYPES = {"timeseries", "stat", "gauge", "table", "barchart", "state-timeline", "heatmap", "bargauge"}
METRIC_RE = re.compile(r"\bnbmon_[a-z0-9_]+")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nbmon_dashboards_generate", DASHBOARDS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load(name: str) -> dict[str, Any]:
    data = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _exprs(dash: dict[str, Any]) -> list[str]:
    out = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    out += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            out.append(var["query"]["query"] if isinstance(var["query"], dict) else var["query"])
    return out


@pytest.fixture(scope="module", params=DASHBOARD_FILES)
def dash(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _load(request.param)


def test_committed_files_are_current() -> None:
    for path, text in _generator().outputs().items():
        assert path.exists(), f"{path} missing: run python dashboards/generate.py"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run python dashboards/generate.py"


def test_generator_is_deterministic() -> None:
    gen = _generator()
    assert gen.outputs() == gen.outputs()


def test_dashboard_top_level(dash: dict[str, Any]) -> None:
    for key in ("uid", "title", "schemaVersion", "templating", "annotations", "panels", "time", "tags"):
        assert key in dash, key
    assert dash["schemaVersion"] == 39
    assert "__inputs" not in dash
    assert "__requires" not in dash
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dash["uid"])
    assert "nbmon" in dash["tags"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"
    assert ds["label"] == "Data source"
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_uids_unique_and_stable() -> None:
    uids = [_load(name)["uid"] for name in DASHBOARD_FILES]
    assert len(set(uids)) == len(uids)
    assert uids == ["nbmon-overview", "nbmon-quota"]
    titles = [_load(name)["title"] for name in DASHBOARD_FILES]
    assert len(set(titles)) == len(titles)


def test_panels_structure(dash: dict[str, Any]) -> None:
    ids = [p["id"] for p in dash["panels"]]
    assert len(set(ids)) == len(ids)
    titles = [p["title"] for p in dash["panels"]]
    assert len(set(titles)) == len(titles)
    for p in dash["panels"]:
        where = f"{dash['uid']}: {p.get('title')!r}"
        assert p["type"] in PANEL_TYPES, where
        assert isinstance(p["title"], str) and p["title"], where
        assert isinstance(p["description"], str) and len(p["description"]) > 20, where
        grid = p["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}, where
        assert all(isinstance(grid[k], int) and grid[k] >= 0 for k in grid), where
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        unit = p["fieldConfig"]["defaults"]["unit"]
        assert isinstance(unit, str) and unit, where
        assert p["targets"], where
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), where
        for t in p["targets"]:
            assert isinstance(t["expr"], str) and t["expr"].strip(), where
            assert t["datasource"]["uid"] == "${datasource}", where
            assert t["datasource"]["type"] == "prometheus", where


def test_panels_do_not_overlap(dash: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_exprs_look_like_promql(dash: dict[str, Any]) -> None:
    for expr in _exprs(dash):
        for open_, close in ("()", "[]", "{}"):
            assert expr.count(open_) == expr.count(close), expr
        # Prometheus 2.42 has no group-level labels, no `limitk`, no `info()` (3.x features).
        assert "limitk" not in expr
        assert "info(" not in expr


def _contract_metrics() -> set[str]:
    return set(METRIC_RE.findall((ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")))


def test_every_metric_is_in_the_documented_contract(dash: dict[str, Any]) -> None:
    contract = _contract_metrics()
    used = {m for expr in _exprs(dash) for m in METRIC_RE.findall(expr)}
    assert used
    unknown = set()
    for metric in used:
        if metric in contract:
            continue
        base = next((metric.removesuffix(s) for s in HISTOGRAM_SUFFIXES if metric.endswith(s)), None)
        if base is None or base not in contract:
            unknown.add(metric)
    assert not unknown, f"metrics not in docs/metrics.md: {sorted(unknown)}"


def test_overview_covers_the_issue() -> None:
    dash = _load("nbmon-overview.json")
    exprs = "\n".join(_exprs(dash))
    needed = [
        "nbmon_requests_total",
        'code="503"',
        "nbmon_degraded_mode",
        "nbmon_retries_total",
        "nbmon_fallbacks_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "nbmon_images_total",
        "nbmon_estimated_cost_usd_total[1h]",
        "nbmon_estimated_cost_usd_total[1d]",
        "nbmon_blocks_total",
        'code="429"',
        "nbmon_quota_utilization_ratio",
        "nbmon_quota_seconds_until_reset",
        "nbmon_notifications_total",
        "nbmon_source_last_success_timestamp_seconds",
        "nbmon_source_errors_total",
        "nbmon_quota_poll_errors_total",
    ]
    missing = [n for n in needed if n not in exprs]
    assert not missing, missing
    ratio = next(p for p in dash["panels"] if p["title"].startswith("503 ratio vs"))
    steps = ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert any(s["value"] == 0.30 for s in steps)
    assert ratio["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"
    assert any("nbmon_degraded_mode" in t["expr"] for t in ratio["targets"])


def test_quota_dashboard_has_project_variable() -> None:
    dash = _load("nbmon-quota.json")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["project"]["query"]["query"].startswith("label_values(nbmon_quota_utilization_ratio")
    for p in dash["panels"]:
        for t in p["targets"]:
            if "nbmon_quota_" in t["expr"] and "poll" not in t["expr"] and "poller" not in t["expr"]:
                assert 'project=~"$project"' in t["expr"], (p["title"], t["expr"])


def test_provisioning_points_at_files() -> None:
    text = (DASHBOARDS / "provisioning" / "dashboards.yml").read_text(encoding="utf-8")
    assert text.startswith("#") or "apiVersion: 1" in text
    assert "apiVersion: 1" in text
    assert "type: file" in text
    assert re.search(r"^\s+path: /\S+", text, re.MULTILINE)
