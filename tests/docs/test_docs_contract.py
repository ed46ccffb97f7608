"""docs/metrics.md is the metric contract: it lists exactly what the code registers, and every error class and cause.

The metrics come from the real objects, each on its own registry (the shim, ImageGenerator, the daemon, the quota
collector and the model-info collector), filled with one value per family so that every family shows its labels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from monitor.budget.job import BudgetMetrics
from monitor.catalog.collector import ModelInfoCollector
from monitor.config import ShimConfig
from monitor.daemon.metrics import DaemonMetrics
from monitor.daemon.quota_fleet import FleetMetrics
from monitor.fleet.notice_claims import ClaimMetrics
from monitor.generator.metrics import GeneratorMetrics
from monitor.pacing.metrics import PacingMetrics
from monitor.proxy.metrics import ProxyMetrics
from monitor.quota.collector import QuotaCollector
from monitor.quota.model import LimitStatus, QuotaReading, Window
from monitor.quota.poller import QuotaSnapshot
from monitor.shim.metrics import ShimMetrics
from monitor.shim.sinks import GenerationNotes
from monitor.taxonomy import Cause, ErrorClass
from tests.support.constants import ROOT

METRICS_DOC = ROOT / "docs" / "metrics.md"
README = ROOT / "README.md"
NAME_RE = re.compile(r"\bnbmon_[a-z0-9_]+")

Contract = dict[str, tuple[str, frozenset[str]]]  # exposition name -> (type, label names)


# --- what the code registers ------------------------------------------------------------------------------------


def _fill_wrappers(holder: object) -> None:
    """One sample for every prometheus_client metric object held by `holder`, so its labels show in collect().

    prometheus_client keeps a metric's label names in `_labelnames`: without a child, a labelled metric yields
    no sample, so the names are read there."""
    for metric in vars(holder).values():
        if not isinstance(metric, MetricWrapperBase):
            continue
        names = metric._labelnames
        child = metric.labels(*(f"{name}-value" for name in names)) if names else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram):
            child.observe(1)
        else:
            raise AssertionError(f"{metric!r}: a metric type this test does not know")


class _QuotaSource:
    """A poller's last snapshot with one quota of each kind the collector reports on."""

    def __init__(self) -> None:
        now = datetime(2026, 11, 27, 12, tzinfo=UTC)
        day = QuotaReading(
            project="p",
            service="generativelanguage.googleapis.com",
            location="global",
            quota_metric="generativelanguage.googleapis.com/generate_requests_per_model_per_day",
            limit_name="GenerateRequestsPerDayPerProjectPerModel",
            window=Window.DAY,
            usage=10.0,
            limit=100.0,
            status=LimitStatus.FIXED,
            reset_at=now + timedelta(hours=3),
            projected_usage_at_reset=40.0,
        )
        self.snapshot = QuotaSnapshot(
            readings=(day,), polled_at=now, fresh_projects=frozenset({"p"}), reconcile={("p", day.quota_metric): 1.0}
        )
        self.enabled = True

    def error_counts(self) -> dict[str, int]:
        return {"permission_denied": 1}

    def last_success_timestamp(self) -> float | None:
        return 1.0


def _registries() -> dict[str, CollectorRegistry]:
    shim_registry = CollectorRegistry()
    shim = ShimMetrics(shim_registry)
    shim.record_attempt("gemini-3-pro-image", "429", "billing_limited", 0.5, cause="spend_cap")
    shim.record_generation(
        "gemini-3-pro-image",
        "ok",
        12.0,
        "1K",
        (1, 2),
        0.134,
        (10, 20, 30),
        ("output", "IMAGE_SAFETY"),
        "standard",
        GenerationNotes(
            lifecycle="deprecated", served_model="gemini-3-pro-image", served_tier="standard", requested_tier="priority"
        ),
    )
    shim.internal_errors.count("docs-test")
    shim.model_info.use(ShimConfig())

    generator_registry = CollectorRegistry()
    _fill_wrappers(GeneratorMetrics(generator_registry))

    daemon_registry = CollectorRegistry()
    _fill_wrappers(DaemonMetrics(daemon_registry))
    _fill_wrappers(BudgetMetrics(daemon_registry))  # with [budget]
    _fill_wrappers(ClaimMetrics(daemon_registry))  # with [fleet] redis_url: notices claimed in Redis

    quota_registry = CollectorRegistry()
    quota_registry.register(QuotaCollector(_QuotaSource(), clock=lambda: datetime(2026, 11, 27, 12, tzinfo=UTC)))
    _fill_wrappers(FleetMetrics(quota_registry))  # the quota poller's lease (one poller per fleet)

    models_registry = CollectorRegistry()
    ModelInfoCollector(models_registry, ShimConfig())

    proxy_registry = CollectorRegistry()
    _fill_wrappers(ProxyMetrics(proxy_registry))

    pacing_registry = CollectorRegistry()
    _fill_wrappers(PacingMetrics(pacing_registry))
    return {
        "proxy": proxy_registry,
        "pacing": pacing_registry,
        "shim": shim_registry,
        "generator": generator_registry,
        "daemon": daemon_registry,
        "quota": quota_registry,
        "models": models_registry,
    }


