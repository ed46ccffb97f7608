"""A simulator upstream and the proxy in front of it, on free loopback ports, with their own registry and spans."""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google import genai
from google.genai import types
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.proxy.config import ProxyConfig
from monitor.proxy.server import ProxyServer, build_forwarder
from monitor.simulator.server import SimulatorServer

API_KEY = "AIzaSyProxyTestKey0123456789abcdefghijk"  # the shape of a real key: redaction must catch it
PRO, FLASH = "gemini-3-pro-image", "gemini-nano-banana-2.1"
IMAGE = types.GenerateContentConfig(response_modalities=["IMAGE"])


@dataclass
class Proxy:
    server: ProxyServer
    registry: CollectorRegistry
    spans: InMemorySpanExporter
    flag: dict[str, bool] = field(default_factory=lambda: {"degraded": False})

    @property
    def url(self) -> str:
        return self.server.url

    def value(self, name: str, **labels: str) -> float:
        """A sample once every request is fully counted: a client can have its last byte before the proxy has
        recorded the call (the in-flight gauge drops last)."""
        self._settle()
        return self.registry.get_sample_value(name, labels) or 0.0

    def finished_spans(self) -> tuple[ReadableSpan, ...]:
        """The proxy's spans once every request is done: a span ends after its response's last byte is sent."""
        self._settle()
        return tuple(self.spans.get_finished_spans())

    def _settle(self) -> None:
        deadline = time.monotonic() + 5
        while (self.registry.get_sample_value("nbmon_proxy_requests_in_flight") or 0) > 0:
            assert time.monotonic() < deadline, "a request stayed in flight"
            time.sleep(0.005)

    def client(self, **options: Any) -> genai.Client:
        return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=self.url, **options))


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(retry_delay="0.2s") as server:
        yield server


ProxyFactory = Callable[..., Proxy]


@pytest.fixture
def make_proxy(sim: SimulatorServer) -> Iterator[ProxyFactory]:
    started: list[ProxyServer] = []

    def make(upstream: str | None = None, **options: Any) -> Proxy:
        config = dataclasses.replace(ProxyConfig(port=0, upstream=upstream or sim.url), **options)
        registry, spans = CollectorRegistry(), InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        flag = {"degraded": False}

        async def degraded() -> bool:
            return flag["degraded"]

        forwarder = build_forwarder(
            config, ShimConfig(), registry, degraded, tracer_provider=provider, rng=random.Random(7)
        )
        server = ProxyServer(forwarder, registry)
        server.start()
        started.append(server)
        return Proxy(server, registry, spans, flag)

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def proxy(make_proxy: ProxyFactory) -> Proxy:
    return make_proxy()
