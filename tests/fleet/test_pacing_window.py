"""The rolling window: the in-process one and the Redis Lua script answer the same cases the same way.

Both run on real time here (Redis reads its own clock: TIME), with windows of a fraction of a second. No check
depends on how fast the machine is: a wait is bracketed by the time that passed between the sends it depends on and
now (`Stopwatch`), and the concurrent case reads the granted slots themselves (Redis's scores, the in-process log).
The in-process window on an injected clock gets the exact cases too.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from monitor.pacing import InProcessWindow, Reservation
from monitor.pacing.fallback import Window
from monitor.pacing.redis_window import RedisWindow
from monitor.pacing.window import earliest
from tests.support.redis import RedisServer

W = 0.4  # seconds: short enough for a quick test, long against a loopback round trip
EPSILON = 0.002  # Redis's scores are in ms (float): rounding only


class Stopwatch:
    """Since the first send a wait depends on: that wait is W less some of this, never more than W."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def assert_a_window_after_the_start(self, wait_s: float) -> None:
        elapsed = time.monotonic() - self.started
        assert W - elapsed - EPSILON <= wait_s <= W + EPSILON, (wait_s, elapsed)


@pytest.fixture(params=["in_process", "redis"])
def window(request: pytest.FixtureRequest) -> Iterator[Window]:
    if request.param == "in_process":
        yield InProcessWindow()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = server.client()
    yield RedisWindow(client)
    client.close()


def reserve(window: Window, cost: float = 1, limit: float = 3, max_wait: float | None = None) -> Reservation:
    return window.reserve(["k:rpm"], [limit], [cost], max_wait, W)


def test_sends_within_the_limit_go_at_once_and_the_next_waits_for_the_oldest_to_leave(window: Window) -> None:
    first_sent = Stopwatch()
    first = [reserve(window) for _ in range(3)]
    assert all(r.admitted and r.wait_s == 0 and r.binding == -1 for r in first)
    fourth = reserve(window)
    assert fourth.admitted and fourth.binding == 0
    first_sent.assert_a_window_after_the_start(fourth.wait_s)  # a slot reserved a window after the first send
    fifth = reserve(window)
    first_sent.assert_a_window_after_the_start(fifth.wait_s)  # the second send's slot, a window after it
    assert fifth.wait_s >= fourth.wait_s - EPSILON and fifth.wait_s <= W + EPSILON


def test_a_wait_past_the_bound_is_refused_and_reserves_nothing(window: Window) -> None:
    sent = Stopwatch()
    for _ in range(3):
        reserve(window)
    refused = reserve(window, max_wait=0.0)
    assert not refused.admitted
    sent.assert_a_window_after_the_start(refused.wait_s)
    again = reserve(window, max_wait=0.0)
    assert not again.admitted and again.wait_s <= refused.wait_s + EPSILON  # still the same slot, nearer
    sent.assert_a_window_after_the_start(again.wait_s)
    time.sleep(W + 0.05)
    assert reserve(window, max_wait=0.0).admitted  # the window rolled: the first sends left it


def test_weights_count_and_a_cost_over_the_limit_never_fits(window: Window) -> None:
    sent = Stopwatch()
    assert reserve(window, cost=6, limit=10).admitted
    assert reserve(window, cost=4, limit=10).wait_s == 0
    sent.assert_a_window_after_the_start(reserve(window, cost=1, limit=10).wait_s)
    never = reserve(window, cost=11, limit=10)
    assert not never.admitted and math.isinf(never.wait_s)


def test_several_quotas_reserve_one_time_set_by_the_fullest(window: Window) -> None:
    keys, limits = ["k:rpm", "k:tpm"], [10.0, 100.0]
    sent = Stopwatch()
    assert window.reserve(keys, limits, [1, 90], None, W).admitted
    second = window.reserve(keys, limits, [1, 20], None, W)
    assert second.admitted and second.binding == 1  # tpm is full, rpm is not
    sent.assert_a_window_after_the_start(second.wait_s)
    third = window.reserve(keys, limits, [1, 1], None, W)
    assert third.wait_s >= second.wait_s - (time.monotonic() - sent.started)  # FIFO: never ahead of the second
    assert third.wait_s > 0


def test_concurrent_callers_never_overfill_a_window(window: Window) -> None:
    def caller() -> None:
        for _ in range(3):
            assert reserve(window, limit=4).admitted

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants = slots(window, "k:rpm")  # the send times granted, on the window's own clock
    assert len(grants) == 12
    for i in range(4, 12):  # any 5 consecutive grants span at least a window
        assert grants[i] - grants[i - 4] >= W - EPSILON


def test_a_released_slot_is_given_back(window: Window) -> None:
    sent = Stopwatch()
    assert reserve(window, limit=1).admitted
    waiting = reserve(window, limit=1)
    assert waiting.admitted and waiting.release is not None
    waiting.release()  # its caller gave up: the slot is free again
    assert len(slots(window, "k:rpm")) == 1
    sent.assert_a_window_after_the_start(reserve(window, limit=1).wait_s)  # that slot, not one a window later


def slots(window: Window, key: str) -> list[float]:
    if isinstance(window, InProcessWindow):
        return [when for when, _ in window.entries(key)]
    assert isinstance(window, RedisWindow)
    client = window._client  # the test's own client
    return [float(entry[1]) / 1000 for entry in client.zrange(key, 0, -1, withscores=True)]


def test_the_pure_algorithm_on_exact_times() -> None:
    assert earliest([[]], [2], [1], 10.0, 60.0) == (10.0, -1)
    assert earliest([[(0.0, 1), (5.0, 1)]], [2], [1], 10.0, 60.0) == (60.0, 0)
    assert earliest([[(0.0, 1), (5.0, 1)]], [2], [1], 61.0, 60.0) == (61.0, -1)
    assert earliest([[(70.0, 1)], []], [5, 5], [1, 1], 10.0, 60.0) == (70.0, 0)  # behind a waiting send


def test_the_in_process_window_on_an_injected_clock() -> None:
    now = [100.0]
    window = InProcessWindow(clock=lambda: now[0])
    for _ in range(30):
        assert window.reserve(["m"], [30], [1], None, 60.0).wait_s == 0
    assert window.reserve(["m"], [30], [1], None, 60.0).wait_s == 60.0
    now[0] = 130.0
    assert window.reserve(["m"], [30], [1], None, 60.0).wait_s == 30.0  # the second slot of the next minute


def test_a_redis_error_reaches_the_caller_of_the_bare_redis_window(redis_server: RedisServer) -> None:
    client = redis_server.client()
    window = RedisWindow(client)
    assert reserve(window).admitted
    redis_server.kill()
    with pytest.raises(redis.ConnectionError):
        reserve(window)
    client.close()
