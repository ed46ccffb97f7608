"""The pacer's metrics (a public contract, listed in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor._registry import per_registry

WAIT_TOTAL = "nbmon_pacing_wait_seconds"
REJECTED_TOTAL = "nbmon_pacing_rejected"
DEGRADED = "nbmon_pacing_degraded"
REDIS_ERRORS_TOTAL = "nbmon_pacing_redis_errors"


class PacingMetrics:
    """Waits and refusals per model and quota; whether the shared window is down (per-process limits in force)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.wait = Counter(
            WAIT_TOTAL,
            "Seconds calls waited for a slot in a rolling one-minute quota window, by the quota that made them wait.",
            ["model", "quota"],
            registry=registry,
        )
        self.rejected = Counter(
            REJECTED_TOTAL,
            "Calls refused by the pacer (no slot within the caller's wait bound), never sent.",
            ["model", "quota"],
            registry=registry,
        )
        self.degraded = Gauge(
            DEGRADED,
            "1 while the shared (Redis) window cannot be reached and each process paces at limit / replicas.",
            registry=registry,
        )
        self.redis_errors = Counter(
            REDIS_ERRORS_TOTAL, "Failed reservations in the shared (Redis) window.", registry=registry
        )

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> PacingMetrics:
        return per_registry(cls, registry)
