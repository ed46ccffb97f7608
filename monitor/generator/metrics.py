"""ImageGenerator's metrics: retries, waits, fallbacks and degraded-mode routing (a public contract)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from monitor._registry import per_registry

RETRIES_TOTAL = "nbmon_retries"
RETRY_WAIT_TOTAL = "nbmon_retry_wait_seconds"
FALLBACKS_TOTAL = "nbmon_fallbacks"
DEGRADED_ROUTING_TOTAL = "nbmon_degraded_routing"


class GeneratorMetrics:
    """ImageGenerator's metrics: retries, waits, fallbacks and degraded-mode routing (a public contract)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.retries = Counter(
            RETRIES_TOTAL,
            "Attempts ImageGenerator repeated on the same model, by the class that caused the retry.",
            ["model", "error_class"],
            registry=registry,
        )
        self.retry_wait = Counter(
            RETRY_WAIT_TOTAL,
            "Seconds ImageGenerator waited between attempts (backoff and server-advised delays).",
            ["model"],
            registry=registry,
        )
        self.fallbacks = Counter(
            FALLBACKS_TOTAL,
            "Calls moved to the fallback model; reason is degraded_mode, retries_exhausted or quota_exhausted.",
            ["from_model", "to_model", "reason"],
            registry=registry,
        )
        self.routing = Counter(
            DEGRADED_ROUTING_TOTAL,
            "Routing decisions while degraded: flash (sent to the fallback) or canary (kept on the primary).",
            ["decision"],
            registry=registry,
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> GeneratorMetrics:
        """One instance per registry, so instrument/uninstrument/instrument never re-registers."""
        return per_registry(cls, registry)
