"""Quota rows and readings: usage joined to limits, utilization, the per-day reset and a projection. Pure.

`QuotaSeries` is one time series as fetched (already reduced per quota); `join()` turns them into one
`QuotaReading` per limit, plus one per usage that has no limit at all (a dynamic limit). The rules:

- Key: (project, service, location, quota_metric, limit_name). `quota/allocation/usage` and `quota/rate/net_usage`
  carry no `limit_name`, so usage is joined to its limits on (project, service, location, quota_metric) only. A
  limit at location `global` with no usage there takes the sum of the usage in every location.
- Window: from the names (`window_of(limit_name)`, then the quota metric, then the unit: `1/min/...`, `1/d/...`).
  A per-day limit is compared with the usage since the last reset (midnight America/Los_Angeles); a per-minute limit
  with the newest minute's usage; a limit whose window cannot be told is compared with the newest minute too (rate
  quotas are per minute unless named otherwise) and labelled `unknown`. Allocation quotas: the current allocation.
- Limit status: `fixed` (a finite value >= 1), `blocked` (0: the tier gives this quota nothing; the article's
  per-day limit 0 for preview image models), `dynamic` (no limit series at all, e.g. Vertex dynamic shared quota,
  or no fixed value: negative, such as -1 for unlimited, not finite, or >= 2**62). Only `fixed` has a utilization;
  dynamic and blocked have none (0/0 is not a percentage and "no limit" is not 0% or 100%).
- Projection (fixed per-day limits): pace = usage since the reset / seconds since the reset (DST-correct: a day
  may be 23 or 25 hours); usage at the reset = usage + pace x seconds until the reset. It runs out before the
  reset when that reaches the limit; `projected_exhaustion_at` is when. No projection in the first
  `min_projection_elapsed_s` after midnight (a few early requests would project nonsense), unless already out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from monitor.daily_reset import RESET_TIMEZONE, next_daily_reset
from monitor.taxonomy.classes import QuotaWindow
from monitor.taxonomy.rpc_details import window_of

UNLIMITED_SENTINEL = 2.0**62  # limits this large mean "no fixed value" (Google writes int64 max for unlimited)
MIN_PROJECTION_ELAPSED_S = 900.0


class SeriesKind(StrEnum):
    RATE_USAGE = "rate_usage"  # quota/rate/net_usage (DELTA): newest minute and the sum since the reset
    ALLOCATION_USAGE = "allocation_usage"  # quota/allocation/usage (GAUGE), no limit_name
    LIMIT = "limit"  # quota/limit (GAUGE)
    EXCEEDED = "exceeded"  # quota/exceeded (GAUGE BOOL): value 1.0 or 0.0


class Window(StrEnum):
    """The `window` label value of a reading."""

    MINUTE = "minute"
    DAY = "day"
    UNKNOWN = "unknown"
    ALLOCATION = "allocation"


class LimitStatus(StrEnum):
    FIXED = "fixed"
    DYNAMIC = "dynamic"
    BLOCKED = "blocked"


class QuotaKey(NamedTuple):
    project: str
    service: str
    location: str
    quota_metric: str
    limit_name: str


@dataclass(frozen=True, slots=True)
class QuotaSeries:
    """One fetched series. `value`: newest minute's usage, allocation, limit, or 1.0/0.0 for exceeded."""

    kind: SeriesKind
    project: str
    service: str
    quota_metric: str
    limit_name: str = ""
    location: str = "global"
    value: float = 0.0
    today: float | None = None  # RATE_USAGE only: the sum since the last reset
    at: datetime | None = None  # end time of the newest point
    unit: str = ""

    @property
    def base(self) -> tuple[str, str, str, str]:
        return (self.project, self.service, self.location, self.quota_metric)


