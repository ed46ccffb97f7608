"""A lease that elects one replica of a fleet (the quota poller's, issue #18), or always this one without Redis.

Redis, the single-instance lock: acquire with `SET key holder NX PX ttl`; renew and release only while the key
still holds our id (Lua compare-and-pexpire, compare-and-del), so a replica whose lease lapsed can never extend or
delete its successor's. Holder ids are hostname-pid-random: two daemons in one process differ too.

Timing: the holder renews every ttl/3 and counts itself the holder only until `ttl` (less 1% for clock drift)
after it SENT its last successful claim, so it stops before Redis lets the key go. A follower retries when the key
it lost to expires (its PTTL), at least every ttl/3: a holder that dies is replaced within one ttl of its last
renewal; one that stops releases the key and is replaced within ttl/3.

A Redis error means "not the holder": stand down and retry later, counted, never raised. Two pollers are never
chosen on purpose; with Redis down nobody holds the lease.
"""

from __future__ import annotations

import math
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from monitor._safety import report_internal_error

if TYPE_CHECKING:
    import redis

__all__ = ["AlwaysLeader", "Lease", "RedisLease", "holder_id"]
_log = structlog.get_logger("nbmon.fleet")
DRIFT = 0.01  # of the ttl: what the holder gives up for clock drift (Redlock's factor)
RETRY_MARGIN_S = 0.005  # a follower comes back this long after the key's expiry, not before it
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    """What the quota job asks: do I hold it now? `start` and `stop` keep it (a thread for Redis)."""

    name: str
    holder: str

    def held(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self, *, release: bool = True) -> None: ...


def holder_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class AlwaysLeader:
    """No Redis (one replica, or `lease = false`): this daemon always polls, as before the fleet."""

    def __init__(self, name: str = "quota-poller") -> None:
        self.name, self.holder = name, "local"

    def held(self) -> bool:
        return True

    def start(self) -> None:
        pass

    def stop(self, *, release: bool = True) -> None:
        pass


class RedisLease:
    """`key` in Redis, held by at most one `holder` at a time. `step()` is one claim (tests drive it with their
    own clock); `start()` runs it on a thread, `stop()` ends the thread and releases the key."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        ttl_s: float,
        *,
        name: str = "quota-poller",
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        if not (math.isfinite(ttl_s) and ttl_s >= 0.03):
            raise ValueError("ttl_s: at least 0.03 s (a renewal every ttl/3 must be possible)")
        self.name, self.key, self.ttl_s = name, key, ttl_s
        self.holder = holder or holder_id()
        self._client = client
        self._ttl_ms = max(round(ttl_s * 1000), 1)
        self._renew_script = client.register_script(_RENEW)
        self._release_script = client.register_script(_RELEASE)
        self._monotonic = monotonic
        self._on_change, self._on_error = on_change, on_error
        self._claimed = False  # what the last claim decided (leadership changes are logged from it)
        self._valid_until = -math.inf
        self.acquired_at = -math.inf  # when the claim that made it the holder was sent (its clock)
        self._failing = False  # a Redis error streak: logged once
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / 3

    @property
    def held_until(self) -> float:
        """When this replica stops counting itself the holder unless it renews (its clock; -inf: not held)."""
        return self._valid_until

    def held(self) -> bool:
        """True while the last successful claim is younger than the ttl (less the drift allowance)."""
        return self._monotonic() < self._valid_until

    def step(self) -> float:
        """One claim: renew if held, else try to acquire. Returns the seconds until the next. Never raises."""
        with self._lock:
            started = self._monotonic()
            operation = "renew" if self._claimed else "acquire"
            try:
                won = self._claimed and bool(self._renew(self._client))
                remaining_ms = None
                if not won:
                    operation = "acquire"
                    won, remaining_ms = self._acquire()
            except Exception as exc:  # noqa: BLE001 - Redis down, or a bug: either way this replica stands down
                self._failed(operation, exc)
                self._decide(False, started, "redis error")
                return self.renew_every_s
            if self._failing:  # INFO is for leadership changes only
                self._failing = False
                _log.debug("nbmon.lease.redis_recovered", lease=self.name)
            self._decide(won, started, "acquired" if won else "held by another replica")
            return self.renew_every_s if won else self._retry_in(remaining_ms)

    def release(self) -> None:
        """Give the key up now (if still ours), so a follower takes over without waiting out the ttl."""
        with self._lock:
            if not self._claimed:
                return
            try:
                self._release_script(keys=[self.key], args=[self.holder])
            except Exception as exc:  # noqa: BLE001 - the key then lapses on its own within the ttl
                self._failed("release", exc)
            self._decide(False, self._monotonic(), "released")

    def start(self) -> None:
        """The first claim now (the first quota tick knows who polls), then a thread keeps it."""
        if self._thread is not None:
            return
        self._stopping.clear()
        delay = self.step()
        self._thread = threading.Thread(target=self._keep, args=(delay,), name=f"nbmon-lease-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """End the renewals. `release=False` is what a crash looks like: the key lapses after its ttl."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if release:
            self.release()

    # --- Redis ------------------------------------------------------------------------------------------------

    def _renew(self, client: Any) -> Any:
        return self._renew_script(keys=[self.key], args=[self.holder, self._ttl_ms], client=client)

    def _acquire(self) -> tuple[bool, int | None]:
        """SET NX; else renew in case the key is still ours (after an error); else the key's PTTL. One round trip."""
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self.key, self.holder, nx=True, px=self._ttl_ms)
        self._renew(pipe)
        pipe.pttl(self.key)
        created, renewed, remaining = pipe.execute()
        return bool(created) or bool(renewed), int(remaining)

    # --- decisions --------------------------------------------------------------------------------------------

    def _decide(self, won: bool, started: float, reason: str) -> None:
        self._valid_until = started + self.ttl_s * (1 - DRIFT) if won else -math.inf
        if won == self._claimed:
            return
        self._claimed = won
        if won:
            self.acquired_at = started
        event = "nbmon.lease.acquired" if won else "nbmon.lease.lost"
        _log.info(event, lease=self.name, holder=self.holder, reason=reason, ttl_s=self.ttl_s)
        if self._on_change is not None:
            _guarded("lease.on_change", self._on_change, won)

    def _retry_in(self, remaining_ms: int | None) -> float:
        """A follower: back when the holder's key expires, and at least every ttl/3 (a released key)."""
        if remaining_ms is None or remaining_ms == -1:  # -1: a key without expiry, set by hand
            return self.renew_every_s
        if remaining_ms < 0:  # -2: gone between our SET and PTTL: try again at once
            return RETRY_MARGIN_S
        return min(self.renew_every_s, remaining_ms / 1000 + RETRY_MARGIN_S)

    def _failed(self, operation: str, exc: Exception) -> None:
        import redis

        if not isinstance(exc, redis.RedisError):
            report_internal_error(f"lease.{operation}", exc, None)
        if self._on_error is not None:
            _guarded("lease.on_error", self._on_error, operation, exc)
        if not self._failing:  # once per streak. redis-py's messages name the host, never the URL's password
            self._failing = True
            _log.warning(
                "nbmon.lease.redis_error",
                lease=self.name,
                operation=operation,
                error_type=type(exc).__name__,
                error=str(exc),
            )

    def _keep(self, delay: float) -> None:
        while not self._stopping.wait(delay):
            delay = self.step()


def _guarded(component: str, hook: Callable[..., object], *args: object) -> None:
    """A hook's bug (the metrics) is reported; the lease keeps its thread."""
    try:
        hook(*args)
    except Exception as exc:  # noqa: BLE001
        report_internal_error(component, exc, None)
