"""The proxy's own metrics (a public contract), beside the shim's and the generator's, which it also fills."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor._registry import per_registry


class ProxyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "nbmon_proxy_requests",
            "Requests the proxy answered, by Gemini method (generateContent, streamGenerateContent, countTokens, ...,"
            " other) and the status its client got.",
            ["method", "code"],
            registry=registry,
        )
        self.upstream_failures = Counter(
            "nbmon_proxy_upstream_failures",
            "Upstream requests that got no HTTP answer: connect (refused, reset, DNS, TLS), timeout, or broken"
            " (the response stopped mid-body).",
            ["method", "reason"],
            registry=registry,
        )
        self.client_disconnects = Counter(
            "nbmon_proxy_client_disconnects",
            "Clients gone before their response was complete; the upstream request was cancelled.",
            ["method"],
            registry=registry,
        )
        self.stopped = Counter(
            "nbmon_proxy_stopped_requests",
            "Generate requests the proxy refused without sending them upstream while generation is stopped"
            " (generation-allowed false: a spent budget with action stop).",
            ["method"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "nbmon_proxy_requests_in_flight", "Requests the proxy is forwarding now.", registry=registry
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> ProxyMetrics:
        return per_registry(cls, registry)
