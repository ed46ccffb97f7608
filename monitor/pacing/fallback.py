"""The shared window with a fallback: Redis down means per-process limits (limit / replicas), never a blocked app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

import structlog

from monitor.pacing.limits import per_replica
from monitor.pacing.local import InProcessWindow
from monitor.pacing.metrics import PacingMetrics
from monitor.pacing.window import Reservation

_log = structlog.get_logger("nbmon.pacing")


class Window(Protocol):
    """Where the rolling windows live: InProcessWindow, RedisWindow or FallbackWindow."""

    def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation: ...

    async def areserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation: ...


class FallbackWindow:
    """`primary` (RedisWindow) while it answers; on an error, a window of this process at limit / `replicas`.

    After a failure Redis is not asked again for `retry_s` (a dead Redis costs one timeout per `retry_s`, not one
    per call), and then by one caller only: the others keep to the local window until that probe has answered.
    `nbmon_pacing_degraded` is 1 meanwhile; one log line when it goes down and one when it is back.

    The switch is conservative: Google's window may be full of the fleet's sends of the last minute, which this
    process cannot see. So the local window of each key starts full at the switch: its whole share (limit /
    replicas) counted as sent then, for one window. The fleet can then never send more than the limit in any
    rolling window across the switch (a burst of up to twice the limit otherwise); the price is that calls wait up
    to one window when Redis goes down.
    """

    def __init__(
        self,
        primary: Window,
        *,
        replicas: int,
        metrics: PacingMetrics,
        local: InProcessWindow | None = None,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas: must be >= 1, got {replicas!r}")
        if not retry_s >= 0:
            raise ValueError(f"retry_s: must be >= 0, got {retry_s!r}")
        self._primary, self._replicas, self._metrics = primary, replicas, metrics
        self._local = local or InProcessWindow(clock=clock)  # on the same clock as `clock`
        self._retry_s, self._clock = retry_s, clock
        self._down_until: float | None = None
        self._down_since = 0.0
        self._seeded: set[str] = set()  # the keys whose local window was counted full at this outage's start
        self._probing = False
        self._lock = threading.Lock()
        metrics.degraded.set(0)

    @property
    def degraded(self) -> bool:
        return self._down_until is not None

    def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        probe = self._claim()
        if probe is not None:
            try:
                reservation = self._primary.reserve(keys, limits, costs, max_wait_s, window_s)
            except Exception as error:  # noqa: BLE001 - any Redis failure: pace locally, never fail the call
                self._failed(error)
            else:
                self._recovered()
                return self._guarded(reservation)
            finally:
                self._probed(probe)
        scaled = self._local_limits(keys, limits, window_s)
        return self._local.reserve(keys, scaled, costs, max_wait_s, window_s)

    async def areserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        probe = self._claim()
        if probe is not None:
            try:
                reservation = await self._primary.areserve(keys, limits, costs, max_wait_s, window_s)
            except Exception as error:  # noqa: BLE001 - as reserve()
                self._failed(error)
            else:
                self._recovered()
                return self._guarded(reservation)
            finally:
                self._probed(probe)
        scaled = self._local_limits(keys, limits, window_s)
        return await self._local.areserve(keys, scaled, costs, max_wait_s, window_s)

    def _local_limits(self, keys: Sequence[str], limits: Sequence[float], window_s: float) -> list[float]:
        scaled = [per_replica(limit, self._replicas) for limit in limits]
        with self._lock:
            fresh = [i for i, key in enumerate(keys) if key not in self._seeded]
            self._seeded.update(keys[i] for i in fresh)
            since = self._down_since
        if fresh:
            self._local.seed([keys[i] for i in fresh], [scaled[i] for i in fresh], since, window_s)
        return scaled

    def _guarded(self, reservation: Reservation) -> Reservation:
        """A release that counts a Redis failure instead of raising it."""
        release = reservation.release
        if release is None:
            return reservation

        def guarded() -> None:
            try:
                release()
            except Exception:  # noqa: BLE001 - the slot stays taken: it leaves the window in a minute anyway
                self._metrics.redis_errors.inc()

        return replace(reservation, release=guarded)

    def _claim(self) -> bool | None:
        """None: use the local window. False: Redis is up, ask it. True: this caller probes a Redis that was down."""
        with self._lock:
            down = self._down_until
            if down is None:
                return False
            if self._probing or self._clock() < down:
                return None
            self._probing = True
            return True

    def _probed(self, probe: bool) -> None:
        if probe:
            with self._lock:
                self._probing = False

    def _failed(self, error: Exception) -> None:
        with self._lock:
            first = self._down_until is None
            now = self._clock()
            self._down_until = now + self._retry_s
            if first:
                self._down_since, self._seeded = now, set()
        self._metrics.redis_errors.inc()
        self._metrics.degraded.set(1)
        if first:
            _log.warning("nbmon.pacing.redis_unavailable", error_type=type(error).__name__, replicas=self._replicas)

    def _recovered(self) -> None:
        if self._down_until is None:
            return
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        self._metrics.degraded.set(0)
        if was_down:
            _log.info("nbmon.pacing.redis_recovered")
