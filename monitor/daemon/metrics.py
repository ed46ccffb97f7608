"""The daemon's own metrics on its own registry (a public contract: dashboards and rules use them)."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DaemonMetrics:
    """The daemon's own metrics on its own registry (a public contract: dashboards and rules use them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._ratio_keys: dict[str, set[tuple[str, str]]] = {}  # window label -> the label sets published
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
            "Notification deliveries by channel and result (sent, retried, failed_permanent, dropped, unpersisted).",
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

    def publish_error_ratios(self, window_s: float, ratios: Mapping[tuple[str, str], float]) -> None:
        """`nbmon_error_ratio` for one window: (model, error_class) -> share of the model's calls.

        A class that stopped happening on a model still in use drops to 0; a model gone from the window is
        forgotten, so label sets never pile up."""
        label = window_label(window_s)
        models = {model for model, _ in ratios}
        kept = set(ratios)
        for model, error_class in self._ratio_keys.get(label, set()) - kept:
            if model in models:
                self.error_ratio.labels(model, error_class, label).set(0)
                kept.add((model, error_class))
            else:
                self.error_ratio.remove(model, error_class, label)
        for (model, error_class), ratio in ratios.items():
            self.error_ratio.labels(model, error_class, label).set(ratio)
        self._ratio_keys[label] = kept


def window_label(seconds: float) -> str:
    """The `window` label: 1m, 5m, 90s."""
    return f"{int(seconds // 60)}m" if seconds % 60 == 0 else f"{int(seconds)}s"
