"""The sidecar owns its OpenTelemetry SDK: spans over OTLP/HTTP when the standard variables say so, else nowhere."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google import genai
from google.genai import types
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.proxy.config import ProxyConfig
from monitor.proxy.otel import tracer_provider_from_env
from monitor.proxy.server import ProxyServer, build_forwarder
from monitor.simulator.server import SimulatorServer
from tests.proxy.conftest import API_KEY, IMAGE, PRO


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: POST /v1/traces with an ExportTraceServiceRequest in protobuf."""

    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        assert self.path == "/v1/traces" and self.headers["content-type"] == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.received.append(request)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def collector() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_no_otel_variable_means_no_sdk() -> None:
    assert tracer_provider_from_env({}) is None
    assert tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}) is None
    assert tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}) is None


def test_spans_go_out_over_otlp_with_the_service_name(
    collector: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{collector.server_port}"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)  # the exporter reads it itself, as in production
    provider = tracer_provider_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    assert provider is not None
    registry = CollectorRegistry()

    async def never() -> bool:
        return False

    with SimulatorServer() as sim:
        config = ProxyConfig(port=0, upstream=sim.url)
        forwarder = build_forwarder(
            config, ShimConfig(), registry, never, tracer_provider=provider, rng=random.Random(1)
        )
        server = ProxyServer(forwarder, registry)
        server.start()
        try:
            client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=server.url))
            client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        finally:
            server.stop()
    provider.force_flush()
    provider.shutdown()
    spans = [
        (resource.resource, span)
        for request in collector.received  # type: ignore[attr-defined]
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    (resource, span), *_ = spans
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    attributes = {a.key: a.value for a in span.attributes}
    assert service == "nbmon-proxy" and span.name == f"generate_content {PRO}"
    assert attributes["gen_ai.request.model"].string_value == PRO
    assert attributes["nbmon.error_class"].string_value == "ok"
    assert API_KEY not in str(spans)
