"""Suite-wide fixtures: the telemetry guard fails tests loudly; real exporters and registries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

import monitor
from monitor.logs import redact_secrets
from monitor.simulator import SimulatorServer
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


# --- the shim against the simulator -------------------------------------------------------------------------

PRO = "gemini-3-pro-image"
FLASH = "gemini-nano-banana-2.1"
API_KEY = "AIzaSyTESTKEY_0123456789abcdefghijklmnopq"  # shaped like a real key, to prove redaction
IMAGE_CONFIG = {"response_modalities": ["TEXT", "IMAGE"], "image_config": {"image_size": "1K", "aspect_ratio": "16:9"}}


@dataclass
class Shim:
    """What an instrumented test can read back: the real registry, spans and log events."""

    registry: CollectorRegistry
    spans: InMemorySpanExporter
    logs: LogCapture

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample of `name` whose labels include `labels`."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def only_span(self) -> ReadableSpan:
        (span,) = self.spans.get_finished_spans()
        return span

    def events(self, name: str = "genai.generation") -> list[dict[str, Any]]:
        return [e for e in self.logs.entries if e["event"] == name]


@pytest.fixture
def gemini_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


def genai_client(url: str, **http_options: Any) -> genai.Client:
    """Keep a reference: google-genai closes its HTTP client when the Client is garbage-collected."""
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url, **http_options))


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
