"""The instrumented SDK as a test reads it back: the real registry, spans and log events, and a client on a URL."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from google import genai
from google.genai import types
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

from tests.support.constants import API_KEY


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

    def events(self, name: str = "genai.generation") -> list[MutableMapping[str, Any]]:
        return [e for e in self.logs.entries if e["event"] == name]


def genai_client(url: str, **http_options: Any) -> genai.Client:
    """Keep a reference: google-genai closes its HTTP client when the Client is garbage-collected."""
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url, **http_options))
