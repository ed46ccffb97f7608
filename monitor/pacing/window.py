"""The rolling one-minute window as a log of granted sends: pure, shared by the in-process and Redis windows.

Google counts a per-minute quota over a rolling 60 s window (not per calendar minute, not as a token bucket): a
request is refused while the requests of the last 60 s have reached the limit. So the pacer keeps, per quota key,
the log of the sends it granted (time, cost) and grants a new send at the earliest time `t` at which the entries
in (t - window, t] plus this one fit every limit. When a window is full, `t` is in the future: the slot is
reserved at once and the caller sleeps until `t`, then sends (one round trip). Grants are in time order (FIFO):
a caller never jumps ahead of one already waiting, so a big request is not starved by a stream of small ones.

`earliest()` is the algorithm; the Lua script in redis_window.py is the same, line for line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Entry = tuple[float, float]  # (granted send time, cost)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A window's answer. Admitted: sleep `wait_s`, then send. Refused: `wait_s` is the wait it would have taken
    (inf: never, a cost over the limit). `binding` is the index of the quota that set the time (-1: no wait).
    `release`, on an admitted reservation: gives the slot back (its send will not happen); it may raise (Redis)."""

    admitted: bool
    wait_s: float
    binding: int = -1
    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)


def earliest(
    logs: Sequence[Sequence[Entry]], limits: Sequence[float], costs: Sequence[float], now: float, window: float
) -> tuple[float, int]:
    """(send time, binding quota index) for a send of `costs[i]` on every log; time inf when a cost is over its limit.

    Each log is sorted by time and holds no entry at or before `now - window` (pruned). The time is never before
    the newest entry of any log: grants stay in order.
    """
    start = now
    for log in logs:
        if log and log[-1][0] > start:
            start = log[-1][0]
    at, binding = start, -1
    for i, (log, limit, cost) in enumerate(zip(logs, limits, costs, strict=True)):
        if cost > limit:
            return float("inf"), i
        t, total, first = start, 0.0, 0
        for k, (when, weight) in enumerate(log):
            if when > t - window:
                total += weight
            else:
                first = k + 1
        while total + cost > limit and first < len(log):  # wait for the oldest entries to leave the window
            t = log[first][0] + window
            total -= log[first][1]
            first += 1
        if t > at or (binding < 0 and t > now):
            at, binding = t, i
    return at, binding


def prune(log: list[Entry], now: float, window: float) -> None:
    """Drop the entries no window ending at or after `now` can hold."""
    drop = 0
    while drop < len(log) and log[drop][0] <= now - window:
        drop += 1
    del log[:drop]