@dataclass(frozen=True, slots=True)
class QuotaReading:
    """One limit (or one usage without a limit) with everything a user needs to act before the 429s."""

    project: str
    service: str
    location: str
    quota_metric: str
    limit_name: str
    window: Window
    usage: float
    limit: float | None  # None: no limit series (dynamic)
    status: LimitStatus
    exceeded: bool = False
    usage_today: float | None = None  # rate quotas: the usage since the last reset, whatever the limit's window
    as_of: datetime | None = None  # end time of the newest usage point (Cloud Monitoring lags a few minutes)
    reset_at: datetime | None = None  # per-day: the next midnight America/Los_Angeles (UTC)
    seconds_until_reset: float | None = None
    projected_usage_at_reset: float | None = None
    projected_exhaustion: bool = False
    projected_exhaustion_at: datetime | None = None

    @property
    def key(self) -> QuotaKey:
        return QuotaKey(self.project, self.service, self.location, self.quota_metric, self.limit_name)

    @property
    def utilization(self) -> float | None:
        """usage / limit for a fixed limit; None for dynamic and blocked limits (never 0% or 100%)."""
        if self.status is not LimitStatus.FIXED or self.limit is None:
            return None
        return self.usage / self.limit

    @property
    def dynamic(self) -> bool:
        return self.status is LimitStatus.DYNAMIC

    @property
    def blocked(self) -> bool:
        return self.status is LimitStatus.BLOCKED

    def to_dict(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "project": self.project,
            "service": self.service,
            "location": self.location,
            "quota_metric": self.quota_metric,
            "limit_name": self.limit_name,
            "window": self.window.value,
            "usage": self.usage,
            "limit": self.limit,
            "status": self.status.value,
            "utilization": self.utilization,
            "exceeded": self.exceeded,
            "usage_today": self.usage_today,
            "as_of": iso(self.as_of),
            "reset_at": iso(self.reset_at),
            "seconds_until_reset": self.seconds_until_reset,
            "projected_usage_at_reset": self.projected_usage_at_reset,
            "projected_exhaustion": self.projected_exhaustion,
            "projected_exhaustion_at": iso(self.projected_exhaustion_at),
        }


