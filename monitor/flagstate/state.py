"""The degraded-mode decision as a value: current mode, since when, why, a manual override, history.

`FlagState` is immutable with pure methods (time is always passed in); `codec` turns it into JSON and back, and
`store.FlagStore` keeps the current one on disk. Nothing here does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal

HISTORY_LIMIT = 200
Source = Literal["rule", "override"]
Figures = Mapping[str, float]


def utc(value: datetime, name: str = "datetime") -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name}: a timezone-aware datetime is required, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def check_figures(figures: Mapping[str, float | None] | None) -> Mapping[str, float]:
    """A read-only copy of `figures` (names to numbers) for JSON.

    None and non-finite values mean "not available" (the evaluator's ratio is None without traffic) and are
    left out rather than refused: a figure must never stop the mode from changing. A non-number is a bug: TypeError.
    """
    checked: dict[str, float] = {}
    for key, value in (figures or {}).items():
        if not isinstance(key, str):
            raise TypeError(f"figures: key {key!r} is not a string")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"figures[{key!r}]: {value!r} is not a number")
        if math.isfinite(value):
            checked[key] = value
    return MappingProxyType(checked)


@dataclass(frozen=True, slots=True)
class Override:
    """A manual force on/off; it wins over the rules until `expires_at`."""

    value: bool
    reason: str
    expires_at: datetime
    set_by: str
    set_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "expires_at", utc(self.expires_at, "expires_at"))
        object.__setattr__(self, "set_at", utc(self.set_at, "set_at"))

    def active(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True, slots=True)
class Stop:
    """A hard stop of generation (the flag `generation-allowed` false), e.g. a spent budget, until `until`."""

    reason: str
    since: datetime
    until: datetime
    set_by: str = "budget"

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", utc(self.since, "since"))
        object.__setattr__(self, "until", utc(self.until, "until"))

    def active(self, now: datetime) -> bool:
        return now < self.until


@dataclass(frozen=True, slots=True)
class FlagChange:
    """One change of the mode: `from_`/`to` are the values of `source` (the rules, or the effective value)."""

    at: datetime
    from_: bool
    to: bool
    rule: str
    reason: str
    figures: Figures = field(default_factory=dict)
    source: Source = "rule"

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at, "at"))
        object.__setattr__(self, "figures", check_figures(self.figures))


@dataclass(frozen=True, slots=True)
class Decision:
    """What the app must do now: `value` True means degraded (use the fallback model).

    `since`, `rule`, `reason` and `figures` come from the source in effect: the override (`rule` "override",
    `since` when it was set, no figures) or the rules (`since` of their last transition).
    """

    value: bool
    reason: str
    since: datetime
    rule: str
    source: Source
    figures: Figures
    evaluated: bool  # what the rules say, which an override may mask
    override: Override | None = None
    stop: Stop | None = None  # generation stopped (independent of the degraded mode)


@dataclass(frozen=True, slots=True)
class FlagState:
    """The rules' current verdict (`degraded` since `since`, set by `rule`), an optional override, history."""

    degraded: bool
    since: datetime
    rule: str = "initial"
    reason: str = "no rule has fired yet"
    figures: Figures = field(default_factory=dict)
    override: Override | None = None
    history: tuple[FlagChange, ...] = ()
    stop: Stop | None = None  # a hard stop; an expired one is ignored by effective()

    def __post_init__(self) -> None:
        object.__setattr__(self, "since", utc(self.since, "since"))
        object.__setattr__(self, "figures", check_figures(self.figures))
        object.__setattr__(self, "history", tuple(self.history)[-HISTORY_LIMIT:])

    @classmethod
    def initial(cls, at: datetime) -> FlagState:
        return cls(degraded=False, since=at)

    def apply_transition(
        self, degraded: bool, rule: str, reason: str, figures: Mapping[str, float | None] | None, at: datetime
    ) -> FlagState:
        """The rules' verdict. Same value as now: unchanged (`since` keeps the start of the episode)."""
        checked = check_figures(figures)
        if degraded == self.degraded:
            return self
        entry = FlagChange(at, self.degraded, degraded, rule, reason, checked, "rule")
        return replace(
            self, degraded=degraded, since=at, rule=rule, reason=reason, figures=checked, history=self._log(entry)
        )

    def set_override(
        self, value: bool, reason: str, expires_at: datetime, at: datetime, set_by: str = "admin"
    ) -> FlagState:
        if not reason.strip():
            raise ValueError("override: a reason is required")
        if utc(expires_at, "expires_at") <= utc(at, "at"):
            raise ValueError(f"override: expires_at {expires_at.isoformat()} is not after {at.isoformat()}")
        override = Override(value, reason, expires_at, set_by, at)
        before = self.effective(at).value
        entry = FlagChange(at, before, value, "override", f"set by {set_by}: {reason}", {}, "override")
        return replace(self, override=override, history=self._log(entry))

    def clear_override(self, at: datetime, by: str = "admin") -> FlagState:
        if self.override is None:
            return self
        return self._drop_override(at, self.effective(at).value, f"cleared by {by}")

    def expire_override(self, at: datetime) -> FlagState:
        """Drop an override whose time is up, recording it; `effective()` already ignores it before that."""
        if self.override is None or self.override.active(utc(at, "at")):
            return self
        # It was in effect until its expiry, so the recorded change is override value -> rules' value.
        return self._drop_override(self.override.expires_at, self.override.value, "expired")

    def set_stop(self, stop: Stop | None) -> FlagState:
        """Stop generation until `stop.until` (None lifts it). Same stop: unchanged."""
        return self if stop == self.stop else replace(self, stop=stop)

    def effective(self, now: datetime) -> Decision:
        override = self.override
        stop = self.stop if self.stop is not None and self.stop.active(utc(now, "now")) else None
        if override is not None and override.active(utc(now, "now")):
            return Decision(
                override.value,
                override.reason,
                override.set_at,
                "override",
                "override",
                {},
                self.degraded,
                override,
                stop,
            )
        return Decision(
            self.degraded, self.reason, self.since, self.rule, "rule", self.figures, self.degraded, None, stop
        )

    def _drop_override(self, at: datetime, before: bool, why: str) -> FlagState:
        entry = FlagChange(at, before, self.degraded, "override", f"override {why}", {}, "override")
        return replace(self, override=None, history=self._log(entry))

    def _log(self, entry: FlagChange) -> tuple[FlagChange, ...]:
        return (*self.history, entry)[-HISTORY_LIMIT:]
