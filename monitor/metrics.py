"""Prometheus metrics of the shim, the generator and the daemon (a public contract).

The shim's per-call names, labels and buckets are in monitor.shim_metrics, next to the code that fills them.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from monitor._safety import report_internal_error
from monitor.catalog import ModelInfoCollector
from monitor.shim_metrics import ClientShimMetrics, FoldedShimMetrics, multiprocess_mode

INTERNAL_ERRORS_TOTAL = "nbmon_internal_errors"
RETRIES_TOTAL = "nbmon_retries"
RETRY_WAIT_TOTAL = "nbmon_retry_wait_seconds"
FALLBACKS_TOTAL = "nbmon_fallbacks"
DEGRADED_ROUTING_TOTAL = "nbmon_degraded_routing"


_instances: weakref.WeakKeyDictionary[CollectorRegistry, dict[object, Any]] = weakref.WeakKeyDictionary()
_instances_lock = threading.Lock()
_T = TypeVar("_T")


def _per_registry(cls: type[_T], registry: CollectorRegistry | None, **options: Any) -> _T:
    """The instance of `cls` for `registry`, made on the first call (with `options`) and shared after."""
    registry = registry if registry is not None else REGISTRY
    with _instances_lock:
        per_type = _instances.setdefault(registry, {})
        if cls not in per_type:
            per_type[cls] = cls(registry, **options)  # type: ignore[call-arg]
        return per_type[cls]  # type: ignore[no-any-return]


class ShimMetrics:
    """All shim metrics on one registry. Use `for_registry` to share one instance per registry.

    The hot path is `record_attempt` and `record_generation`, bound to the sink chosen here: folded
    (an append per call, folded into the families at scrape time) unless prometheus_client runs in multiprocess
    mode, or `folded` says otherwise. The exposition is the same either way.
    """

    def __init__(
        self, registry: CollectorRegistry, *, folded: bool | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock`: the folded sink's wall clock, which stamps each record (`_created` comes from it)."""
        use_folded = not multiprocess_mode() if folded is None else folded
        sink = (
            FoldedShimMetrics(registry, on_error=self._fold_error, clock=clock)
            if use_folded
            else ClientShimMetrics(registry)
        )
        self.folded = use_folded
        self.record_attempt = sink.record_attempt
        self.record_generation = sink.record_generation
        # Registered after the sink: a record the sink fails to fold at a scrape is counted in that same scrape.
        self.internal_errors = Counter(  # off the hot path: a plain Counter
            INTERNAL_ERRORS_TOTAL,
            "Errors inside nbmon's own telemetry code, swallowed so the app is never affected.",
            ["component"],
            registry=registry,
        )
        self.model_info = ModelInfoCollector(registry)  # filled by instrument() with its configuration

    def _fold_error(self, error: Exception) -> None:
        # A record the folded sink could not add (at a scrape, or when its queue was full): guarded like the shim.
        report_internal_error("shim.metrics", error, lambda component: self.internal_errors.labels(component).inc())

    @classmethod
    def for_registry(
        cls,
        registry: CollectorRegistry | None = None,
        *,
        folded: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ShimMetrics:
        """One instance per registry, so instrument/uninstrument/instrument never re-registers.

        The first call for a registry creates the instance, so `folded` and `clock` count only then.
        """
        return _per_registry(cls, registry, folded=folded, clock=clock)


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
        return _per_registry(cls, registry)


class DaemonMetrics:
    """The daemon's own metrics on its own registry (a public contract: dashboards and rules use them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.degraded_mode = Gauge(
            "nbmon_degraded_mode",
            "1 while the app must use the fallback model only (the flag's value).",
            registry=registry,
        )
        self.transitions = Counter(
            "nbmon_degraded_transitions",
            "Changes of the degraded-mode flag; to is degraded or normal.",
            ["to"],
            registry=registry,
        )
        self.error_ratio = Gauge(
            "nbmon_error_ratio",
            "Share of each error class among a model's HTTP attempts over the window (window: 1m, 5m, ...).",
            ["model", "error_class", "window"],
            registry=registry,
        )
        self.rule_state = Gauge(
            "nbmon_rule_state",
            "1 for the current state of each rule (ok, pending, firing, recovering, probing), 0 for the others.",
            ["rule", "state"],
            registry=registry,
        )
        self.rule_insufficient_data = Gauge(
            "nbmon_rule_insufficient_data",
            "1 while a rule's window holds fewer requests than its minimum volume (its state holds).",
            ["rule"],
            registry=registry,
        )
        self.override = Gauge(
            "nbmon_override_active",
            "1 while a manual override of the degraded-mode flag is in force.",
            registry=registry,
        )
        self.source_errors = Counter(
            "nbmon_source_errors",
            "Failed reads of a signal source, by reason (connect, timeout, http_status, parse, too_large, query, auth,"
            " collect).",
            ["source", "reason"],
            registry=registry,
        )
        self.source_last_success = Gauge(
            "nbmon_source_last_success_timestamp_seconds",
            "Unix time of the last successful read of each source.",
            ["source"],
            registry=registry,
        )
        self.job_errors = Counter(
            "nbmon_job_errors", "Scheduled jobs that raised (logged; the daemon goes on).", ["job"], registry=registry
        )
        self.notifications = Counter(
            "nbmon_notifications",
            "Notification deliveries by channel and result (sent, retried, failed_permanent, dropped).",
            ["channel", "result"],
            registry=registry,
        )
        self.notification_queue_depth = Gauge(
            "nbmon_notification_queue_depth", "Notifications waiting in the persisted outbox.", registry=registry
        )
        self.persistence_ok = Gauge(
            "nbmon_persistence_ok",
            "1 while a store (state, flagd, outbox) saves; 0 while it cannot (disk full, read-only): its content is"
            " in force in memory only and lost on a restart.",
            ["store"],
            registry=registry,
        )
        self.persistence_errors = Counter(
            "nbmon_persistence_errors",
            "Failed saves of a store (state, flagd, outbox); the save is retried on every evaluation tick.",
            ["store"],
            registry=registry,
        )
        self.evaluation_duration = Histogram(
            "nbmon_evaluation_duration_seconds",
            "Time one evaluation tick took.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
