"""The budget's pure parts: Pacific periods across DST and months, thresholds once per period, the pace's
projection, the state file's strictness, and the `[budget]` section's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.budget import BudgetState, Limits, budget_config_from_mapping, period
from monitor.budget.notices import notification
from monitor.daemon.config import ConfigErrors, from_mapping
from monitor.errors import ConfigError
from monitor.notify.base import Event

LIMITS = Limits(daily_usd=100.0, monthly_usd=2000.0, burn_window_s=3600.0)


def pacific(year: int, month: int, day: int, hour: float) -> datetime:
    """A time given in Pacific wall-clock hours of a November day (PST, UTC-8)."""
    return datetime(year, month, day, tzinfo=UTC) + timedelta(hours=hour + 8)


@pytest.mark.parametrize(
    ("now", "start", "hours"),
    [
        (datetime(2026, 3, 8, 12, tzinfo=UTC), datetime(2026, 3, 8, 8, tzinfo=UTC), 23),  # spring forward
        (datetime(2026, 11, 1, 12, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC), 25),  # fall back
        (datetime(2026, 11, 2, 7, 59, tzinfo=UTC), datetime(2026, 11, 1, 7, tzinfo=UTC), 25),  # 23:59 PST Nov 1
        (datetime(2026, 7, 4, 6, 59, tzinfo=UTC), datetime(2026, 7, 3, 7, tzinfo=UTC), 24),  # 23:59 PDT
    ],
)
def test_the_day_is_the_pacific_day_across_dst(now: datetime, start: datetime, hours: int) -> None:
    day = period("day", now)
    assert (day.start, (day.end - day.start).total_seconds() / 3600) == (start, hours)
    assert day.id == (start - timedelta(hours=7)).date().isoformat()  # the local date
    assert period("day", day.end).start == day.end


def test_the_month_starts_at_pacific_midnight_of_the_first() -> None:
    november = period("month", datetime(2026, 11, 15, tzinfo=UTC))
    assert (november.id, november.start, november.end) == (
        "2026-11",
        datetime(2026, 11, 1, 7, tzinfo=UTC),  # PDT until Nov 1 02:00
        datetime(2026, 12, 1, 8, tzinfo=UTC),  # PST
    )
    assert period("month", datetime(2026, 12, 1, 7, 59, tzinfo=UTC)).id == "2026-11"  # Nov 30 23:59 PST
    assert period("month", datetime(2026, 12, 31, 23, tzinfo=UTC)).end == datetime(2027, 1, 1, 8, tzinfo=UTC)


def test_each_threshold_is_told_once_per_period_and_a_jump_tells_the_highest() -> None:
    state = BudgetState()
    state, due = state.observe(pacific(2026, 11, 27, 8), {"day": 10.0, "month": 10.0}, LIMITS)
    assert due == []
    state, due = state.observe(pacific(2026, 11, 27, 8.1), {"day": 85.0, "month": 85.0}, LIMITS)
    assert [(n.kind, n.period.kind, n.threshold) for n in due] == [("threshold", "day", 0.8)]
    state, due = state.observe(pacific(2026, 11, 27, 8.2), {"day": 90.0, "month": 90.0}, LIMITS)
    assert due == []
    state, due = state.observe(pacific(2026, 11, 27, 8.3), {"day": 130.0, "month": 130.0}, LIMITS)
    assert [n.threshold for n in due] == [1.0]
    assert [s.period.kind for s in state.exhausted(pacific(2026, 11, 27, 9), LIMITS)] == ["day"]
    # A failed read: the periods still roll over at Pacific midnight, with one reset notice for the day.
    state, due = state.observe(pacific(2026, 11, 28, 0.01), None, LIMITS)
    assert [(n.kind, n.ended, n.threshold) for n in due] == [("reset", "2026-11-27", 1.0)]
    assert state.exhausted(pacific(2026, 11, 28, 0.02), LIMITS) == []
    assert state.periods["month"].spent_usd == 130.0  # the month goes on
    state, due = state.observe(pacific(2026, 11, 28, 1), {"day": 60.0, "month": 190.0}, LIMITS)
    assert [n.threshold for n in due] == [0.5]  # re-armed


def test_the_pace_projects_when_the_day_runs_out() -> None:
    state = BudgetState()
    for minutes, spent in ((0, 0.0), (20, 10.0)):
        state, due = state.observe(pacific(2026, 11, 27, 9 + minutes / 60), {"day": spent}, LIMITS)
        assert not [n for n in due if n.kind == "burn"]  # under half the window seen: too early to say
    state, due = state.observe(pacific(2026, 11, 27, 9.5), {"day": 15.0}, LIMITS)
    (burn,) = [n for n in due if n.kind == "burn"]
    assert burn.exhaustion_at == pacific(2026, 11, 27, 9.5) + timedelta(hours=85 / 30)  # $30/h, $85 left
    state, due = state.observe(pacific(2026, 11, 27, 10), {"day": 20.0}, LIMITS)
    assert due == []  # told once
    status = state.status("day", pacific(2026, 11, 27, 10), LIMITS)
    assert status is not None and status.exhaustion_at is not None
    # Slow spend that ends after midnight: exported, never told.
    slow = BudgetState()
    for hour, spent in ((20, 0.0), (21, 5.0)):
        slow, due = slow.observe(pacific(2026, 11, 27, hour), {"day": spent}, LIMITS)
    assert not due and slow.status("day", pacific(2026, 11, 27, 21), LIMITS) is not None


def test_the_month_pace_is_month_to_date_after_a_day() -> None:
    limits = Limits(monthly_usd=300.0)
    state, due = BudgetState().observe(datetime(2026, 11, 1, 20, tzinfo=UTC), {"month": 50.0}, limits)
    assert due == []  # 13 hours in: too early
    state, due = state.observe(datetime(2026, 11, 3, 7, tzinfo=UTC), {"month": 100.0}, limits)
    (burn,) = due
    assert burn.kind == "burn" and burn.exhaustion_at == datetime(2026, 11, 7, 7, tzinfo=UTC)  # $50/day


def test_the_state_round_trips_and_refuses_garbage() -> None:
    state, _ = BudgetState().observe(pacific(2026, 11, 27, 9), {"day": 55.0, "month": 55.0}, LIMITS)
    assert BudgetState.from_dict(state.to_dict()) == state
    for bad in ({}, {"version": 1}, {"version": 1, "periods": {"day": {"id": "x"}}}, {"version": 2, "periods": {}}):
        with pytest.raises(ValueError):
            BudgetState.from_dict(bad)


def test_notices_in_words() -> None:
    state, _ = BudgetState().observe(pacific(2026, 11, 27, 8), {"day": 0.0}, LIMITS)
    state, due = state.observe(pacific(2026, 11, 27, 9), {"day": 120.0}, LIMITS)
    (exhausted,) = due
    note = notification(
        exhausted,
        project="p",
        action="stop",
        timezone=LIMITS.timezone,
        environment="prod",
        at=pacific(2026, 11, 27, 9),
        links={},
    )
    assert (note.event, note.severity, note.rule) == (Event.FIRING, "critical", "budget-daily")
    assert note.dedup_key == "nbmon/prod/budget/p/daily"
    assert "generation-allowed = false" in note.summary and note.figures["ratio"] == pytest.approx(1.2)
    _, (reset,) = state.observe(pacific(2026, 11, 28, 0.5), {"day": 0.0}, LIMITS)
    resolved = notification(
        reset,
        project="p",
        action="stop",
        timezone=LIMITS.timezone,
        environment="prod",
        at=pacific(2026, 11, 28, 0.5),
        links={},
    )
    assert (resolved.event, resolved.severity, resolved.dedup_key) == (Event.RESOLVED, "critical", note.dedup_key)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({}, "budget.daily_usd"),
        ({"daily_usd": -1}, "budget.daily_usd"),
        ({"daily_usd": True}, "budget.daily_usd"),
        ({"daily_usd": 200, "monthly_usd": 100}, "budget.daily_usd"),
        ({"monthly_usd": 10, "thresholds": []}, "budget.thresholds"),
        ({"monthly_usd": 10, "thresholds": [0.5, 0.5]}, "budget.thresholds"),
        ({"monthly_usd": 10, "action": "panic"}, "budget.action"),
        ({"monthly_usd": 10, "source": "guess"}, "budget.source"),
        ({"monthly_usd": 10, "burn_rate_window": "soon"}, "budget.burn_rate_window"),
        ({"monthly_usd": 10, "interval": 0}, "budget.interval"),
        ({"monthly_usd": 10, "timezone": "Mars/Olympus"}, "budget.timezone"),
        ({"monthly_usd": 10, "dayly_usd": 1}, "budget.dayly_usd"),
    ],
)
def test_budget_config_errors_name_their_key(table: dict[str, Any], key: str) -> None:
    errors: list[ConfigError] = []
    assert budget_config_from_mapping(table, errors) is None
    assert key in [e.key for e in errors], errors


def test_the_daemon_config_reads_budget_and_checks_its_source(tmp_path: Any) -> None:
    config = from_mapping({"budget": {"daily_usd": 50, "monthly_usd": 1000, "action": "degraded"}})
    assert config.budget is not None and config.budget.limits.thresholds == (0.5, 0.8, 1.0)
    assert config.budget.resolved_source(config.source_kind, config.fleet.redis_url) == "local"
    fleet = from_mapping({"budget": {"daily_usd": 5}, "fleet": {"redis_url": "redis://127.0.0.1:1/0"}})
    assert (
        fleet.budget is not None and fleet.budget.resolved_source(fleet.source_kind, fleet.fleet.redis_url) == "redis"
    )
    with pytest.raises(ConfigErrors) as caught:
        from_mapping({"budget": {"daily_usd": 5, "source": "promql"}})
    assert [e.key for e in caught.value.errors] == ["budget.source"]
    with pytest.raises(ConfigErrors) as caught:
        from_mapping({"budget": {"daily_usd": 5, "source": "redis"}})
    assert [e.key for e in caught.value.errors] == ["budget.source"]
