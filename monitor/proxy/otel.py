"""The proxy's spans: the sidecar owns its process, so it sets up the OpenTelemetry SDK itself.

Configured by the standard variables only (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, ...): with none of them set, spans go nowhere
(the API's no-op tracer, no cost). OTLP over HTTP/protobuf; the exporter reads its own variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

_log = structlog.get_logger("nbmon.proxy")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracer_provider_from_env(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """An SDK provider exporting over OTLP when the environment asks for it, else None (spans go nowhere)."""
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if exporter not in ("", "otlp"):
        _log.warning("nbmon.proxy.otel_exporter_unsupported", exporter=exporter, supported="otlp")
        return None
    if not exporter and not any(env.get(name) for name in _ENDPOINTS):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        _log.warning("nbmon.proxy.otel_sdk_missing", install="pip install 'nbmon[proxy]'")
        return None
    # Resource.create() reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; nbmon-proxy when none is named.
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "nbmon-proxy"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider
