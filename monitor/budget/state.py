"""The budget's memory, pure: spend per period, the thresholds already told, the burn-rate samples.

`BudgetState.observe(now, totals)` takes the spend of the current periods and answers the new state and the
notices due: each threshold once per period (a jump over several tells the highest, once), the burn-rate
projection once per period, and a reset notice when a period that had notices ends. Saved by the job after
every change, so a restart neither re-notifies nor forgets an exhausted budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeGuard

from monitor.budget.periods import KINDS, Kind, Period, period

STATE_VERSION = 1
NoticeKind = Literal["threshold", "burn", "reset"]
# A month's pace is its month-to-date average, trusted once a whole day is in it: an hour's pace extrapolated
# over a month would cry wolf every busy morning.
MONTH_PACE_AFTER_S = 86_400.0


@dataclass(frozen=True, slots=True)
class Limits:
    """What the budget is: USD per period (None: no budget for it), thresholds as fractions, the day's pace."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    thresholds: tuple[float, ...] = (0.5, 0.8, 1.0)
    burn_window_s: float = 3600.0
    timezone: str = "America/Los_Angeles"

    def limit(self, kind: Kind) -> float | None:
        return self.daily_usd if kind == "day" else self.monthly_usd

    def kinds(self) -> tuple[Kind, ...]:
        return tuple(kind for kind in KINDS if self.limit(kind) is not None)


@dataclass(frozen=True, slots=True)
class PeriodState:
    id: str
    spent_usd: float = 0.0
    notified: tuple[float, ...] = ()  # thresholds told this period
    burn_notified: bool = False
    samples: tuple[tuple[float, float], ...] = ()  # (epoch seconds, spent): the day's burn-rate window


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    period: Period
    spent_usd: float
    limit_usd: float
    threshold: float | None = None  # threshold notices; reset: the highest told in the period that ended
    exhaustion_at: datetime | None = None  # burn notices: when the budget runs out at this pace
    ended: str | None = None  # reset notices: the id of the period that ended


@dataclass(frozen=True, slots=True)
class Status:
    """One period's figures now, for the gauges and /v1/state."""

    period: Period
    spent_usd: float
    limit_usd: float
    exhaustion_at: datetime | None  # None: not running out at this pace (or too early to say)

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.limit_usd


@dataclass(frozen=True, slots=True)
class BudgetState:
    periods: Mapping[Kind, PeriodState] = field(default_factory=dict)

    def observe(
        self, now: datetime, totals: Mapping[Kind, float] | None, limits: Limits
    ) -> tuple[BudgetState, list[Notice]]:
        """Roll over to the current periods, then take `totals` (None: the spend could not be read: only the
        rollover happens, so a period still ends on time while the source is down)."""
        notices: list[Notice] = []
        periods = dict(self.periods)
        for kind in limits.kinds():
            current = period(kind, now, limits.timezone)
            limit = limits.limit(kind)
            assert limit is not None
            state = periods.get(kind)
            if state is None or state.id != current.id:
                if state is not None and (state.notified or state.burn_notified):
                    top = max(state.notified, default=None)  # the reset goes where the highest notice went
                    notices.append(Notice("reset", current, 0.0, limit, threshold=top, ended=state.id))
                state = PeriodState(current.id)
            if totals is not None and kind in totals:
                state, due = _take(state, current, now, max(totals[kind], 0.0), limit, limits)
                notices.extend(due)
            periods[kind] = state
        for kind in set(periods) - set(limits.kinds()):
            del periods[kind]  # a budget taken out of the config
        return BudgetState(periods), notices

    def status(self, kind: Kind, now: datetime, limits: Limits) -> Status | None:
        limit = limits.limit(kind)
        state = self.periods.get(kind)
        current = period(kind, now, limits.timezone)
        if limit is None:
            return None
        if state is None or state.id != current.id:
            return Status(current, 0.0, limit, None)
        return Status(current, state.spent_usd, limit, projection(state, current, now, limit, limits))

    def exhausted(self, now: datetime, limits: Limits) -> list[Status]:
        """The current periods whose budget is spent (what the action holds on to)."""
        found = [self.status(kind, now, limits) for kind in limits.kinds()]
        return [status for status in found if status is not None and status.exhausted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "periods": {
                kind: {
                    "id": s.id,
                    "spent_usd": s.spent_usd,
                    "notified": list(s.notified),
                    "burn_notified": s.burn_notified,
                    "samples": [list(sample) for sample in s.samples],
                }
                for kind, s in self.periods.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any) -> BudgetState:
        """Strict: a file that does not parse stops the start (ValueError), never re-arms every threshold."""
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"version: expected {STATE_VERSION}")
        raw = data.get("periods")
        if not isinstance(raw, dict):
            raise ValueError("periods: expected an object")
        periods: dict[Kind, PeriodState] = {}
        for kind in KINDS:
            if kind in raw:
                periods[kind] = _period_state(raw[kind], f"periods.{kind}")
        return cls(periods)


