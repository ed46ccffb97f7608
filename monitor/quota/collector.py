"""The quota gauges on /metrics: a custom Collector over the poller's LAST snapshot (no network I/O in collect).

Per quota (labels `project, service, location, quota_metric, limit_name, window`; `limit_name` is "" for a usage
without any limit; `window` is minute | day | unknown | allocation):

| metric | present for | value |
|---|---|---|
| nbmon_quota_usage | every quota | newest minute (per-minute), since the last reset (per-day), or allocation |
| nbmon_quota_limit | fixed and blocked limits | the limit (0: blocked) |
| nbmon_quota_utilization_ratio | fixed limits only | usage / limit; absent for dynamic and blocked limits |
| nbmon_quota_exceeded | every quota | 1 while Cloud Monitoring reports the limit exceeded |
| nbmon_quota_dynamic_limit | every quota | 1: no fixed limit (Vertex dynamic shared quota, unlimited) |
| nbmon_quota_blocked | every quota | 1: the limit is 0 (the tier gives nothing, e.g. a preview model) |
| nbmon_quota_seconds_until_reset | per-day quotas | until midnight America/Los_Angeles, computed at scrape time |
| nbmon_quota_projected_exhaustion | fixed per-day limits | 1: at today's pace it runs out before the reset |
| nbmon_quota_projected_usage_at_reset | fixed per-day limits, once projected | usage expected at the reset |

Poller: `nbmon_quota_poll_last_success_timestamp_seconds` (the oldest of the projects' last successes; absent until
every project succeeded once), `nbmon_quota_poll_errors_total{reason}` (every reason pre-set to 0),
`nbmon_quota_poller_enabled`, `nbmon_quota_series_dropped` (quotas left out by the `max_series` cap, hottest kept)
and `nbmon_quota_reconcile_difference{project,quota_metric}` (cloud - shim requests since the reset).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.quota.model import LimitStatus, QuotaReading, Window
from monitor.quota.poller import QuotaSnapshot

LABELS = ("project", "service", "location", "quota_metric", "limit_name", "window")
MAX_SERIES = 500
_MAX_LABEL_CHARS = 200
_PER_QUOTA = {  # short key -> (metric name, help)
    "usage": ("nbmon_quota_usage", "Quota usage in the quota's window (Cloud Monitoring)."),
    "limit": ("nbmon_quota_limit", "Quota limit (0: blocked); absent for dynamic limits."),
    "ratio": ("nbmon_quota_utilization_ratio", "usage / limit; absent for dynamic and blocked limits."),
    "exceeded": ("nbmon_quota_exceeded", "1 while the quota limit is exceeded."),
    "dynamic": ("nbmon_quota_dynamic_limit", "1 when the quota has no fixed limit."),
    "blocked": ("nbmon_quota_blocked", "1 when the quota limit is 0."),
    "until": ("nbmon_quota_seconds_until_reset", "Seconds until the per-day quota resets (midnight Pacific)."),
    "projected": ("nbmon_quota_projected_exhaustion", "1 when the per-day quota runs out before the reset."),
    "projected_usage": ("nbmon_quota_projected_usage_at_reset", "Per-day usage expected at the reset."),
}
_POLLER = {
    "last": ("nbmon_quota_poll_last_success_timestamp_seconds", "Oldest last successful quota poll of the projects."),
    "enabled": ("nbmon_quota_poller_enabled", "1 when the quota poller runs (0: disabled, e.g. no credentials)."),
    "dropped": ("nbmon_quota_series_dropped", "Quotas left out of /metrics by the series cap."),
}
_RECONCILE = ("nbmon_quota_reconcile_difference", "Requests since the reset: Cloud Monitoring minus the shim.")
_ERRORS = ("nbmon_quota_poll_errors", "Failed quota fetches by reason.")


class QuotaSource(Protocol):
    """What the collector reads: QuotaPoller, or anything holding a snapshot."""

    @property
    def snapshot(self) -> QuotaSnapshot: ...
    @property
    def enabled(self) -> bool: ...
    def error_counts(self) -> dict[str, int]: ...
    def last_success_timestamp(self) -> float | None: ...


class QuotaCollector(Collector):
    """`registry.register(QuotaCollector(poller))`; `collect()` only reads memory and the (injected) clock."""

    def __init__(
        self, source: QuotaSource, *, max_series: int = MAX_SERIES, clock: Callable[[], datetime] | None = None
    ) -> None:
        if max_series < 1:
            raise ValueError("max_series: at least 1")
        self._source = source
        self._max_series = max_series
        self._clock = clock or (lambda: datetime.now(UTC))

    def describe(self) -> Iterable[Metric]:
        quota, poller, errors, difference = _families()
        return [*quota.values(), *poller.values(), errors, difference]

    def collect(self) -> Iterable[Metric]:
        source = self._source
        snapshot = source.snapshot  # one read: every family below comes from the same snapshot
        f, poller, errors, difference = _families()
        chosen, dropped = _capped(snapshot.readings, self._max_series)
        now = self._clock()
        for reading in chosen:
            labels = _labels(reading)
            f["usage"].add_metric(labels, reading.usage)
            if reading.limit is not None and reading.status is not LimitStatus.DYNAMIC:
                f["limit"].add_metric(labels, reading.limit)
            fraction = reading.utilization
            if fraction is not None:
                f["ratio"].add_metric(labels, fraction)
            f["exceeded"].add_metric(labels, 1.0 if reading.exceeded else 0.0)
            f["dynamic"].add_metric(labels, 1.0 if reading.dynamic else 0.0)
            f["blocked"].add_metric(labels, 1.0 if reading.blocked else 0.0)
            if reading.window is Window.DAY and reading.reset_at is not None:
                f["until"].add_metric(labels, max((reading.reset_at - now).total_seconds(), 0.0))
            if reading.window is Window.DAY and reading.status is LimitStatus.FIXED:
                f["projected"].add_metric(labels, 1.0 if reading.projected_exhaustion else 0.0)
                if reading.projected_usage_at_reset is not None:
                    f["projected_usage"].add_metric(labels, reading.projected_usage_at_reset)
        stamp = source.last_success_timestamp()
        if stamp is not None:
            poller["last"].add_metric([], stamp)
        poller["enabled"].add_metric([], 1.0 if source.enabled else 0.0)
        poller["dropped"].add_metric([], dropped)
        for reason, count in sorted(source.error_counts().items()):
            errors.add_metric([reason], count)
        for (project, quota_metric), value in sorted(snapshot.reconcile.items())[: self._max_series]:
            difference.add_metric([_bounded(project), _bounded(quota_metric)], value)
        return [*f.values(), *poller.values(), errors, difference]


def _families() -> tuple[
    dict[str, GaugeMetricFamily], dict[str, GaugeMetricFamily], CounterMetricFamily, GaugeMetricFamily
]:
    quota = {key: GaugeMetricFamily(name, doc, labels=list(LABELS)) for key, (name, doc) in _PER_QUOTA.items()}
    poller = {key: GaugeMetricFamily(name, doc) for key, (name, doc) in _POLLER.items()}
    errors = CounterMetricFamily(*_ERRORS, labels=["reason"])
    difference = GaugeMetricFamily(*_RECONCILE, labels=["project", "quota_metric"])
    return quota, poller, errors, difference


def _capped(readings: Iterable[QuotaReading], limit: int) -> tuple[list[QuotaReading], int]:
    """At most `limit` distinct label sets, the most urgent first (exceeded, then highest utilization)."""
    unique: dict[tuple[str, ...], QuotaReading] = {}
    for reading in readings:
        unique.setdefault(tuple(_labels(reading)), reading)

    def urgency(reading: QuotaReading) -> tuple[int, float, tuple[str, ...]]:
        fraction = reading.utilization
        return (0 if reading.exceeded else 1, -(fraction if fraction is not None else -1.0), tuple(_labels(reading)))

    ordered = sorted(unique.values(), key=urgency)
    return ordered[:limit], max(len(ordered) - limit, 0)


def _labels(reading: QuotaReading) -> list[str]:
    values = (reading.project, reading.service, reading.location, reading.quota_metric, reading.limit_name)
    return [*(_bounded(v) for v in values), reading.window.value]


def _bounded(value: str) -> str:
    return value if len(value) <= _MAX_LABEL_CHARS else value[: _MAX_LABEL_CHARS - 1] + "…"
