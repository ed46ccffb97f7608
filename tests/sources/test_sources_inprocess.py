"""InProcessSource: the shim's registry read directly, the same Reading as a scrape."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from structlog.testing import capture_logs

from monitor.shim.metrics import ShimMetrics
from monitor.signals import CounterSource, Series
from monitor.sources import InProcessSource
from tests.support.constants import FLASH, PRO


def attempts(metrics: ShimMetrics, model: str, code: str, error_class: str, n: int = 1) -> None:
    """n HTTP attempts through the shim's own hot-path API."""
    for _ in range(n):
        metrics.record_attempt(model, code, error_class, 0.5)


def test_registry_values_round_trip() -> None:
    registry = CollectorRegistry()
    metrics = ShimMetrics(registry)
    attempts(metrics, PRO, "200", "ok", 7)
    attempts(metrics, PRO, "503", "unavailable", 3)
    attempts(metrics, FLASH, "429", "rate_limited", 2)
    metrics.record_generation(PRO, "ok", 1.0, "1K", (1, 0), 0.1, (1, 1, 1), None)  # other counters: ignored
    source = InProcessSource(registry, clock=lambda: 42.0)
    reading = source.read()
    assert reading.ok
    assert reading.at == 42.0
    assert dict(reading.values) == {
        Series(PRO, "200", "ok"): 7.0,
        Series(PRO, "503", "unavailable"): 3.0,
        Series(FLASH, "429", "rate_limited"): 2.0,
    }
    attempts(metrics, PRO, "503", "unavailable")
    assert source.read().values[Series(PRO, "503", "unavailable")] == 4.0
    assert source.status()["inprocess"].last_success_at == 42.0


def test_empty_registry_is_an_ok_reading_without_series() -> None:
    source: CounterSource = InProcessSource(CollectorRegistry())
    assert source.name == "inprocess"
    reading = source.read()
    assert reading.ok
    assert reading.values == {}


def test_a_counter_registered_by_another_library_is_read_too() -> None:
    registry = CollectorRegistry()  # e.g. a non-shim exporter that follows the same naming contract
    counter = Counter("nbmon_requests", "doc", ["model", "code", "error_class"], registry=registry)
    counter.labels("m", "500", "x").inc(0.5)  # a fractional value is read as it is
    assert dict(InProcessSource(registry).read().values) == {Series("m", "500", "x"): 0.5}


class _Broken(Collector):
    def collect(self) -> Iterable[CounterMetricFamily]:
        raise RuntimeError("collector exploded")


def test_a_broken_collector_is_a_failed_read_counted_and_logged_once() -> None:
    registry = CollectorRegistry()
    attempts(ShimMetrics(registry), PRO, "200", "ok")
    registry.register(_Broken())
    errors: list[tuple[str, str]] = []
    source = InProcessSource(registry, on_error=lambda target, reason: errors.append((target, reason)))
    with capture_logs() as logs:
        first = source.read()
        source.read()
    assert not first.ok
    assert first.values == {}
    assert first.error is not None
    assert "collector exploded" in first.error
    assert errors == [("inprocess", "collect"), ("inprocess", "collect")]
    assert [entry["event"] for entry in logs] == ["nbmon.source.failed"]
    assert source.status()["inprocess"].consecutive_failures == 2