def last_daily_reset(now: datetime, timezone: str = RESET_TIMEZONE) -> datetime:
    """The latest local midnight in `timezone` at or before `now` (aware), in `now`'s timezone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(now.tzinfo)


def window_for(limit_name: str, quota_metric: str, unit: str = "") -> Window:
    """Per-minute or per-day from the names: the limit name first, then the quota metric, then the unit."""
    for name in (limit_name, quota_metric):
        found = window_of(name)
        if found is QuotaWindow.DAY:
            return Window.DAY
        if found is QuotaWindow.MINUTE:
            return Window.MINUTE
    compact = unit.replace(" ", "").lower()
    if "/d/" in compact or compact.endswith("/d"):
        return Window.DAY
    if "/min" in compact:
        return Window.MINUTE
    return Window.UNKNOWN


def limit_status(limit: float | None) -> LimitStatus:
    if limit is None or not math.isfinite(limit) or limit < 0 or limit >= UNLIMITED_SENTINEL:
        return LimitStatus.DYNAMIC
    return LimitStatus.BLOCKED if limit == 0 else LimitStatus.FIXED


def project_day(
    usage: float, limit: float, now: datetime, *, timezone: str = RESET_TIMEZONE, min_elapsed_s: float = 0.0
) -> tuple[float | None, bool, datetime | None]:
    """(usage at the next reset at the pace since the last one, runs out before the reset?, when)."""
    start, reset = last_daily_reset(now, timezone), next_daily_reset(now, timezone)
    elapsed, remaining = (now - start).total_seconds(), (reset - now).total_seconds()
    pace = usage / elapsed if elapsed >= max(min_elapsed_s, 1.0) else None
    projected = usage + pace * remaining if pace is not None else None
    if usage >= limit:  # already out: "before the reset" is now
        return (usage if projected is None else projected, True, now)
    if pace is None or projected is None or pace <= 0 or projected < limit:
        return (projected, False, None)
    return (projected, True, now + timedelta(seconds=(limit - usage) / pace))


def join(
    series: Iterable[QuotaSeries],
    *,
    now: datetime,
    timezone: str = RESET_TIMEZONE,
    min_projection_elapsed_s: float = MIN_PROJECTION_ELAPSED_S,
) -> list[QuotaReading]:
    """One reading per limit, and one per usage without any limit (dynamic); sorted by key."""
    rate: dict[tuple[str, str, str, str], QuotaSeries] = {}
    allocation: dict[tuple[str, str, str, str], QuotaSeries] = {}
    limits: dict[QuotaKey, QuotaSeries] = {}
    exceeded: set[tuple[str, str, str, str, str]] = set()
    for row in series:
        key = QuotaKey(*row.base, row.limit_name)
        if row.kind is SeriesKind.RATE_USAGE:
            rate[row.base] = _merge_usage(rate.get(row.base), row)
        elif row.kind is SeriesKind.ALLOCATION_USAGE:
            allocation[row.base] = _merge_usage(allocation.get(row.base), row)
        elif row.kind is SeriesKind.LIMIT:
            if key not in limits or row.value < limits[key].value:  # several buckets: the most restrictive
                limits[key] = row
        elif row.value:
            exceeded.add(key)
    reset = next_daily_reset(now, timezone)
    readings: list[QuotaReading] = []
    joined: set[tuple[str, str, str, str]] = {key[:4] for key in limits}  # usage with a limit, maybe elsewhere
    for key, row in limits.items():
        base = (key.project, key.service, key.location, key.quota_metric)
        usage_row, window = allocation.get(base), Window.ALLOCATION
        if usage_row is None:
            window = window_for(key.limit_name, key.quota_metric, row.unit)
            usage_row = rate.get(base)
            if usage_row is None and key.location == "global":  # a global limit counts usage everywhere
                same = [b for b in rate if (b[0], b[1], b[3]) == (base[0], base[1], base[3])]
                joined.update(same)
                for b in same:
                    usage_row = _merge_usage(usage_row, rate[b])
        hit = key in exceeded or QuotaKey(*base, "") in exceeded
        readings.append(
            _reading(key, window, row.value, usage_row, hit, now, reset, timezone, min_projection_elapsed_s)
        )
    for source, fixed_window in ((allocation, Window.ALLOCATION), (rate, None)):
        for base, usage_row in source.items():
            if base in joined:
                continue
            window = fixed_window or window_for("", base[3], usage_row.unit)
            key = QuotaKey(*base, "")
            readings.append(_reading(key, window, None, usage_row, key in exceeded, now, reset, timezone, 0.0))
    return sorted(readings, key=lambda r: r.key)


def _merge_usage(old: QuotaSeries | None, new: QuotaSeries) -> QuotaSeries:
    if old is None:
        return new
    today = None if old.today is None and new.today is None else (old.today or 0.0) + (new.today or 0.0)
    stamps = [t for t in (old.at, new.at) if t is not None]
    at = max(stamps) if stamps else None
    return replace(old, limit_name="", value=old.value + new.value, today=today, at=at, unit=old.unit or new.unit)


def _reading(
    key: QuotaKey,
    window: Window,
    limit: float | None,
    usage_row: QuotaSeries | None,
    exceeded: bool,
    now: datetime,
    reset: datetime,
    timezone: str,
    min_elapsed_s: float,
) -> QuotaReading:
    status = limit_status(limit)
    today = usage_row.today if usage_row is not None else (0.0 if window is not Window.ALLOCATION else None)
    minute = usage_row.value if usage_row is not None else 0.0
    usage = (today or 0.0) if window is Window.DAY else minute
    reading = QuotaReading(
        *key,
        window=window,
        usage=usage,
        limit=limit,
        status=status,
        exceeded=exceeded,
        usage_today=today,
        as_of=usage_row.at if usage_row is not None else None,
    )
    if window is not Window.DAY:
        return reading
    projected, runs_out, when = (None, False, None)
    if status is LimitStatus.FIXED and limit is not None:
        projected, runs_out, when = project_day(usage, limit, now, timezone=timezone, min_elapsed_s=min_elapsed_s)
    return replace(
        reading,
        reset_at=reset,
        seconds_until_reset=(reset - now).total_seconds(),
        projected_usage_at_reset=projected,
        projected_exhaustion=runs_out,
        projected_exhaustion_at=when,
    )
