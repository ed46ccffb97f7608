"""Quota rules: utilization above 80% (warning) and 95% (critical), and "projected to run out before the reset"
(warning), per quota. Pure: monotonic seconds passed in, no clock, no I/O.

The states and their semantics are the evaluator's (monitor.alerts.evaluator), per (rule, quota key):
`ok` -> `pending` on the first value > threshold; -> `firing` once it held `hold_s` (exactly then); `firing` ->
`recovering` on a value < recovery_threshold (values in between keep it firing: hysteresis); -> `ok` once that held
`recovery_hold_s`. A quota with no value for a rule is "no data": no transition, timers untouched. There is no
probing state. Values: the utilization of a fixed limit; a blocked limit (0) is +inf while in demand (usage > 0
or exceeded) and no data otherwise, so an unused preview model never pages; dynamic limits are never evaluated
(never fire). Projection: 1.0 when a fixed per-day limit is projected to run out before the reset, else 0.0.

One quota has one incident (dedup key `nbmon/<environment>/quota/<project>/<quota_metric>/<limit_name>`), whatever
rule moved: `event` is FIRING when the quota's highest degraded severity rises (one transition per evaluation
carries it), RESOLVED when no rule of the quota is degraded any more, None otherwise.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.alerts import Severity, State, parse_duration
from monitor.config import ConfigError
from monitor.notify.base import Event, Notification
from monitor.quota.model import LimitStatus, QuotaKey, QuotaReading, Window

QUOTA_WARNING = "quota-utilization-warning"
QUOTA_CRITICAL = "quota-utilization-critical"
QUOTA_PROJECTED = "quota-projected-exhaustion"
_EPS = 1e-6
_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
_WINDOW_S = {Window.MINUTE: 60.0, Window.DAY: 86400.0}


class Signal(StrEnum):
    UTILIZATION = "utilization"
    PROJECTION = "projection"


@dataclass(frozen=True, slots=True)
class QuotaRule:
    name: str
    signal: Signal
    severity: Severity
    threshold: float
    recovery_threshold: float
    hold_s: float = 120.0
    recovery_hold_s: float = 300.0
    enabled: bool = True

    def __post_init__(self) -> None:
        where = f"quota.rules.{self.name}"
        if not 0 < self.recovery_threshold <= self.threshold or not math.isfinite(self.threshold):
            raise ConfigError(f"{where}.recovery_threshold", "need 0 < recovery_threshold <= threshold (finite)")
        for name in ("hold_s", "recovery_hold_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}.{name}", f"must be a duration >= 0, got {value!r}")

    def value(self, reading: QuotaReading) -> float | None:
        """What the rule compares with its thresholds; None: no data for this quota."""
        if self.signal is Signal.PROJECTION:
            fixed_day = reading.window is Window.DAY and reading.status is LimitStatus.FIXED
            return (1.0 if reading.projected_exhaustion else 0.0) if fixed_day else None
        if reading.status is LimitStatus.BLOCKED:
            return math.inf if reading.usage > 0 or reading.exceeded else None
        return reading.utilization


def default_quota_rules() -> tuple[QuotaRule, ...]:
    return (
        QuotaRule(QUOTA_WARNING, Signal.UTILIZATION, Severity.WARNING, 0.80, 0.75),
        QuotaRule(QUOTA_CRITICAL, Signal.UTILIZATION, Severity.CRITICAL, 0.95, 0.90),
        QuotaRule(QUOTA_PROJECTED, Signal.PROJECTION, Severity.WARNING, 0.5, 0.5, hold_s=300.0, recovery_hold_s=600.0),
    )


def quota_rules_from_mapping(overrides: Mapping[str, Any]) -> tuple[QuotaRule, ...]:
    """The defaults with `[quota.rules.<name>]` overrides: threshold, recovery_threshold, hold, recovery_hold,
    severity, enabled. Every problem is a ConfigError naming its dotted key."""
    rules = {rule.name: rule for rule in default_quota_rules()}
    for name, table in overrides.items():
        if name not in rules or not isinstance(table, Mapping):
            raise ConfigError(f"quota.rules.{name}", f"must be a table for one of {', '.join(rules)}")
        changes: dict[str, Any] = {}
        for key, raw in table.items():
            where = f"quota.rules.{name}.{key}"
            field = {"hold": "hold_s", "recovery_hold": "recovery_hold_s"}.get(key, key)
            if field not in {f.name for f in fields(QuotaRule)} - {"name", "signal"}:
                raise ConfigError(where, "unknown key")
            changes[field] = _config_value(field, raw, where)
        rules[name] = replace(rules[name], **changes)
    return tuple(rules.values())


def _config_value(field: str, value: object, where: str) -> object:
    if field.endswith("_s"):
        return parse_duration(value, where)
    if field == "severity":
        if value not in set(Severity):
            raise ConfigError(where, f"must be one of {', '.join(Severity)}")
        return Severity(str(value))
    if field == "enabled":
        if not isinstance(value, bool):
            raise ConfigError(where, "must be true or false")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(where, f"must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class QuotaTransition:
    """One state change of one rule for one quota, with the figures that caused it."""

    rule: str
    signal: Signal
    severity: Severity
    key: QuotaKey
    window: Window
    from_state: State
    to_state: State
    at: float  # monotonic seconds
    usage: float
    limit: float | None
    ratio: float | None  # utilization (inf: blocked and in demand); None for the projection rule
    threshold: float
    seconds_until_reset: float | None
    projected_usage_at_reset: float | None
    reason: str
    event: Event | None = None  # what to tell people; set by the engine, one per quota and evaluation
    degraded_since: float | None = None  # monotonic start of the quota's current incident


class QuotaRuleEngine:
    """Evaluates the enabled rules for every quota; only quotas away from `ok` are tracked (at most `max_tracked`)."""

    def __init__(self, rules: Iterable[QuotaRule] | None = None, *, max_tracked: int = 2000) -> None:
        chosen = default_quota_rules() if rules is None else tuple(rules)
        names = [r.name for r in chosen]
        if len(names) != len(set(names)):
            raise ConfigError("quota.rules", "a rule is defined twice")
        self.rules = tuple(r for r in chosen if r.enabled)
        self._max_tracked = max_tracked
        self._trackers: dict[tuple[str, QuotaKey], tuple[State, float]] = {}  # -> (state, since)
        self.untracked = 0  # quotas above a threshold that the max_tracked cap left out

    def state(self, rule: str, key: QuotaKey) -> State:
        return self._trackers.get((rule, key), (State.OK, 0.0))[0]

    def degraded(self) -> list[tuple[str, QuotaKey]]:
        return sorted(k for k, (state, _) in self._trackers.items() if state.degraded)

    def evaluate(self, now: float, readings: Iterable[QuotaReading]) -> list[QuotaTransition]:
        if not math.isfinite(now):
            raise ValueError(f"now: must be finite, got {now!r}")
        transitions: list[QuotaTransition] = []
        for key, reading in {r.key: r for r in readings}.items():
            before = self._level(key)
            moved = [t for rule in self.rules if (t := self._step(rule, reading, rule.value(reading), now))]
            after = self._level(key)
            since = min((s for (_, k), (st, s) in self._trackers.items() if k == key and st.degraded), default=None)
            event: Event | None = None
            if after is not None and (before is None or _RANK[after] > _RANK[before]):
                event = Event.FIRING
            elif before is not None and after is None:
                event = Event.RESOLVED
            for t in moved:
                if event is Event.FIRING:
                    carries = t.to_state is State.FIRING and t.severity == after
                else:
                    carries = event is Event.RESOLVED and t.to_state is State.OK and t.severity == before
                transitions.append(replace(t, event=event if carries else None, degraded_since=since))
                if carries:
                    event = None
        return transitions

    def _level(self, key: QuotaKey) -> Severity | None:
        levels = [r.severity for r in self.rules if self.state(r.name, key).degraded]
        return max(levels, key=_RANK.__getitem__, default=None)

    def _step(self, rule: QuotaRule, reading: QuotaReading, value: float | None, now: float) -> QuotaTransition | None:
        if value is None:
            return None  # no data: hold the state, neither start nor complete a timer
        state, since = self._trackers.get((rule.name, reading.key), (State.OK, now))
        above, healthy = value > rule.threshold, value < rule.recovery_threshold
        fig = _figures(rule, reading, value)
        th, rt = f"{rule.threshold:g}", f"{rule.recovery_threshold:g}"
        if state is State.OK and above:
            if (rule.name, reading.key) not in self._trackers and len(self._trackers) >= self._max_tracked:
                self.untracked += 1
                return None
            if rule.hold_s <= 0:
                return self._move(rule, reading, state, State.FIRING, now, value, f"{fig} > {th} (no hold)")
            return self._move(
                rule, reading, state, State.PENDING, now, value, f"{fig} > {th}, firing after {rule.hold_s:g}s"
            )
        if state is State.PENDING:
            if not above:
                return self._move(rule, reading, state, State.OK, now, value, f"{fig} <= {th}, pending reset")
            if now - since >= rule.hold_s - _EPS:
                return self._move(rule, reading, state, State.FIRING, now, value, f"{fig} > {th} for {rule.hold_s:g}s")
        elif state is State.FIRING and healthy:
            if rule.recovery_hold_s <= 0:
                return self._move(rule, reading, state, State.OK, now, value, f"{fig} < {rt} (no recovery hold)")
            reason = f"{fig} < {rt}, ok after {rule.recovery_hold_s:g}s"
            return self._move(rule, reading, state, State.RECOVERING, now, value, reason)
        elif state is State.RECOVERING:
            if not healthy:
                return self._move(rule, reading, state, State.FIRING, now, value, f"{fig} >= {rt}, recovery reset")
            if now - since >= rule.recovery_hold_s - _EPS:
                reason = f"{fig} < {rt} for {rule.recovery_hold_s:g}s"
                return self._move(rule, reading, state, State.OK, now, value, reason)
        return None

    def _move(
        self, rule: QuotaRule, r: QuotaReading, came: State, to: State, now: float, value: float, reason: str
    ) -> QuotaTransition:
        if to is State.OK:
            self._trackers.pop((rule.name, r.key), None)
        else:
            self._trackers[(rule.name, r.key)] = (to, now)
        ratio = value if rule.signal is Signal.UTILIZATION else r.utilization
        return QuotaTransition(
            rule.name,
            rule.signal,
            rule.severity,
            r.key,
            r.window,
            came,
            to,
            now,
            r.usage,
            r.limit,
            ratio,
            rule.threshold,
            r.seconds_until_reset,
            r.projected_usage_at_reset,
            reason,
        )


def _figures(rule: QuotaRule, reading: QuotaReading, value: float) -> str:
    limit = "?" if reading.limit is None else f"{reading.limit:g}"
    counts = f"({reading.usage:g}/{limit} per {reading.window.value})"
    if rule.signal is Signal.PROJECTION:
        projected = reading.projected_usage_at_reset
        return f"projected {'n/a' if projected is None else f'{projected:.0f}'} at the reset {counts}"
    return f"utilization {'blocked' if math.isinf(value) else f'{value:.3f}'} {counts}"


def quota_notification(
    transition: QuotaTransition,
    *,
    at: datetime,
    environment: str = "production",
    since: datetime | None = None,
    links: Mapping[str, str] | None = None,
) -> Notification | None:
    """The notification for a transition that carries an event (None for the others)."""
    t = transition
    if t.event is None:
        return None
    key = t.key
    short = key.quota_metric.rsplit("/", 1)[-1]
    name = f"{short} ({key.limit_name or 'no limit name'}) in {key.project}"
    if t.event is Event.RESOLVED:
        title = f"Quota {name} is back below its thresholds"
    elif t.signal is Signal.PROJECTION or t.ratio is None:
        title = f"Quota {name} is projected to run out before the reset (midnight Pacific)"
    elif math.isinf(t.ratio):
        title = f"Quota {name} has a limit of 0 (blocked) and is in demand"
    else:
        title = f"Quota {name} at {t.ratio:.0%} of its per-{t.window.value} limit"
    limit = "no limit" if t.limit is None else f"{t.limit:g}"
    summary = f"{t.rule}: usage {t.usage:g} of {limit} per {t.window.value}. {t.reason}"
    if t.seconds_until_reset is not None:
        summary += f". Resets in {t.seconds_until_reset / 3600:.1f}h (midnight America/Los_Angeles)"
    figures: dict[str, float] = {"numerator": t.usage}
    if t.signal is Signal.UTILIZATION:
        figures["threshold"] = t.threshold
    if t.limit is not None:
        figures["denominator"] = t.limit
    if t.ratio is not None and math.isfinite(t.ratio):
        figures["ratio"] = t.ratio
    if t.window in _WINDOW_S:
        figures["window_s"] = _WINDOW_S[t.window]
    if t.seconds_until_reset is not None:
        figures["seconds_until_reset"] = t.seconds_until_reset
    if t.projected_usage_at_reset is not None:
        figures["projected_usage_at_reset"] = t.projected_usage_at_reset
    return Notification(
        id=str(uuid.uuid4()),
        rule=t.rule,
        event=t.event,
        severity=t.severity.value,
        title=title,
        summary=summary,
        dedup_key=f"nbmon/{environment}/quota/{key.project}/{key.quota_metric}/{key.limit_name}",
        at=at,
        since=since,
        environment=environment,
        figures=figures,
        links=dict(links or {}),
    )
