"""The window in this process: the same log and algorithm as the Redis one, behind a lock, on an injected clock."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Sequence

from monitor.pacing.window import Entry, Reservation, earliest, prune


class InProcessWindow:
    """Rolling windows shared by the threads of one process (no Redis, or Redis down)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self._clock = clock
        self._logs: dict[str, list[Entry]] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys  # keys are model x quota: bounded by the limits; this is a backstop

    def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        with self._lock:
            now = self._clock()
            logs = []
            for key in keys:
                log = self._logs.get(key)
                if log is None:
                    if len(self._logs) >= self._max_keys:
                        self._forget_idle(now, window_s)
                    log = self._logs[key] = []
                prune(log, now, window_s)
                logs.append(log)
            at, binding = earliest(logs, limits, costs, now, window_s)
            wait = at - now
            if math.isinf(at) or (max_wait_s is not None and wait > max_wait_s):
                return Reservation(False, wait, binding)
            for log, cost in zip(logs, costs, strict=True):
                log.append((at, cost))
            return Reservation(True, wait, binding, lambda: self._release(keys, at, costs))

    async def areserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        # A lock held for microseconds: called on the loop, no thread.
        return self.reserve(keys, limits, costs, max_wait_s, window_s)

    def seed(self, keys: Sequence[str], limits: Sequence[float], at: float, window_s: float) -> None:
        """Count each key's window as full at `at` (one entry of its whole limit), for one window from then."""
        with self._lock:
            now = self._clock()
            for key, limit in zip(keys, limits, strict=True):
                log = self._logs.setdefault(key, [])
                prune(log, now, window_s)
                if at > now - window_s:
                    bisect.insort(log, (at, float(limit)))

    def entries(self, key: str) -> list[Entry]:
        """The (send time, cost) entries a key's window holds, oldest first (a copy)."""
        with self._lock:
            return list(self._logs.get(key, ()))

    def _release(self, keys: Sequence[str], at: float, costs: Sequence[float]) -> None:
        with self._lock:
            for key, cost in zip(keys, costs, strict=True):
                log = self._logs.get(key)
                if log is not None and (at, cost) in log:
                    log.remove((at, cost))  # entries of one time and cost are alike: any of them will do

    def _forget_idle(self, now: float, window_s: float) -> None:
        for key in [k for k, log in self._logs.items() if not log or log[-1][0] <= now - window_s]:
            del self._logs[key]
