"""The Redis lease against a real redis-server: one holder, compare-and-renew, compare-and-release, failover timing,
and Redis errors that stand a holder down without ever raising."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from structlog.testing import capture_logs

from monitor.clock import VirtualClock
from monitor.fleet.lease import DRIFT, AlwaysLeader, RedisLease
from monitor.fleet.redis_client import connect
from monitor.fleet.settings import FleetSettings
from tests.support.redis import RedisServer
from tests.support.wait import wait_for

KEY = "nbmon:{test}:quota:lease"


class Recorder:
    """The lease's hooks, as the daemon's metrics would see them."""

    def __init__(self) -> None:
        self.changes: list[bool] = []
        self.errors: list[str] = []

    def change(self, held: bool) -> None:
        self.changes.append(held)

    def error(self, operation: str, _: Exception) -> None:
        self.errors.append(operation)


@contextmanager
def leases(
    server: RedisServer,
    count: int,
    ttl_s: float,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    recorder: Recorder | None = None,
) -> Iterator[list[RedisLease]]:
    """`count` leases on the same key, each with its own client (as replicas have), 200 ms per command."""
    clients = [connect(FleetSettings(redis_url=server.url, timeout_s=0.2)) for _ in range(count)]
    made = [
        RedisLease(
            client,
            KEY,
            ttl_s,
            monotonic=monotonic,
            on_change=recorder.change if recorder is not None else None,
            on_error=recorder.error if recorder is not None else None,
        )
        for client in clients
    ]
    try:
        yield made
    finally:
        for lease in made:
            lease.stop(release=False)
        for client in clients:
            client.close()


def holders(made: list[RedisLease]) -> list[RedisLease]:
    return [lease for lease in made if lease.held()]


def test_one_of_three_holds_the_key_and_the_others_come_back_when_it_expires(redis_server: RedisServer) -> None:
    clock = VirtualClock()
    with leases(redis_server, 3, 30.0, monotonic=clock.monotonic) as made:
        delays = [lease.step() for lease in made]
        (holder,) = holders(made)
        assert redis_server.client().get(KEY) == holder.holder.encode()
        assert len({lease.holder for lease in made}) == 3  # hostname-pid-random: unique in one process too
        assert delays[made.index(holder)] == pytest.approx(10.0)  # renews every ttl/3
        for lease in made:
            if lease is not holder:  # back at the key's expiry, and at least every ttl/3
                assert 0 < delays[made.index(lease)] <= 10.0
        for lease in made:
            lease.step()
        assert holders(made) == [holder]


def test_a_renewal_extends_the_key_and_a_follower_retries_at_its_expiry(redis_server: RedisServer) -> None:
    client = redis_server.client()
    with leases(redis_server, 2, 3.0) as (first, second):
        first.step()
        client.pexpire(KEY, 500)
        first.step()  # renewed: the full ttl again
        assert client.pttl(KEY) > 2500
        client.pexpire(KEY, 400)
        delay = second.step()
        assert 0.3 < delay <= 0.41  # the remaining 400 ms and a few, not a third of the ttl


def test_renewal_and_release_only_touch_the_holders_own_key(redis_server: RedisServer) -> None:
    client = redis_server.client()
    recorder = Recorder()
    with leases(redis_server, 1, 30.0, recorder=recorder) as (lease,):
        lease.step()
        client.set(KEY, "someone-else", px=30_000)  # the key lapsed and another replica took it
        with capture_logs() as logs:
            lease.step()
        assert not lease.held() and client.get(KEY) == b"someone-else"
        assert [e["event"] for e in logs] == ["nbmon.lease.lost"]
        assert logs[0]["reason"] == "held by another replica" and logs[0]["log_level"] == "info"
        lease.release()
        assert client.get(KEY) == b"someone-else"  # compare-and-del: not ours, not deleted
        client.delete(KEY)
        lease.step()
        lease.release()
        assert client.get(KEY) is None and not lease.held()
    assert recorder.changes == [True, False, True, False]


def test_a_holder_stops_counting_itself_the_holder_before_redis_lets_the_key_go(redis_server: RedisServer) -> None:
    clock = VirtualClock()
    with leases(redis_server, 1, 10.0, monotonic=clock.monotonic) as (lease,):
        lease.step()
        clock.advance(10.0 * (1 - DRIFT) - 0.001)
        assert lease.held()
        clock.advance(0.002)  # no renewal came (a stalled thread): it stands down on its own clock
        assert not lease.held()
        lease.step()  # the key is still ours in Redis: reclaimed
        assert lease.held()


def test_leadership_is_logged_once_per_change_at_info(redis_server: RedisServer) -> None:
    with leases(redis_server, 1, 30.0) as (lease,), capture_logs() as logs:
        for _ in range(5):
            lease.step()
    assert [(e["event"], e["log_level"]) for e in logs] == [("nbmon.lease.acquired", "info")]


def test_a_dead_holder_is_replaced_within_one_ttl_a_stopped_one_within_a_third(redis_server: RedisServer) -> None:
    ttl = 1.5
    with leases(redis_server, 3, ttl) as made:
        for lease in made:
            lease.start()
        (first,) = holders(made)
        first.stop(release=False)  # a crash: no release, the key lapses
        died = time.monotonic()
        wait_for(lambda: len(holders(made)) == 1 and not first.held(), timeout=2 * ttl, interval=0.005)
        crash_failover = time.monotonic() - died
        (second,) = holders(made)
        second.stop(release=True)  # a clean stop gives the key up
        stopped = time.monotonic()
        wait_for(lambda: len(holders(made)) == 1, timeout=2 * ttl, interval=0.005)
        clean_failover = time.monotonic() - stopped
    print(f"\nlease ttl {ttl}s: failover after a crash {crash_failover:.3f}s, after a clean stop {clean_failover:.3f}s")
    assert crash_failover <= ttl + 0.1
    assert clean_failover <= ttl / 3 + 0.1


def test_redis_errors_stand_the_holder_down_and_are_counted_never_raised(redis_server: RedisServer) -> None:
    recorder = Recorder()
    with leases(redis_server, 1, 3.0, recorder=recorder) as (lease,):
        lease.step()
        assert lease.held()
        redis_server.client().client_pause(800)  # every command waits 800 ms: longer than the 200 ms timeout
        with capture_logs() as logs:
            lease.step()
            lease.step()
        assert not lease.held() and recorder.errors == ["renew", "acquire"]
        assert [e["event"] for e in logs] == ["nbmon.lease.redis_error", "nbmon.lease.lost"]  # the error once
        assert logs[0]["error_type"] == "TimeoutError" and "redis://" not in str(logs[0])
        time.sleep(0.9)
        with capture_logs() as logs:
            lease.step()  # the key outlived the pause and is still ours: reclaimed, not waited out
        assert lease.held()
        assert [(e["event"], e["log_level"]) for e in logs] == [
            ("nbmon.lease.redis_recovered", "debug"),
            ("nbmon.lease.acquired", "info"),
        ]
        assert recorder.changes == [True, False, True]


def test_a_dead_redis_means_no_holder_and_a_restarted_one_a_holder_again(redis_server: RedisServer) -> None:
    recorder = Recorder()
    with leases(redis_server, 2, 3.0, recorder=recorder) as made:
        for lease in made:
            lease.step()
        assert len(holders(made)) == 1
        redis_server.kill()
        for lease in made:
            lease.step()  # raises nothing
        assert holders(made) == [] and sorted(recorder.errors) == ["acquire", "renew"]
        assert recorder.changes == [True, False]
        with RedisServer(redis_server.directory, port=redis_server.port):  # empty: nothing persisted
            for lease in made:
                lease.step()
            assert len(holders(made)) == 1


def test_without_redis_the_one_replica_always_leads() -> None:
    lease = AlwaysLeader()
    lease.start()
    assert lease.held() and lease.holder == "local"
    lease.stop()
    assert lease.held()


def test_a_ttl_too_short_to_renew_is_refused(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        RedisLease(redis_server.client(), KEY, 0.01)
