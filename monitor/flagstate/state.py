"""The degraded-mode decision as persistent state: current mode, since when, why, a manual override, history.

`FlagState` is an immutable value with pure methods (time is always passed in). `FlagStore` holds the current
`FlagState` behind a lock and saves it atomically on every change, so a crash (even `kill -9`) restarts the
daemon in the mode it was in, never back on the primary model in the middle of an outage.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from monitor.flagstate import _atomic

HISTORY_LIMIT = 200
Source = Literal["rule", "override"]
Figures = Mapping[str, float]
Clock = Callable[[], datetime]
_STALE_TEMP_S = 60.0  # a temp file this old belongs to a writer that died mid-save


class FlagStoreError(Exception):
    """The flag state file cannot be read or written; `path` names it."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path


class FlagStateCorruptError(FlagStoreError):
    """The state file exists but does not hold a valid state. Never silently replaced by a fresh state."""


class FlagStatePersistError(FlagStoreError):
    """A change is in effect in memory but could not be saved; `flush()` or the next change retries."""


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
class Transition:
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

    def as_dict(self) -> dict[str, Any]:
        from monitor.flagstate._codec import decision_to_dict

        return decision_to_dict(self)


@dataclass(frozen=True, slots=True)
class FlagState:
    """The rules' current verdict (`degraded` since `since`, set by `rule`), an optional override, history."""

    degraded: bool
    since: datetime
    rule: str = "initial"
    reason: str = "no rule has fired yet"
    figures: Figures = field(default_factory=dict)
    override: Override | None = None
    history: tuple[Transition, ...] = ()

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
        entry = Transition(at, self.degraded, degraded, rule, reason, checked, "rule")
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
        entry = Transition(at, before, value, "override", f"set by {set_by}: {reason}", {}, "override")
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

    def effective(self, now: datetime) -> Decision:
        override = self.override
        if override is not None and override.active(utc(now, "now")):
            return Decision(
                override.value, override.reason, override.set_at, "override", "override", {}, self.degraded, override
            )
        return Decision(self.degraded, self.reason, self.since, self.rule, "rule", self.figures, self.degraded)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able dict; `FlagState.from_snapshot(s.snapshot()) == s`."""
        from monitor.flagstate._codec import state_to_dict  # the codec imports this module

        return state_to_dict(self)

    @classmethod
    def from_snapshot(cls, data: Any) -> FlagState:
        """Raises ValueError naming the offending key when `data` is not a valid snapshot."""
        from monitor.flagstate._codec import parse_state

        return parse_state(data)

    def _drop_override(self, at: datetime, before: bool, why: str) -> FlagState:
        entry = Transition(at, before, self.degraded, "override", f"override {why}", {}, "override")
        return replace(self, override=None, history=self._log(entry))

    def _log(self, entry: Transition) -> tuple[Transition, ...]:
        return (*self.history, entry)[-HISTORY_LIMIT:]


def system_clock() -> datetime:
    return datetime.now(UTC)


def _write_private(path: Path, data: bytes) -> None:
    # 0600: the state holds override reasons and who set them; only the daemon's user reads it.
    _atomic.atomic_write(path, data, mode=0o600)


class FlagStore:
    """The current `FlagState`, loaded from `path` at start and saved atomically on every change.

    Thread-safe: writers serialise on a lock (so the file always matches the last change); readers take
    the current immutable state without blocking behind a save's fsync. `at`/`now` default to the clock.
    """

    def __init__(
        self, path: str | Path, *, clock: Clock = system_clock, write: Callable[[Path, bytes], None] | None = None
    ) -> None:
        """`write(path, data)` replaces the file atomically (the default); tests inject a failing one (disk full)."""
        self.path = Path(path)
        self._clock = clock
        self._write = write or _write_private
        self._lock = threading.Lock()
        self._dirty = False
        self._state = self._load()

    @property
    def state(self) -> FlagState:
        return self._state

    @property
    def dirty(self) -> bool:
        """True while the last change failed to save."""
        return self._dirty

    def now(self) -> datetime:
        return utc(self._clock(), "clock()")

    def apply_transition(
        self,
        degraded: bool,
        rule: str,
        reason: str,
        figures: Mapping[str, float | None] | None = None,
        at: datetime | None = None,
    ) -> bool:
        """Returns True when the mode changed (and was saved)."""
        return self._change(lambda s, t: s.apply_transition(degraded, rule, reason, figures, t), at)

    def set_override(
        self, value: bool, reason: str, expires_at: datetime, at: datetime | None = None, *, set_by: str = "admin"
    ) -> Override:
        self._change(lambda s, t: s.set_override(value, reason, expires_at, t, set_by), at)
        override = self._state.override
        assert override is not None
        return override

    def clear_override(self, at: datetime | None = None, *, by: str = "admin") -> bool:
        return self._change(lambda s, t: s.clear_override(t, by), at)

    def expire_override(self, at: datetime | None = None) -> bool:
        """Call on every tick: forgets (and records) an override whose expiry has passed."""
        return self._change(lambda s, t: s.expire_override(t), at)

    def effective(self, now: datetime | None = None) -> Decision:
        return self._state.effective(now if now is not None else self.now())

    def snapshot(self) -> dict[str, Any]:
        return self._state.snapshot()

    def flush(self) -> None:
        """Save now if a previous save failed (call on shutdown)."""
        with self._lock:
            if self._dirty:
                self._save(self._state)

    def _change(self, step: Callable[[FlagState, datetime], FlagState], at: datetime | None) -> bool:
        with self._lock:
            new = step(self._state, at if at is not None else self.now())
            if new is self._state:
                return False
            # In memory first: serving the right flag matters more than the file; a failed save raises and stays dirty.
            self._state = new
            self._save(new)
            return True

    def _save(self, state: FlagState) -> None:
        data = json.dumps(state.snapshot(), indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
        try:
            self._write(self.path, data)
        except OSError as error:
            self._dirty = True
            raise FlagStatePersistError(self.path, f"cannot save flag state file {self.path}: {error}") from error
        self._dirty = False

    def _load(self) -> FlagState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return self._create()
        except OSError as error:
            raise FlagStoreError(self.path, f"cannot read flag state file {self.path}: {error}") from error
        self._remove_stale_temps()
        try:
            return FlagState.from_snapshot(json.loads(raw.decode("utf-8")))
        except (ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise FlagStateCorruptError(
                self.path,
                f"flag state file {self.path} is corrupt ({error}); refusing to start from a reset, not-degraded "
                "state: restore or fix the file, or delete it to start fresh",
            ) from error

    def _create(self) -> FlagState:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise FlagStoreError(self.path, f"cannot create the directory of {self.path}: {error}") from error
        state = FlagState.initial(self.now())
        self._save(state)  # fail at start, not at the first outage, when the directory is not writable
        return state

    def _remove_stale_temps(self) -> None:
        cutoff = time.time() - _STALE_TEMP_S
        for temp in self.path.parent.glob(f"{_atomic.temp_prefix(self.path)}*{_atomic.TEMP_SUFFIX}"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
            except OSError:
                continue