def _exposition_name(name: str, kind: str) -> str:
    return f"{name}_total" if kind == "counter" else name


def code_contract() -> Contract:
    found: Contract = {}
    for where, registry in _registries().items():
        for family in registry.collect():
            name = _exposition_name(family.name, family.type)
            assert family.samples, f"{where}: {name} has no sample, so its labels are unknown: fill it in the test"
            labels = frozenset(key for sample in family.samples for key in sample.labels) - {"le"}
            entry = (family.type, labels)
            assert found.setdefault(name, entry) == entry, f"{name}: registered twice, differently ({where})"
    return found


# --- what docs/metrics.md says ----------------------------------------------------------------------------------


def _table_rows(text: str, first_header: str) -> Iterable[list[str]]:
    """The cells of every row of every Markdown table whose header row starts with `first_header`."""
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("|"):
            inside = False
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if not inside:
            inside = cells[0] == first_header
            continue
        if set(stripped) <= set("|-: "):
            continue  # the separator row
        yield cells


def documented_contract() -> Contract:
    found: Contract = {}
    for cells in _table_rows(METRICS_DOC.read_text(encoding="utf-8"), "metric"):
        name, kind, labels = cells[0].strip("`"), cells[1], cells[2]
        names = frozenset() if labels == "-" else frozenset(label.strip() for label in labels.split(","))
        assert name not in found, f"docs/metrics.md lists {name} twice"
        found[name] = (kind, names)
    return found


# --- the tests ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def code() -> Contract:
    return code_contract()


@pytest.fixture(scope="module")
def documented() -> Contract:
    return documented_contract()


def test_the_tables_parse(documented: Contract) -> None:
    assert len(documented) > 40
    assert documented["nbmon_requests_total"] == ("counter", frozenset({"model", "code", "error_class"}))
    assert documented["nbmon_degraded_mode"] == ("gauge", frozenset())


def test_every_registered_metric_is_documented(code: Contract, documented: Contract) -> None:
    missing = sorted(set(code) - set(documented))
    assert not missing, f"registered by the code, missing from docs/metrics.md: {missing}"


def test_nothing_documented_is_missing_from_the_code(code: Contract, documented: Contract) -> None:
    unknown = sorted(set(documented) - set(code))
    assert not unknown, f"in docs/metrics.md, registered by no code: {unknown}"


def test_types_and_labels_match(code: Contract, documented: Contract) -> None:
    wrong = {
        name: {"code": (kind, sorted(labels)), "docs": (documented[name][0], sorted(documented[name][1]))}
        for name, (kind, labels) in code.items()
        if name in documented and documented[name] != (kind, labels)
    }
    assert not wrong, f"type or labels differ between the code and docs/metrics.md: {wrong}"


def test_error_class_table_is_the_taxonomy() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")
    classes = [cells[0] for cells in _table_rows(text, "error_class")]
    assert sorted(classes) == sorted(c.value for c in ErrorClass), "the error_class table differs from ErrorClass"
    assert len(classes) == len(set(classes))


def test_cause_table_is_the_taxonomy() -> None:
    text = METRICS_DOC.read_text(encoding="utf-8")
    rows = list(_table_rows(text, "cause"))
    causes = [cells[0] for cells in rows]
    assert sorted(causes) == sorted(c.value for c in Cause), "the cause table differs from Cause"
    assert len(causes) == len(set(causes))
    classes = {c.value for c in ErrorClass}
    for cells in rows:  # the class column names classes only
        named = {part.strip() for part in re.split(r",| or ", cells[1])}
        assert named <= classes, f"cause {cells[0]}: {sorted(named - classes)} are not error classes"


def test_readme_names_the_documented_metrics_only(documented: Contract) -> None:
    """The README lists the metric names (tests/dashboards reads them there); docs/metrics.md describes them."""
    named = set(NAME_RE.findall(README.read_text(encoding="utf-8")))
    assert named == set(documented), {
        "in the README only": sorted(named - set(documented)),
        "in docs/metrics.md only": sorted(set(documented) - named),
    }
