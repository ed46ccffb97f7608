"""Suite-wide fixtures: the telemetry guard fails tests loudly; real exporters and registries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from google import genai
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

import monitor
from monitor.logs import redact_secrets
from monitor.simulator import SimulatorServer
from monitor.testing import InternalErrorCollector
from tests.support.shim import Shim, genai_client


@pytest.fixture(autouse=True)
def structlog_config_restored() -> Iterator[None]:
    """A test that configures structlog (configure_logging caches loggers on first use) leaves it as it found it:
    a logger cached under another test's configuration would write into that test's capture forever."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(autouse=True)
def fail_on_swallowed_telemetry_errors(request: pytest.FixtureRequest) -> Iterator[InternalErrorCollector]:
    """Production swallows telemetry errors; the test suite must not."""
    with InternalErrorCollector() as collector:
        yield collector
    if collector.errors and request.node.get_closest_marker("telemetry_faults") is None:
        details = "; ".join(f"{component}: {error!r}" for component, error in collector.errors)
        pytest.fail(f"nbmon telemetry swallowed {len(collector.errors)} internal error(s): {details}")


@pytest.fixture(autouse=True)
def no_cached_loggers_after_the_test() -> Iterator[None]:
    """A structlog config that caches loggers on first use (what configure_logging sets) must not outlive the test
    that made it: every module-level logger used afterwards would be frozen to it, and later tests' capture_logs
    would see nothing (an order-dependent failure far from its cause)."""
    yield
    if structlog.get_config().get("cache_logger_on_first_use"):
        structlog.reset_defaults()


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


# --- the shim against the simulator -------------------------------------------------------------------------


@pytest.fixture
def gemini_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def gclient(gemini_sim: SimulatorServer) -> Iterator[genai.Client]:
    with genai_client(gemini_sim.url) as client:
        yield client


@pytest.fixture
def shim(
    registry: CollectorRegistry,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    uninstrumented: None,
) -> Iterator[Shim]:
    capture = LogCapture()
    logger = structlog.wrap_logger(None, processors=[redact_secrets, capture])
    assert monitor.instrument(registry=registry, tracer_provider=tracer_provider, logger=logger)
    yield Shim(registry, span_exporter, capture)
