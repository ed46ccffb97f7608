"""Suite-wide fixtures: the telemetry guard fails tests loudly; real exporters and registries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

import monitor
from monitor.testing import InternalErrorCollector


@pytest.fixture(autouse=True)
def fail_on_swallowed_telemetry_errors(request: pytest.FixtureRequest) -> Iterator[InternalErrorCollector]:
    """Production swallows telemetry errors; the test suite must not."""
    with InternalErrorCollector() as collector:
        yield collector
    if collector.errors and request.node.get_closest_marker("telemetry_faults") is None:
        details = "; ".join(f"{component}: {error!r}" for component, error in collector.errors)
        pytest.fail(f"nbmon telemetry swallowed {len(collector.errors)} internal error(s): {details}")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def uninstrumented() -> Iterator[None]:
    """Guarantees a clean SDK before and after the test."""
    monitor.uninstrument()
    yield
    monitor.uninstrument()
    monitor.set_enabled(True)
