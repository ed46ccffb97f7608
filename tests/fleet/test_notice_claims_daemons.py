"""Issue #18: three real sidecars seeing the same fleet figures (a scripted storm, a budget in the shared Redis
ledger) send each notice once to the one Slack channel; with Redis killed, each still sends its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from monitor.budget.spend import COST_METRIC
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.signals import Reading, Series
from monitor.testing.notify import FakeSlack
from tests.support.constants import PRO
from tests.support.redis import RedisServer

OK, FAIL = Series(PRO, "200", "ok"), Series(PRO, "503", "overloaded")


class Clock:
    def __init__(self) -> None:
        self.mono = 0.0
        self.start = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 10:00 PST

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.mono)


class Traffic:
    """One replica's share of the fleet's counts as a PromQL sidecar reads them: the same on every sidecar."""

    name = "fleet-traffic"

    def __init__(self, clock: Clock, storm: list[float]) -> None:
        self.clock, self.storm, self.values = clock, storm, {OK: 0.0, FAIL: 0.0}

    def read(self) -> Reading:
        share = self.storm[0]
        self.values[FAIL] += round(100 * share)
        self.values[OK] += 100 - round(100 * share)
        return Reading(at=self.clock.mono, values=dict(self.values))


@contextmanager
def app_cost() -> Iterator[tuple[Any, str]]:
    """An app's /metrics with the cost counter (what each sidecar scrapes for the budget)."""
    registry = CollectorRegistry()
    cost = Counter(COST_METRIC.removesuffix("_total"), "cost", ["model"], registry=registry)
    cost.labels(PRO).inc(0)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield cost.labels(PRO), f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def sidecars(tmp_path: Path, redis_url: str, clock: Clock, storm: list[float]) -> Iterator[tuple[list[Daemon], Any]]:
    with ExitStack() as stack:
        daemons, costs = [], []
        for index in range(3):
            cost, target = stack.enter_context(app_cost())
            costs.append(cost)
            config = from_mapping(
                {
                    "state": {"path": str(tmp_path / f"sidecar-{index}" / "state.json")},
                    "source": {"kind": "scrape", "targets": [target]},  # the budget's; the rules read `Traffic`
                    "fleet": {"redis_url": redis_url, "project": "banana-prod"},
                    "budget": {"daily_usd": 10.0, "source": "redis", "interval": "1h"},
                    "notify": {
                        "environment": "test",
                        "channels": {"oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"}},
                    },
                }
            )
            daemon = Daemon(config, source=Traffic(clock, storm), monotonic=lambda: clock.mono, wall=clock.wall)
            stack.callback(daemon.stop)
            daemons.append(daemon)
        yield daemons, costs


def tick(daemons: list[Daemon], clock: Clock, minutes: float) -> None:
    for _ in range(int(minutes * 4)):
        clock.mono += 15
        for daemon in daemons:
            daemon.read_source()
            daemon.evaluate()


def drain(daemons: list[Daemon], clock: Clock) -> None:
    for daemon in daemons:
        assert daemon.dispatcher is not None
        daemon.dispatcher.drain_once(clock.wall())


def episode(daemons: list[Daemon], clock: Clock, storm: list[float]) -> None:
    storm[0] = 0.5
    tick(daemons, clock, 7)
    assert all(d.store.effective().value is True for d in daemons)
    storm[0] = 0.0
    tick(daemons, clock, 12)
    assert all(d.store.effective().value is False for d in daemons)


def texts(slack: FakeSlack) -> list[str]:
    return [str(message["text"]).split("\n")[0] for message in slack.accepted]


def claims(daemon: Daemon, result: str) -> float:
    return daemon.registry.get_sample_value("nbmon_notice_claims_total", {"result": result}) or 0.0


def test_three_sidecars_one_message_per_notice_and_each_sends_without_redis(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, storm = Clock(), [0.0]
    with FakeSlack() as slack:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        run(slack, tmp_path, redis_server, clock, storm)


def run(slack: FakeSlack, tmp_path: Path, redis_server: RedisServer, clock: Clock, storm: list[float]) -> None:
    with sidecars(tmp_path, redis_server.url, clock, storm) as (daemons, costs):
        tick(daemons, clock, 2)
        episode(daemons, clock, storm)
        drain(daemons, clock)
        assert len(slack.accepted) == 2, texts(slack)
        assert "entered degraded mode" in texts(slack)[0] and "left degraded mode" in texts(slack)[1]
        # A second episode minutes later, within the claims' ttl: the resolved claim let the firing one go.
        episode(daemons, clock, storm)
        drain(daemons, clock)
        assert len(slack.accepted) == 4, texts(slack)

        # The budget: every sidecar reads the fleet's spend in Redis and tells each threshold it crosses, once for
        # the fleet: sidecar 0 adds its app's $5 (50%), sidecar 1 its $3.50 (80%), sidecar 2 reads 80% too.
        for daemon in daemons:
            daemon.check_budget()  # the baselines
        costs[0].inc(5.0)
        costs[1].inc(3.5)
        for daemon in daemons:
            daemon.check_budget()
        for daemon in daemons:
            daemon.check_budget()  # 50% and 80% on every sidecar now: each has told them, or lost their claims
        drain(daemons, clock)
        budget = [t.split(" (rule ")[0] for t in texts(slack) if "budget" in t]
        assert budget == [
            "[FIRING] The daily budget of banana-prod is 50% spent: $5.00 of $10.00",
            "[FIRING] The daily budget of banana-prod is 80% spent: $8.50 of $10.00",
        ]
        assert sum(claims(d, "won") for d in daemons) == 6  # 2 episodes x 2 notices, and 2 budget notices
        assert sum(claims(d, "lost") for d in daemons) == 8 + 2  # 80%: sidecar 2 at once, sidecar 0 next check
        assert len(slack.accepted) == 6

        # Redis dies: a duplicate is better than a lost page. Each sidecar tells the episode itself.
        redis_server.kill()
        episode(daemons, clock, storm)
        drain(daemons, clock)
        assert len(slack.accepted) == 6 + 6, texts(slack)
        assert sorted(texts(slack)[6:]) == sorted(texts(slack)[:2] * 3)
        assert all(claims(d, "error") == 2 for d in daemons)
        for daemon in daemons:
            assert daemon.registry.get_sample_value("nbmon_job_errors_total", {"job": "evaluate"}) in (None, 0.0)
