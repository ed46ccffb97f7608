"""`FlagStore`: the current `FlagState` behind a lock, saved atomically on every change.

A crash (even `kill -9`) restarts the daemon in the mode it was in, never back on the primary model in the middle of
an outage; a failed save leaves the change in force in memory and marks the store dirty until a save succeeds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.flagstate import _atomic
from monitor.flagstate.codec import parse_state, state_to_dict
from monitor.flagstate.state import Decision, FlagState, Override, Stop, utc

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

    def set_stop(self, stop: Stop | None) -> bool:
        """Stop generation (None: allow it again); True when that changed (and was saved)."""
        return self._change(lambda s, t: s.set_stop(stop), None)

    def effective(self, now: datetime | None = None) -> Decision:
        return self._state.effective(now if now is not None else self.now())

    def snapshot(self) -> dict[str, Any]:
        """The current state as the JSON document that is saved (and served by `GET /v1/state`)."""
        return state_to_dict(self._state)

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
        data = json.dumps(state_to_dict(state), indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
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
            return parse_state(json.loads(raw.decode("utf-8")))
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
