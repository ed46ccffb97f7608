"""Where the budget reads the spend: the fleet's PromQL, a Redis counter the sidecars share, or this sidecar.

Every source answers the USD spent in the current periods, or raises `SpendError` (the job then keeps the last
figures: a dead source never reads as "nothing spent", which would lift a hard stop).

- `PromQLSpend`: `sum(increase(nbmon_estimated_cost_usd_total[<since the day began>]))`, fleet-wide. The month is
  the sum of its completed days (each closed once, at the first check of the next day, and kept in the budget state)
  and today's: a month never needs more of Prometheus's retention than a day (and the days the daemon was down).
- `CounterSpend`: the cost counters this sidecar reads (one per scrape target, or its own proxy's registry) turned
  into increases per target and series, added to a `LocalLedger` (this sidecar alone) or a `RedisLedger` (each
  sidecar's cumulative amount per period in a hash field of its own: every sidecar sets its app's spend, each
  reads the fleet's sum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from monitor.budget.periods import Kind, Period, period
from monitor.daily_reset import RESET_TIMEZONE
from monitor.fleet.settings import FleetSettings
from monitor.signals import CounterSource, Reading

if TYPE_CHECKING:
    import redis

    from monitor.sources import PromQLSource

COST_METRIC = "nbmon_estimated_cost_usd_total"  # the shim's and the proxy's cost counter (docs/metrics.md)
PROMQL_QUERY = f"sum(increase({COST_METRIC}[{{window}}]))"
Periods = Mapping[Kind, Period]
_KEY_GRACE = timedelta(days=2)  # a period's Redis key outlives it, for a late reader and for debugging


class SpendError(Exception):
    """The spend could not be read; `reason` is a short label (the metrics' `reason`)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class SpendSource(Protocol):
    name: str

    def totals(self, periods: Periods, now: datetime) -> dict[Kind, float]: ...  # SpendError
    def saved(self) -> dict[str, Any]: ...  # what the budget state file keeps for this source
    def restore(self, saved: Mapping[str, Any]) -> None: ...  # ValueError: not a saved() document
    def close(self) -> None: ...


class PromQLSpend:
    """The fleet's spend from a Prometheus-compatible API: today's `increase()`, and the month as its closed days
    plus today. `days` (local date -> USD) holds the current month's closed days, saved in the budget state."""

    name = "promql"

    def __init__(self, source: PromQLSource, *, timezone: str = RESET_TIMEZONE) -> None:
        self._source = source  # built with query_template=PROMQL_QUERY
        self._timezone = timezone
        self.days: dict[str, float] = {}

    def totals(self, periods: Periods, now: datetime) -> dict[Kind, float]:
        day = period("day", now, self._timezone)
        today = self._increase(day.elapsed_s(now))
        found: dict[Kind, float] = {}
        if "day" in periods:
            found["day"] = today
        if "month" in periods:
            found["month"] = self._closed_days(periods["month"], day, now, today) + today
        return found

    def saved(self) -> dict[str, Any]:
        return {"promql": {"days": dict(self.days)}}

    def restore(self, saved: Mapping[str, Any]) -> None:
        document = saved.get("promql")
        if document is None:
            return
        days = document.get("days") if isinstance(document, Mapping) else None
        if not isinstance(days, Mapping) or not all(_finite(v) and v >= 0 for v in days.values()):
            raise ValueError("promql.days: expected an object of local dates to USD")
        self.days = {str(k): float(v) for k, v in days.items()}

    def close(self) -> None:
        self._source.close()

    def _increase(self, seconds: float) -> float:
        window = max(int(seconds) + 1, 1)  # whole seconds: a valid PromQL duration
        counts, error = self._source.counts(float(window))
        if error is not None:
            raise SpendError("query", error)
        total = sum(counts.values())
        if not math.isfinite(total):
            raise SpendError("query", f"not a finite amount: {total}")
        return total

    def _closed_days(self, month: Period, day: Period, now: datetime, today: float) -> float:
        """The month's completed days. A day not closed yet (the first check after its midnight, or days the daemon
        was down) is closed with one query since its start, less today and the days closed after it."""
        zone = ZoneInfo(self._timezone)
        first, current = date.fromisoformat(month.id + "-01"), date.fromisoformat(day.id)
        dates = [(first + timedelta(days=n)).isoformat() for n in range((current - first).days)]
        missing = [d for d in dates if d not in self.days]
        days = {d: usd for d, usd in self.days.items() if d in dates}  # the month's: older ones are let go
        if missing:
            earliest = date.fromisoformat(missing[0])
            start = period(
                "day", datetime(earliest.year, earliest.month, earliest.day, 12, tzinfo=zone), self._timezone
            )
            since = self._increase((now - start.start).total_seconds())  # SpendError: nothing is closed
            known = sum(usd for d, usd in days.items() if d > missing[0])
            days.update(dict.fromkeys(missing, 0.0))
            days[missing[0]] = max(since - today - known, 0.0)  # the days not seen, together
        self.days = days
        return sum(days.values())


class Ledger(Protocol):
    def add(self, usd: float, periods: Periods, now: datetime) -> None: ...  # SpendError
    def totals(self, periods: Periods) -> dict[Kind, float]: ...  # SpendError


class LocalLedger:
    """This sidecar's spend per period, kept in the budget's state file."""

    def __init__(self, amounts: Mapping[str, Any] | None = None) -> None:
        self.amounts: dict[str, tuple[str, float]] = _amounts(amounts or {}, "ledger")  # kind -> (period id, usd)

    def add(self, usd: float, periods: Periods, now: datetime) -> None:
        self.amounts = _added(self.amounts, usd, periods)

    def totals(self, periods: Periods) -> dict[Kind, float]:
        return {kind: _amount(self.amounts, current) for kind, current in periods.items()}

    def to_dict(self) -> dict[str, Any]:
        return {kind: [ident, usd] for kind, (ident, usd) in self.amounts.items()}

    def restore(self, saved: Mapping[str, Any]) -> None:
        self.amounts = _amounts(saved, "ledger")


class RedisLedger:
    """The fleet's spend in Redis: hashes `nbmon:{project}:budget:day:2026-11-27` and `...:budget:month:2026-11`,
    one field per sidecar (`holder`) holding its cumulative USD for the period; the fleet's spend is their sum.

    Setting a cumulative amount is idempotent: a write whose reply was lost, or repeated after a restart from the
    saved state, sets the same figure again instead of adding it twice. `holder` is saved in the budget state, so
    a restarted sidecar overwrites its own field.
    """

    def __init__(self, client: redis.Redis, settings: FleetSettings, *, holder: str | None = None) -> None:
        from monitor.fleet.lease import holder_id

        self._client, self._settings = client, settings
        self.holder = holder or holder_id()
        self.amounts: dict[str, tuple[str, float]] = {}  # kind -> (period id, this sidecar's cumulative usd)

    def key(self, current: Period) -> str:
        return self._settings.key("budget", current.kind, current.id)

    def add(self, usd: float, periods: Periods, now: datetime) -> None:
        import redis

        amounts = _added(self.amounts, usd, periods)
        try:
            with self._client.pipeline(transaction=True) as pipe:  # both periods or neither
                for kind, current in periods.items():
                    pipe.hset(self.key(current), self.holder, repr(amounts[kind][1]))
                    # Relative to the caller's clock (injected), not Redis's: EXPIREAT in its past deletes the key.
                    pipe.expire(self.key(current), max(int((current.end + _KEY_GRACE - now).total_seconds()), 1))
                pipe.execute()
        except redis.RedisError as error:
            raise SpendError("redis", type(error).__name__) from error
        self.amounts = amounts  # only once Redis has it: a failed write is retried with the same figures

    def totals(self, periods: Periods) -> dict[Kind, float]:
        import redis

        kinds = list(periods)
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for kind in kinds:
                    pipe.hvals(self.key(periods[kind]))
                fields = pipe.execute()
        except redis.RedisError as error:
            raise SpendError("redis", type(error).__name__) from error
        found: dict[Kind, float] = {}
        for kind, values in zip(kinds, fields, strict=True):
            try:
                total = sum(float(value) for value in values)
            except ValueError as error:
                raise SpendError("redis", "a field is not a number") from error
            if not math.isfinite(total):
                raise SpendError("redis", f"not a finite amount: {total}")
            found[kind] = total
        return found

    def to_dict(self) -> dict[str, Any]:
        return {"holder": self.holder, "amounts": {kind: [ident, usd] for kind, (ident, usd) in self.amounts.items()}}

    def restore(self, saved: Mapping[str, Any]) -> None:
        holder = saved.get("holder")
        if not isinstance(holder, str) or not holder:
            raise ValueError("ledger.holder: expected this sidecar's id")
        self.holder = holder
        self.amounts = _amounts(saved.get("amounts") or {}, "ledger.amounts")

    def close(self) -> None:
        self._client.close()


def _amounts(raw: Mapping[str, Any], where: str) -> dict[str, tuple[str, float]]:
    amounts: dict[str, tuple[str, float]] = {}
    for kind, value in raw.items():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and _finite(value[1])):
            raise ValueError(f"{where}.{kind}: expected [period id, usd]")
        amounts[str(kind)] = (value[0], float(value[1]))
    return amounts


