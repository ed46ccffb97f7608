"""The window shared by the fleet: one Lua script per send, on one sorted set per (project, model, quota) key.

One round trip (EVALSHA): the script reads Redis's own clock (TIME: one clock for every replica, whatever theirs
say), drops the entries that left the window, computes the earliest send time as window.earliest() does, and
reserves it (ZADD) unless that is past the caller's wait bound. Each entry is a member `<unique id>:<cost>` scored by
its send time in milliseconds. The keys expire a window after their last entry. All keys of a call share the
`{project}` hash tag, so the script runs on a Redis Cluster too.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from monitor.pacing.window import Reservation

if TYPE_CHECKING:
    import redis

# ARGV: window_ms, max_wait_ms (negative: no bound), member id, then limit and cost per key.
# Reply: {admitted 0/1, wait_ms as a string (Lua numbers become integers in replies), binding key (1-based, 0: none)}.
RESERVE_LUA = """
local window = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local start = now
local logs = {}
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local raw = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  local log = {}
  for j = 1, #raw, 2 do
    log[#log + 1] = {tonumber(raw[j + 1]), tonumber(string.match(raw[j], ':([^:]*)$'))}
  end
  logs[i] = log
  if #log > 0 and log[#log][1] > start then start = log[#log][1] end
end
local at, binding = start, 0
for i = 1, #KEYS do
  local limit, cost = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  if cost > limit then return {0, '-1', i} end
  local log, t, total, first = logs[i], start, 0, 1
  for k = 1, #log do
    if log[k][1] > t - window then total = total + log[k][2] else first = k + 1 end
  end
  while total + cost > limit and first <= #log do
    t = log[first][1] + window
    total = total - log[first][2]
    first = first + 1
  end
  if t > at or (binding == 0 and t > now) then at, binding = t, i end
end
local wait = at - now
if max_wait >= 0 and wait > max_wait then return {0, tostring(wait), binding} end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], at, ARGV[3] .. ':' .. ARGV[3 + 2 * i])
  redis.call('PEXPIRE', KEYS[i], math.ceil(wait + window) + 1000)
end
return {1, tostring(wait), binding}
"""


class RedisWindow:
    """Rolling windows in Redis, shared by every process of the fleet. Raises the client's errors: FallbackWindow
    decides what a dead Redis means."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._script = client.register_script(RESERVE_LUA)  # EVALSHA; EVAL once after a Redis restart

    def reserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        args: list[Any] = [repr(window_s * 1000), repr(-1.0 if max_wait_s is None else max_wait_s * 1000)]
        member = uuid.uuid4().hex
        args.append(member)
        for limit, cost in zip(limits, costs, strict=True):
            args.extend((repr(float(limit)), repr(float(cost))))
        admitted, wait_ms, binding = self._script(keys=list(keys), args=args)
        wait = float(wait_ms)
        if wait < 0:  # a cost over its limit: never
            return Reservation(False, math.inf, int(binding) - 1)
        if not admitted:
            return Reservation(False, wait / 1000, int(binding) - 1)
        # The script names each entry `<member>:<cost>` with the cost as sent (its repr), key by key.
        entries = [(key, f"{member}:{args[4 + 2 * i]}") for i, key in enumerate(keys)]
        return Reservation(True, wait / 1000, int(binding) - 1, lambda: self._release(entries))

    def _release(self, entries: Sequence[tuple[str, str]]) -> None:
        pipeline = self._client.pipeline(transaction=False)
        for key, name in entries:
            pipeline.zrem(key, name)
        pipeline.execute()

    async def areserve(
        self,
        keys: Sequence[str],
        limits: Sequence[float],
        costs: Sequence[float],
        max_wait_s: float | None,
        window_s: float,
    ) -> Reservation:
        # The sync client in a worker thread: a slow or dead Redis never stalls the event loop.
        return await asyncio.to_thread(self.reserve, keys, limits, costs, max_wait_s, window_s)
