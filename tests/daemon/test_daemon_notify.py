"""A degraded episode through the daemon: exactly one Slack "entered" + one "recovered", and one PagerDuty
incident triggered then resolved with the same dedup_key, although both receivers fail at first."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.signals import Reading, Series
from monitor.testing.notify import FakePagerDuty, FakeSlack
from tests.support.constants import PRO

OK, FAIL = Series(PRO, "200", "ok"), Series(PRO, "503", "overloaded")


class Clock:
    def __init__(self) -> None:
        self.mono = 0.0
        self.start = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.mono)


class Traffic:
    """Cumulative counters of an app doing 100 requests per tick, a settable share of them 503s."""

    name = "traffic"

    def __init__(self, clock: Clock) -> None:
        self.clock, self.share, self.values = clock, 0.0, {OK: 0.0, FAIL: 0.0}

    def read(self) -> Reading:
        self.values[FAIL] += round(100 * self.share)
        self.values[OK] += 100 - round(100 * self.share)
        return Reading(at=self.clock.mono, values=dict(self.values))


@pytest.fixture
def receivers() -> Iterator[tuple[FakeSlack, FakePagerDuty]]:
    with FakeSlack() as slack, FakePagerDuty() as pagerduty:
        yield slack, pagerduty


def make_daemon(tmp_path: Path, slack: FakeSlack, pagerduty: FakePagerDuty, clock: Clock, source: Any) -> Daemon:
    config = from_mapping(
        {
            "state": {"path": str(tmp_path / "state.json")},
            "notify": {
                "environment": "test",
                "outbox_path": str(tmp_path / "outbox.sqlite"),
                "runbook_url": "https://wiki.example.com/runbooks/nbmon",
                "channels": {
                    "oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"},
                    "pager": {"kind": "pagerduty", "routing_key_env": "TEST_PD_KEY", "events_url": pagerduty.url},
                },
            },
        }
    )
    return Daemon(config, source=source, monotonic=lambda: clock.mono, wall=clock.wall)


def tick(daemon: Daemon, clock: Clock, minutes: float) -> None:
    for _ in range(int(minutes * 4)):
        clock.mono += 15
        daemon.read_source()
        daemon.evaluate()


def drain(daemon: Daemon, clock: Clock) -> None:
    assert daemon.dispatcher is not None
    for step in range(60):  # virtual time: backoffs pass without sleeping
        daemon.dispatcher.drain_once(clock.wall() + timedelta(minutes=step))


def test_one_episode_one_message_each_way(
    tmp_path: Path, receivers: tuple[FakeSlack, FakePagerDuty], monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, pagerduty = receivers
    monkeypatch.setenv("TEST_SLACK_URL", slack.url)
    monkeypatch.setenv("TEST_PD_KEY", "R0UTINGKEY0123456789012345678901")
    slack.reply_next(429, retry_after=1)
    slack.reply_next(500)
    pagerduty.reply_next(500)
    pagerduty.reply_next(429)
    clock = Clock()
    traffic = Traffic(clock)
    daemon = make_daemon(tmp_path, slack, pagerduty, clock, traffic)
    tick(daemon, clock, 2)
    traffic.share = 0.5  # the outage
    tick(daemon, clock, 7)
    assert daemon.store.effective().value is True
    traffic.share = 0.0  # recovery
    tick(daemon, clock, 12)
    assert daemon.store.effective().value is False
    drain(daemon, clock)

    texts = [m["text"] for m in slack.accepted]
    assert len(texts) == 2, texts
    assert "entered degraded mode" in texts[0] and "left degraded mode" in texts[1]
    assert "nbmon flag set off" in str(slack.accepted[0])
    (history,) = pagerduty.incidents.values()
    assert len(history) == 1 and history[0].status == "resolved"
    keys = {e["dedup_key"] for e in pagerduty.accepted}
    assert keys == {"nbmon/test/degraded-mode"}
    assert [e["event_action"] for e in pagerduty.accepted] == ["trigger", "resolve"]
    sent = daemon.registry.get_sample_value("nbmon_notifications_total", {"channel": "oncall", "result": "sent"})
    retried = daemon.registry.get_sample_value("nbmon_notifications_total", {"channel": "oncall", "result": "retried"})
    assert (sent, retried) == (2, 2)
    assert daemon.registry.get_sample_value("nbmon_notification_queue_depth") == 0
    metrics = daemon.metrics_exposition()[0].decode()
    assert "R0UTINGKEY" not in metrics and slack.url not in metrics


def test_a_queued_notification_survives_a_restart(
    tmp_path: Path, receivers: tuple[FakeSlack, FakePagerDuty], monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, pagerduty = receivers
    monkeypatch.setenv("TEST_SLACK_URL", slack.url)
    monkeypatch.setenv("TEST_PD_KEY", "R0UTINGKEY0123456789012345678901")
    clock = Clock()
    traffic = Traffic(clock)
    first = make_daemon(tmp_path, slack, pagerduty, clock, traffic)
    traffic.share = 0.6
    tick(first, clock, 7)  # entered degraded: the notifications are queued, never drained
    assert first.dispatcher is not None and first.dispatcher.outbox.depth() == 2
    first.stop()
    assert slack.accepted == [] and pagerduty.accepted == []

    second = make_daemon(tmp_path, slack, pagerduty, clock, traffic)
    assert second.store.effective().value is True  # still degraded after the restart
    assert second.dispatcher is not None
    second.dispatcher.outbox.recover(clock.wall().timestamp())
    drain(second, clock)
    drain(second, clock)
    assert len(slack.accepted) == 1 and len(pagerduty.accepted) == 1  # delivered once, not twice
    second.stop()