def _amount(amounts: Mapping[str, tuple[str, float]], current: Period) -> float:
    ident, amount = amounts.get(current.kind, (current.id, 0.0))
    return amount if ident == current.id else 0.0


def _added(amounts: Mapping[str, tuple[str, float]], usd: float, periods: Periods) -> dict[str, tuple[str, float]]:
    added = dict(amounts)
    for kind, current in periods.items():
        added[kind] = (current.id, _amount(amounts, current) + usd)
    return added


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class CounterSpend:
    """The cost counters this sidecar reads, as increases added to a ledger.

    One counter per scrape target (or the proxy's registry): a sum over targets is not comparable with the previous
    one when a target comes or goes, so `last` is the last value per counter and series (persisted, so spend
    during a restart is counted). A value below it is a reset of that target (the app restarted) and counts from 0;
    a series missing from its target's answer is let go, and when it comes back it began at 0. The first answer of
    a target already running is a baseline: what it spent before is not known. A target that does not answer keeps
    its values (spend meanwhile is counted when it answers again); when none answers the read fails. An increase
    the ledger refused (Redis down) waits in `pending` and is added with the next one.
    """

    def __init__(
        self,
        counter: CounterSource | Sequence[CounterSource],
        ledger: Ledger,
        *,
        name: str,
        last: Mapping[str, float] | None = None,
        pending: float = 0.0,
    ) -> None:
        self.name, self.ledger = name, ledger
        self._counters: list[CounterSource] = [counter] if not isinstance(counter, Sequence) else list(counter)
        if len({c.name for c in self._counters}) != len(self._counters):
            raise ValueError("CounterSpend: two counters with one name")
        if any(len(getattr(c, "targets", ())) > 1 for c in self._counters):
            raise ValueError("CounterSpend: one scrape source per target (a sum over targets is not a counter)")
        self.last: dict[str, float] = dict(last or {})
        self.pending = pending
        # The counters read at least once (their next new series began at 0): all of them when `last` is given.
        self.seen: set[str] = {c.name for c in self._counters} if last is not None else set()

    def totals(self, periods: Periods, now: datetime) -> dict[Kind, float]:
        readings = [(counter.name, counter.read()) for counter in self._counters]
        answered = [(name, reading) for name, reading in readings if reading.ok]
        if not answered:
            errors = "; ".join(reading.error or "no answer" for _, reading in readings)
            raise SpendError("read", errors or "the cost counter could not be read")
        for _, reading in answered:  # checked before anything is taken: a NaN would poison `last` for good
            bad = [v for v in reading.values.values() if not math.isfinite(v) or v < 0]
            if bad:
                raise SpendError("read", f"not a finite cost: {bad[0]}")
        self.pending += sum(self._increase(name, reading) for name, reading in answered)
        if self.pending > 0:
            self.ledger.add(self.pending, periods, now)
            self.pending = 0.0
        return self.ledger.totals(periods)

    def saved(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "counter": {"last": dict(self.last), "pending": self.pending, "seen": sorted(self.seen)}
        }
        if isinstance(self.ledger, LocalLedger | RedisLedger):
            document["ledger"] = self.ledger.to_dict()
        return document

    def restore(self, saved: Mapping[str, Any]) -> None:
        counter = saved.get("counter")
        if isinstance(counter, Mapping):
            last = {str(k): float(v) for k, v in (counter.get("last") or {}).items()}
            pending = float(counter.get("pending", 0.0))
            if not all(math.isfinite(v) for v in (*last.values(), pending)):
                raise ValueError("counter: not finite")
            self.last, self.pending = last, pending
            # Spend while the daemon was down is counted against these values.
            self.seen = {str(name) for name in counter.get("seen") or ()}
        ledger = saved.get("ledger")
        if isinstance(self.ledger, LocalLedger | RedisLedger) and isinstance(ledger, Mapping):
            self.ledger.restore(ledger)

    def _increase(self, name: str, reading: Reading) -> float:
        values = {f"{name}|{'/'.join(series)}": value for series, value in reading.values.items()}
        counted = name in self.seen or reading.complete
        increase = 0.0
        for key, value in values.items():
            before = self.last.get(key)
            if before is None:
                increase += value if counted else 0.0
            else:
                increase += value - before if value >= before else value
        prefix = f"{name}|"
        for key in [k for k in self.last if k.startswith(prefix) and k not in values]:
            del self.last[key]  # gone from an answer of its target: when it is back, it began at 0
        self.last.update(values)
        self.seen.add(name)
        return increase

    def close(self) -> None:
        for part in (*self._counters, self.ledger):
            close = getattr(part, "close", None)
            if close is not None:
                close()