def _take(
    state: PeriodState, current: Period, now: datetime, spent: float, limit: float, limits: Limits
) -> tuple[PeriodState, list[Notice]]:
    notices: list[Notice] = []
    ratio = spent / limit
    crossed = [t for t in limits.thresholds if ratio >= t and t not in state.notified]
    if crossed:
        notices.append(Notice("threshold", current, spent, limit, threshold=max(crossed)))
    epoch = now.timestamp()
    samples = _trim((*state.samples, (epoch, spent)), epoch - limits.burn_window_s) if current.kind == "day" else ()
    state = replace(state, spent_usd=spent, notified=(*state.notified, *crossed), samples=samples)
    runs_out = projection(state, current, now, limit, limits)
    if not state.burn_notified and spent < limit and runs_out is not None and runs_out < current.end:
        notices.append(Notice("burn", current, spent, limit, exhaustion_at=runs_out))
        state = replace(state, burn_notified=True)
    return state, notices


def projection(state: PeriodState, current: Period, now: datetime, limit: float, limits: Limits) -> datetime | None:
    """When the budget runs out at the current pace: the day's over `burn_window_s` (once half of it is seen),
    the month's since it began (once a day is in). None when it is not running out, or too early to say."""
    spent = state.spent_usd
    if spent >= limit:
        return now
    if current.kind == "day":
        if not state.samples:
            return None
        since, base = state.samples[0]
        span = now.timestamp() - since
        if span < limits.burn_window_s / 2:
            return None
        rate = (spent - base) / span
    else:
        elapsed = current.elapsed_s(now)
        if elapsed < MONTH_PACE_AFTER_S:
            return None
        rate = spent / elapsed
    if rate <= 0:
        return None
    return now + timedelta(seconds=(limit - spent) / rate)


def _trim(samples: tuple[tuple[float, float], ...], cutoff: float) -> tuple[tuple[float, float], ...]:
    """The samples inside the window, plus the newest one before it, so the pace spans the whole window."""
    inside = [i for i, (t, _) in enumerate(samples) if t >= cutoff]
    first = max(inside[0] - 1, 0) if inside else max(len(samples) - 1, 0)
    return samples[first:]


def _period_state(data: Any, where: str) -> PeriodState:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object")
    ident, spent, notified = data.get("id"), data.get("spent_usd"), data.get("notified")
    burn, samples = data.get("burn_notified"), data.get("samples")
    if not isinstance(ident, str) or not _number(spent) or not isinstance(burn, bool):
        raise ValueError(f"{where}: id, spent_usd and burn_notified are required")
    if not isinstance(notified, list) or not all(_number(t) for t in notified):
        raise ValueError(f"{where}.notified: expected a list of numbers")
    if not isinstance(samples, list) or not all(
        isinstance(s, list) and len(s) == 2 and all(_number(v) for v in s) for s in samples
    ):
        raise ValueError(f"{where}.samples: expected a list of [epoch, usd] pairs")
    return PeriodState(
        ident, float(spent), tuple(float(t) for t in notified), burn, tuple((float(a), float(b)) for a, b in samples)
    )


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
