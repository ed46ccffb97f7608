"""Issue #18, point 2: three real daemons, one Redis, one quota poller. Each daemon polls its own fake Cloud
Monitoring (the real MetricServiceClient over gRPC), so a fake's request count says which daemon polled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from monitor.clock import VirtualClock
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.fleet.lease import DRIFT, RedisLease
from monitor.quota.fetch import QuotaFetcher
from monitor.quota.poller import QuotaPoller
from monitor.signals import Reading
from monitor.testing.notify import FakeSlack
from monitor.testing.quota import FakeMetricService, limit_series, usage_series
from tests.support.redis import RedisServer
from tests.support.wait import wait_for

TTL_S = 2.0
METRIC = "generativelanguage.googleapis.com/generate_requests_per_model"
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel"
LEASE = {"lease": "quota-poller"}


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


@dataclass
class Replica:
    name: str
    daemon: Daemon
    fake: FakeMetricService

    def sample(self, metric: str, labels: dict[str, str] | None = None) -> float:
        return self.daemon.registry.get_sample_value(metric, labels or {}) or 0.0

    @property
    def lease(self) -> RedisLease:
        assert self.daemon.quota is not None
        lease = self.daemon.quota.fleet.lease
        assert isinstance(lease, RedisLease)
        return lease

    @property
    def leads(self) -> bool:
        return self.sample("nbmon_quota_poller_leader") == 1.0

    @property
    def utilization(self) -> str | None:
        """The quota gauge's value as this replica's /metrics says it (None: not exported)."""
        for line in self.daemon.metrics_exposition()[0].decode().splitlines():
            if line.startswith("nbmon_quota_utilization_ratio{"):
                return line.rsplit(" ", 1)[1]
        return None


def scripted(fake: FakeMetricService, now: datetime) -> FakeMetricService:
    minute = now.replace(second=0, microsecond=0)
    return fake.add(
        usage_series("proj-a", METRIC, [(minute, 98)]),
        limit_series("proj-a", METRIC, PER_MINUTE, 100, at=now - timedelta(hours=1)),
    )


def fetcher(fake: FakeMetricService) -> QuotaFetcher:
    return QuotaFetcher(fake.client(), timeout_s=5)


def fleet_config(tmp_path: Path, name: str, redis_url: str, **extra: Any) -> Any:
    return from_mapping(
        {
            "state": {"path": str(tmp_path / name / "state.json")},
            "quota": {"interval": "0.2s", "lease_ttl": f"{TTL_S}s"},
            "fleet": {"redis_url": redis_url, "project": "test-fleet"},
            **extra,
        }
    )


@contextmanager
def fleet(tmp_path: Path, redis_url: str, count: int = 3) -> Iterator[list[Replica]]:
    """`count` started daemons (no HTTP), each polling its own fake when it holds the lease; all stopped after."""
    with ExitStack() as stack:
        replicas = []
        for index in range(count):
            name = f"daemon-{index}"
            fake = stack.enter_context(scripted(FakeMetricService(), datetime.now(UTC)))
            poller = QuotaPoller(partial(fetcher, fake), ["proj-a"])
            daemon = Daemon(fleet_config(tmp_path, name, redis_url), source=QuietSource(), quota_poller=poller)
            stack.callback(daemon.stop)
            daemon.start(serve_http=False)
            replicas.append(Replica(name, daemon, fake))
        yield replicas


def only_leader(replicas: list[Replica]) -> Replica:
    (leader,) = [r for r in replicas if r.leads]
    return leader


def wait_for_one_leader(
    replicas: list[Replica], *, timeout: float, interval: float, not_: Replica | None = None
) -> Replica:
    """The one leader, from one pass over the replicas: two passes could see the old holder lapse in between and a
    new one not yet in (zero leaders), or the reverse."""
    found: list[Replica] = []

    def one() -> bool:
        found[:] = [r for r in replicas if r.leads]
        return len(found) == 1 and found[0] is not not_

    wait_for(one, timeout=timeout, interval=interval, what="exactly one leader")
    return found[0]


def test_three_daemons_one_poller_and_a_failover_within_one_lease_period(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with fleet(tmp_path, redis_server.url) as replicas:
        wait_for(lambda: all(r.utilization == "0.98" for r in replicas), timeout=10, what="the gauges everywhere")
        first = only_leader(replicas)
        time.sleep(1.0)  # five quota intervals
        polled = {r.name: len(r.fake.requests) for r in replicas}
        assert polled[first.name] >= 5 * 4  # four ListTimeSeries calls per poll
        assert all(count == 0 for name, count in polled.items() if name != first.name), polled

        # A crash: the leader's renewals stop and nothing is released. Its scheduler runs on, as a follower.
        first.lease.stop(release=False)
        died, first_until = time.monotonic(), first.lease.held_until
        second = wait_for_one_leader(replicas, timeout=3 * TTL_S, interval=0.005, not_=first)
        crash_failover = time.monotonic() - died
        # Never two pollers: the new holder's first claim was sent after the old one had stopped counting itself
        # the holder (held_until is its last claim's send time + ttl less the drift allowance; one clock, one
        # process), and not much later: the key lapses DRIFT x ttl after that, and a follower retries at its expiry.
        gap = second.lease.acquired_at - first_until
        assert 0 <= gap <= TTL_S * DRIFT + 0.25, gap
        time.sleep(0.3)  # a poll the old holder began just before its lease lapsed may still be finishing
        asked = len(first.fake.requests)
        time.sleep(0.6)
        assert len(first.fake.requests) == asked  # the old leader no longer polls
        assert len(second.fake.requests) > 0
        assert all(r.utilization == "0.98" for r in replicas)  # the followers still export the quota gauges

        # A clean stop releases the lease: the last daemon takes over within a third of the ttl.
        second.daemon.stop()
        stopped = time.monotonic()
        rest = [r for r in replicas if r is not second]
        third = wait_for_one_leader(rest, timeout=3 * TTL_S, interval=0.005)
        clean_failover = time.monotonic() - stopped
        assert third is not first and third is not second
        wait_for(lambda: len(third.fake.requests) > 0, timeout=2, what="the third daemon polling")
        for replica in replicas:
            assert replica.sample("nbmon_lease_errors_total", {**LEASE, "operation": "renew"}) == 0
            assert replica.sample("nbmon_job_errors_total", {"job": "quota"}) == 0
    print(
        f"\nlease ttl {TTL_S:g}s, quota interval 0.2s: failover {crash_failover:.3f}s after the leader died"
        f" (renewals stopped, nothing released), {clean_failover:.3f}s after a clean stop; the new holder's claim"
        f" came {gap * 1000:.0f} ms after the old one stood down"
    )
    assert crash_failover <= TTL_S + 0.25  # the key lapses one ttl after the last renewal at the latest
    assert clean_failover <= TTL_S / 3 + 0.25


def test_redis_down_no_daemon_fails_nobody_polls_and_one_leads_again_after(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with fleet(tmp_path, redis_server.url) as replicas:
        wait_for(lambda: all(r.utilization == "0.98" for r in replicas), timeout=10, what="the gauges everywhere")
        only_leader(replicas)
        redis_server.kill()
        died = time.monotonic()
        wait_for(lambda: not any(r.leads for r in replicas), timeout=3 * TTL_S, interval=0.01)
        stood_down = time.monotonic() - died
        wait_for(
            lambda: all(r.sample("nbmon_lease_errors_total", {**LEASE, "operation": "acquire"}) > 0 for r in replicas),
            timeout=3 * TTL_S,
            what="lease errors counted by every daemon",
        )
        asked = [len(r.fake.requests) for r in replicas]
        time.sleep(0.6)
        assert [len(r.fake.requests) for r in replicas] == asked  # nobody polls without the lease
        assert all(r.utilization == "0.98" for r in replicas)  # the last readings stay exported (stale)
        restarted = RedisServer(redis_server.directory, port=redis_server.port)  # back, empty
        back = time.monotonic()
        with restarted:
            leader = wait_for_one_leader(replicas, timeout=3 * TTL_S, interval=0.01)
            recovered = time.monotonic() - back
            asked_now = len(leader.fake.requests)
            wait_for(lambda: len(leader.fake.requests) > asked_now, timeout=2, what="the new leader polling")
            for replica in replicas:
                assert replica.sample("nbmon_job_errors_total", {"job": "quota"}) == 0
                assert replica.sample("nbmon_job_errors_total", {"job": "evaluate"}) == 0
            time.sleep(0.5)
            assert sum(r.leads for r in replicas) == 1
    print(f"\nRedis killed: every daemon stood down in {stood_down:.3f}s; restarted: one leader in {recovered:.3f}s")


def test_a_critical_quota_is_notified_once_for_the_fleet(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime(2026, 3, 10, 19, 0, 30, tzinfo=UTC)
    clock = VirtualClock(start=now)
    with FakeSlack() as slack, scripted(FakeMetricService(), now) as fake, ExitStack() as stack:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        daemons = []
        for index in range(2):
            notify = {
                "outbox_path": str(tmp_path / f"outbox-{index}.sqlite"),
                "channels": {"oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"}},
            }
            config = fleet_config(tmp_path, f"daemon-{index}", redis_server.url, notify=notify)
            poller = QuotaPoller(lambda: QuotaFetcher(fake.client(), timeout_s=5), ["proj-a"], clock=clock)
            daemon = Daemon(
                config, source=QuietSource(), quota_poller=poller, monotonic=clock.monotonic, wall=clock.now
            )
            stack.callback(daemon.stop)
            assert daemon.quota is not None
            daemon.quota.start()  # what Daemon.start does first; the polls are driven by hand on the virtual clock
            daemons.append(daemon)
        for _ in range(4):  # the critical rule holds 120 s
            for daemon in daemons:
                daemon.poll_quota()
            clock.advance(60)
        for daemon in daemons:
            assert daemon.dispatcher is not None
            daemon.dispatcher.drain_once(clock.now())
            assert b"nbmon_quota_utilization_ratio{" in daemon.metrics_exposition()[0]
        assert len(slack.accepted) == 1, [m["text"] for m in slack.accepted]
        follower = daemons[1]
        assert follower.registry.get_sample_value("nbmon_quota_poller_leader") == 0
        assert follower.quota is not None and "follower" in follower.quota.readiness_detail()
