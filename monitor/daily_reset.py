"""When a Gemini per-day quota comes back: midnight in America/Los_Angeles (DST-aware)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

RESET_TIMEZONE = "America/Los_Angeles"


def next_daily_reset(now: datetime, timezone: str = RESET_TIMEZONE) -> datetime:
    """The next local midnight in `timezone` after `now` (an aware datetime), returned in UTC-aware form."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    # Build the next local midnight from the date, then let zoneinfo pick that day's UTC offset.
    tomorrow = (local + timedelta(days=1)).date()
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone)
    return midnight.astimezone(now.tzinfo)
