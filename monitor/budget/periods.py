"""The budget's periods: the Pacific day (the quota's day, reset at midnight America/Los_Angeles) and month.

Pure: every function takes the time. Boundaries are built from local dates and converted with zoneinfo, so a
DST day is 23 or 25 hours long and still starts at local midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from monitor.daily_reset import RESET_TIMEZONE

Kind = Literal["day", "month"]
KINDS: tuple[Kind, ...] = ("day", "month")
WORD = {"day": "daily", "month": "monthly"}  # the period label of the metrics and the words of the notices


@dataclass(frozen=True, slots=True)
class Period:
    """One budget period: `id` is its local date ("2026-11-27") or month ("2026-11"); `start`/`end` are UTC."""

    kind: Kind
    id: str
    start: datetime
    end: datetime

    def elapsed_s(self, now: datetime) -> float:
        return max((now - self.start).total_seconds(), 0.0)


def period(kind: Kind, now: datetime, timezone: str = RESET_TIMEZONE) -> Period:
    """The period of `kind` holding `now` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    if kind == "day":
        start_date = local.date()
        end_date = start_date + timedelta(days=1)
        ident = start_date.isoformat()
    else:
        start_date = local.date().replace(day=1)
        end_date = (start_date + timedelta(days=32)).replace(day=1)
        ident = start_date.strftime("%Y-%m")
    start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=zone).astimezone(UTC)
    end = datetime(end_date.year, end_date.month, end_date.day, tzinfo=zone).astimezone(UTC)
    return Period(kind, ident, start, end)


def local_text(moment: datetime, timezone: str = RESET_TIMEZONE, *, date: bool = False) -> str:
    """How a notice names a time: "15:40 PST", or "Nov 28 15:40 PST" with `date`."""
    local = moment.astimezone(ZoneInfo(timezone))
    return local.strftime("%b %d %H:%M %Z" if date else "%H:%M %Z")
