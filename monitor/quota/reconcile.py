"""Reconcile: the requests the shim counted against the usage Cloud Monitoring reports. Pure.

Callers that bypass the shim (another service with the same project's key, a notebook, a second deployment)
consume the same per-project quota but never show up in `nbmon_requests_total`. A lasting positive difference
between the cloud's count and the shim's is how they become visible.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from monitor.daily_reset import RESET_TIMEZONE
from monitor.quota.model import QuotaReading, last_daily_reset


def is_request_metric(quota_metric: str) -> bool:
    """Quota metrics that count requests (`.../generate_requests_per_model`, `..._free_tier_requests`), not tokens."""
    return "requests" in quota_metric.rsplit("/", 1)[-1].lower()


def reconcile(
    shim_counts: Mapping[str, float],
    readings: Iterable[QuotaReading],
    *,
    projects: Collection[str] | None = None,
) -> dict[tuple[str, str], float]:
    """cloud - shim per (project, quota_metric), over the day since the last reset (midnight America/Los_Angeles).

    `shim_counts`: the requests the shim sent per model since that reset (e.g. `DailyCounterBaseline`), counting
    the attempts that reached Google and were not refused for quota (429s are not in `net_usage`). Every request
    counts once against each request quota metric, so each is compared with the shim's total over all models
    (the quota metrics carry no model label in Cloud Monitoring). The shim does not know which project a key
    belongs to: pass `projects` (the one(s) the shim's keys use) when the poller watches several.

    Positive: the project used more than the shim saw, so callers bypass the shim. Negative or near zero is
    expected, because of the caveat: Cloud Monitoring ingests quota usage minutes late (samples every 60 s, then
    a few minutes' delay; one report says about 7 min), so the cloud's count trails the shim's by roughly the
    last few minutes' traffic. Compare the difference to a few minutes of traffic, alert only on a lasting gap,
    and expect a spike around midnight Pacific, when the cloud's day restarts before its last minutes arrive.
    """
    shim_total = sum(v for v in shim_counts.values() if math.isfinite(v) and v > 0)
    cloud: dict[tuple[str, str], dict[tuple[str, str], float]] = {}
    for reading in readings:
        if reading.usage_today is None or not is_request_metric(reading.quota_metric):
            continue
        if projects is not None and reading.project not in projects:
            continue
        where = (reading.service, reading.location)
        cloud.setdefault((reading.project, reading.quota_metric), {})[where] = reading.usage_today
    differences = {}
    for key, usage in cloud.items():
        regional = sum(v for (_, location), v in usage.items() if location != "global")
        global_ = max((v for (_, location), v in usage.items() if location == "global"), default=0.0)
        differences[key] = max(regional, global_) - shim_total  # a global reading may already sum the regions
    return differences


class DailyCounterBaseline:
    """Cumulative per-model request counters in, counts since the last quota reset out. Pure (time passed in).

    Feed it the shim's cumulative totals at every read (`observe`). Counts since the reset are known only once it
    has seen a reading before that reset (it started before midnight Pacific): until then `since_reset` is None,
    so a daemon started mid-day reconciles from the next day on instead of reporting its start as a gap. A total
    that goes down is a restarted process: its new value counts as fresh requests.
    """

    def __init__(self, timezone: str = RESET_TIMEZONE) -> None:
        self._timezone = timezone
        self._accumulated: dict[str, float] = {}
        self._previous: dict[str, float] = {}
        self._baseline: dict[str, float] | None = None
        self._day: datetime | None = None
        self._last_at: datetime | None = None

    def observe(self, totals: Mapping[str, float], now: datetime) -> None:
        reset = last_daily_reset(now, self._timezone)
        if reset != self._day:
            seen_yesterday = self._last_at is not None and self._last_at < reset
            self._baseline = dict(self._accumulated) if seen_yesterday else None
            self._day = reset
        for model, total in totals.items():
            if not math.isfinite(total) or total < 0:
                continue
            previous = self._previous.get(model, 0.0)
            increase = total - previous if total >= previous else total
            self._accumulated[model] = self._accumulated.get(model, 0.0) + increase
            self._previous[model] = total
        self._last_at = now

    def since_reset(self, now: datetime) -> dict[str, float] | None:
        if self._baseline is None or self._day != last_daily_reset(now, self._timezone):
            return None
        return {m: v - self._baseline.get(m, 0.0) for m, v in self._accumulated.items()}
