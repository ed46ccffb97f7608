"""Counts over a sliding window from cumulative counter readings (the scrape and in-process sources).

`CounterWindow` keeps the recent ok `Reading`s and answers "how much did each series grow over the last
`window_s` seconds", the way Prometheus' `increase()` does without extrapolation:

- the increase is the sum of positive deltas between consecutive ok readings that both lie inside
  `[now - window_s, now]`;
- a counter reset (the value went down: the app restarted) counts the new value as the increase since the reset;
- a series missing from a reading contributes nothing for that step, and its next value is a fresh baseline, so a
  target that drops out and comes back does not look like one huge burst. The same holds for a series seen for the
  first time: like Prometheus, its first value is a baseline (exporters that pre-initialise label values lose nothing);
- failed readings (`ok=False`) are skipped: the delta between the ok readings around them still holds every increment;
- readings older than `max_age_s` are dropped.

`coverage()` says how many seconds of a window the readings actually span, so a caller can tell "no data" (coverage 0)
from "zero traffic" (full coverage, counts 0).

Cost: each accepted reading is diffed once against the previous one (O(series)) and only the non-zero increases are
stored, so `counts()` is O(changed series x steps in the window), not O(all series x readings).
Pure: no clock, no I/O; time is monotonic seconds passed in by the caller.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from monitor.signals import Counts, Reading, Series


@dataclass(frozen=True, slots=True)
class _Step:
    at: float  # time of the reading that closes the step
    increases: dict[Series, float]  # non-zero increases since the previous kept ok reading


class CounterWindow:
    """Recent cumulative readings, answering per-series increases over a window ending at `now`."""

    def __init__(self, max_age_s: float) -> None:
        if not math.isfinite(max_age_s) or max_age_s <= 0:
            raise ValueError(f"max_age_s: must be a finite number > 0, got {max_age_s!r}")
        self.max_age_s = max_age_s
        self._steps: deque[_Step] = deque()
        self._last: dict[Series, float] = {}  # values of the newest ok reading: the baseline of the next step
        self._last_at: float | None = None
        self._last_complete = False

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def last_ok_at(self) -> float | None:
        """Time of the newest accepted reading (for freshness checks), None before the first."""
        return self._last_at

    def add(self, reading: Reading) -> bool:
        """Record a reading; returns False when it is ignored (failed, or not newer than the last one)."""
        if not reading.ok or not math.isfinite(reading.at):
            return False
        if self._last_at is not None and reading.at <= self._last_at:
            return False  # out of order or duplicate: a delta over negative time means nothing
        current: dict[Series, float] = {}
        increases: dict[Series, float] = {}
        last = self._last
        from_zero = reading.complete and self._last_complete  # a series new since a complete reading started at 0
        for series, value in reading.values.items():
            if not math.isfinite(value) or value < 0:
                continue  # garbage value: treat the series as missing from this reading
            current[series] = value
            previous = last.get(series)
            if previous is None:
                if from_zero and value > 0:
                    increases[series] = value
                continue  # new or returning series: this value is only a baseline
            # A drop is a counter reset: the series restarted from 0, so everything it holds is new.
            delta = value - previous if value >= previous else value
            if delta > 0:
                increases[series] = delta
        # The first kept reading has no previous one: its step carries no increase, it only opens the window.
        self._steps.append(_Step(reading.at, increases if self._last_at is not None else {}))
        self._last = current
        self._last_at = reading.at
        self._last_complete = reading.complete
        self._prune(reading.at)
        return True

    def counts(self, window_s: float, now: float) -> Counts:
        """Per-series increase over `[now - window_s, now]`; series that did not grow are absent."""
        start = now - _positive(window_s)
        total: dict[Series, float] = {}
        for step in self._inside(start, now)[1:]:  # the first reading inside only opens the window
            for series, delta in step.increases.items():
                total[series] = total.get(series, 0.0) + delta
        return total

    def coverage(self, window_s: float, now: float) -> float:
        """Seconds of `[now - window_s, now]` spanned by ok readings: 0 means no data, not zero traffic."""
        start = now - _positive(window_s)
        inside = self._inside(start, now)
        return inside[-1].at - inside[0].at if len(inside) > 1 else 0.0

    def _inside(self, start: float, now: float) -> list[_Step]:
        """Steps whose reading lies in [start, now], oldest first; walks back from the newest only."""
        found: list[_Step] = []
        for step in reversed(self._steps):
            if step.at < start:
                break
            if step.at <= now:
                found.append(step)
        found.reverse()
        return found

    def _prune(self, now: float) -> None:
        oldest = now - self.max_age_s
        while self._steps and self._steps[0].at < oldest:
            self._steps.popleft()


def _positive(window_s: float) -> float:
    if not math.isfinite(window_s) or window_s <= 0:
        raise ValueError(f"window_s: must be a finite number > 0, got {window_s!r}")
    return window_s
