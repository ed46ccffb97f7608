"""Faults the daemon must survive without losing a page or lying about it (issue #15, points 1, 2 and 6).

The disk fills up through the persistence seam (monitor.testing.FullDisk: ENOSPC on every write of the state file,
the flagd file and the SQLite outbox); the data directory disappears for real; `nbmon run` is stopped with an
unsaved state; a crash (the daemon abandoned without stop(), which is what kill -9 leaves: files only) at every
step of an episode. Every case ends the same way: each notification delivered, and the flag right after restart.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog.testing

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.testing import FullDisk
from monitor.testing.notify import FakePagerDuty, FakeSlack
from tests.daemon.test_daemon_notify import Clock, Traffic, drain, tick
from tests.daemon.test_daemon_process import TOKEN, AppMetrics, Process, write_config
from tests.support.wait import wait_for

KEY = "R0UTINGKEY0123456789012345678901"


@pytest.fixture
def receivers(monkeypatch: pytest.MonkeyPatch) -> Any:
    with FakeSlack() as slack, FakePagerDuty() as pagerduty:
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        monkeypatch.setenv("TEST_PD_KEY", KEY)
        yield slack, pagerduty


def make(tmp_path: Path, pagerduty: FakePagerDuty, clock: Clock, traffic: Traffic, disk: FullDisk | None) -> Daemon:
    config = from_mapping(
        {
            "state": {"path": str(tmp_path / "state.json"), "flagd_path": str(tmp_path / "flags.json")},
            "admin": {"token": TOKEN},
            "listen": {"host": "127.0.0.1", "port": 0},
            "notify": {
                "environment": "test",
                "outbox_path": str(tmp_path / "outbox.sqlite"),
                "channels": {
                    "oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"},
                    "pager": {"kind": "pagerduty", "routing_key_env": "TEST_PD_KEY", "events_url": pagerduty.url},
                },
            },
        }
    )
    return Daemon(config, source=traffic, monotonic=lambda: clock.mono, wall=clock.wall, disk=disk)


def sample(daemon: Daemon, name: str, **labels: str) -> float:
    return daemon.registry.get_sample_value(name, labels) or 0.0


def test_a_full_disk_during_an_outage_loses_no_page_and_says_so(tmp_path: Path, receivers: Any) -> None:
    slack, pagerduty = receivers
    clock, disk = Clock(), FullDisk()
    traffic = Traffic(clock)
    daemon = make(tmp_path, pagerduty, clock, traffic, disk)
    tick(daemon, clock, 2)
    disk.full = True
    with structlog.testing.capture_logs() as logs:
        traffic.share = 0.5  # the outage, on a full disk
        tick(daemon, clock, 7)
        assert daemon.store.effective().value is True  # decided and served from memory
        traffic.share = 0.0
        tick(daemon, clock, 12)
        assert daemon.store.effective().value is False
        drain(daemon, clock)
    # Every page went out, from memory, and each was counted as not persisted.
    assert ["entered" in m["text"] for m in slack.accepted] == [True, False]
    assert [e["event_action"] for e in pagerduty.accepted] == ["trigger", "resolve"]
    for channel in ("oncall", "pager"):
        assert sample(daemon, "nbmon_notifications_total", channel=channel, result="unpersisted") == 2
        assert sample(daemon, "nbmon_notifications_total", channel=channel, result="sent") == 2
    # Someone notices: the gauge, the counter, /readyz, and one log line per store for the whole streak.
    for store in ("state", "flagd", "outbox"):
        assert sample(daemon, "nbmon_persistence_ok", store=store) == 0
        assert sample(daemon, "nbmon_persistence_errors_total", store=store) >= 1
    ready, reasons = daemon.ready()
    assert not ready and {r.split(" ", 1)[0] for r in reasons} >= {"state", "flagd", "outbox"}
    failures = [e for e in logs if e["event"] in ("nbmon.persist.failed", "nbmon.notify.persist_failed")]
    assert sorted(e.get("store", "outbox-dispatcher") for e in failures) == [
        "flagd", "outbox", "outbox-dispatcher", "state"
    ]  # fmt: skip
    assert not any("exc_info" in e or "exception" in e for e in logs)  # no traceback per tick
    # Every tick was measured, the failing ones too (the flagd write used to stop the histogram).
    assert sample(daemon, "nbmon_evaluation_duration_seconds_count") == 4 * (2 + 7 + 12)

    disk.full = False  # the disk comes back: the next tick saves what memory held
    tick(daemon, clock, 0.25)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["degraded"] is False and [t["to"] for t in saved["history"]] == [True, False]
    assert json.loads((tmp_path / "flags.json").read_text())["flags"]["degraded-mode"]["defaultVariant"] == "off"
    for store in ("state", "flagd"):
        assert sample(daemon, "nbmon_persistence_ok", store=store) == 1
    assert daemon.stop() is True


def test_the_outbox_takes_back_what_memory_held_once_the_disk_recovers(tmp_path: Path, receivers: Any) -> None:
    slack, pagerduty = receivers
    slack.reply_next(500)  # the receiver is down too: the entry waits, in memory
    clock, disk = Clock(), FullDisk()
    traffic = Traffic(clock)
    daemon = make(tmp_path, pagerduty, clock, traffic, disk)
    tick(daemon, clock, 2)
    disk.full = True
    traffic.share = 0.5
    tick(daemon, clock, 7)
    assert daemon.dispatcher is not None
    daemon.dispatcher.drain_once(clock.wall())
    assert daemon.dispatcher.memory.depth() == 1  # Slack's entry, to be retried
    disk.full = False
    daemon.dispatcher.drain_once(clock.wall() + timedelta(minutes=10))
    assert daemon.dispatcher.memory.depth() == 0
    assert sample(daemon, "nbmon_persistence_ok", store="outbox") == 1
    assert [m["text"].split(" ")[0] for m in slack.accepted] == ["[FIRING]"]
    daemon.stop()


def test_the_admin_api_says_an_override_was_not_saved(tmp_path: Path, receivers: Any) -> None:
    _, pagerduty = receivers
    clock, disk = Clock(), FullDisk()
    daemon = make(tmp_path, pagerduty, clock, Traffic(clock), disk)
    daemon.start()
    try:
        headers = {"authorization": f"Bearer {TOKEN}"}
        disk.full = True
        body = {"value": True, "reason": "disk test", "expires_in": "30m"}
        answer = httpx.post(f"{daemon.url}/v1/override", json=body, headers=headers, timeout=5)
        assert answer.status_code == 200, answer.text  # it is in force: not a 500
        assert answer.json()["persisted"] is False and "restart would lose it" in answer.json()["warning"]
        assert answer.json()["effective"]["value"] is True
        flag = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags/degraded-mode", json={"context": {}}, timeout=5)
        assert flag.json()["value"] is True  # and served
        assert httpx.get(f"{daemon.url}/readyz", timeout=5).status_code == 503
        disk.full = False
        daemon.evaluate()  # the next tick retries the save
        assert json.loads((tmp_path / "state.json").read_text())["override"]["reason"] == "disk test"
        cleared = httpx.delete(f"{daemon.url}/v1/override", headers=headers, timeout=5).json()
        assert cleared["persisted"] is True and "warning" not in cleared
    finally:
        daemon.stop()


def test_files_are_private_and_secret_shapes_never_reach_a_reason(tmp_path: Path, receivers: Any) -> None:
    _, pagerduty = receivers
    clock = Clock()
    daemon = make(tmp_path, pagerduty, clock, Traffic(clock), None)
    tick(daemon, clock, 0.25)
    daemon.set_override(
        {
            "value": True,
            "reason": "key AIzaSyA1234567890abcdefghijklmnopqrstuv leaked, see ?key=abc",
            "expires_in": "1h",
        }
    )
    modes = {name: stat.S_IMODE((tmp_path / name).stat().st_mode) for name in ("state.json", "flags.json")}
    assert modes == {"state.json": 0o600, "flags.json": 0o640}
    assert stat.S_IMODE((tmp_path / "outbox.sqlite").stat().st_mode) == 0o600
    for text in (
        (tmp_path / "state.json").read_text(),
        (tmp_path / "flags.json").read_text(),
        json.dumps(daemon.state(), default=str),
    ):
        assert "AIzaSyA1234567890" not in text and "key=abc" not in text and "[REDACTED]" in text
    with pytest.raises(ValueError, match="7 days"):
        daemon.set_override({"value": True, "reason": "forever", "expires_at": "9999-12-31T00:00:00Z"})
    daemon.stop()


# (503 share, minutes): calm, a storm long enough to enter, the recovery hold, calm.
EPISODE = [(0.0, 2), (0.5, 14), (0.0, 12)]  # the storm outlasts a restart mid-hold (pending is not kept)
MINUTES = sum(minutes for _, minutes in EPISODE)


@pytest.mark.parametrize("crash_after", range(1, MINUTES + 1))
def test_a_crash_at_any_step_of_an_episode_loses_no_page(tmp_path: Path, receivers: Any, crash_after: int) -> None:
    """kill -9 leaves only the files: the daemon is abandoned after minute `crash_after` (some notifications sent,
    some queued, some in flight) and a new one starts on its files. PagerDuty ends with one incident, triggered and
    resolved (its dedup_key folds a repeat); Slack gets each end at least once; the flag is right after the restart."""
    slack, pagerduty = receivers
    clock = Clock()
    traffic = Traffic(clock)
    daemon = make(tmp_path, pagerduty, clock, traffic, None)
    minute = 0
    for share, minutes in EPISODE:
        traffic.share = share
        for _ in range(minutes):
            tick(daemon, clock, 1)
            minute += 1
            assert daemon.dispatcher is not None
            daemon.dispatcher.drain_once(clock.wall())  # each minute some are sent; the rest wait
            if minute == crash_after:
                expected = daemon.store.effective().value
                if daemon.dispatcher.outbox.entries(state="pending"):
                    claimed = daemon.dispatcher.outbox.claim_due(clock.wall().timestamp() + 3600, limit=1)
                    assert claimed  # one left in flight, as a crash mid-send leaves it
                daemon = make(tmp_path, pagerduty, clock, traffic, None)  # crash: abandon it, restart on its files
                assert daemon.store.effective().value is expected
                assert daemon.dispatcher is not None
                daemon.dispatcher.start()  # recovers what was in flight
                daemon.dispatcher.stop()
    for _ in range(15):  # a restart while recovering restarts the recovery hold: the calm goes on until it holds
        if not daemon.store.effective().value:
            break
        tick(daemon, clock, 1)
    drain(daemon, clock)
    actions = [e["event_action"] for e in pagerduty.accepted]
    assert "trigger" in actions and "resolve" in actions
    (history,) = pagerduty.incidents.values()  # one incident: a repeat is folded by the dedup_key
    assert history[-1].status == "resolved"
    texts = [m["text"] for m in slack.accepted]
    assert any("entered degraded mode" in t for t in texts) and any("left degraded mode" in t for t in texts)
    assert daemon.store.effective().value is False
    daemon.stop()


def test_sigterm_with_an_unsaved_state_exits_non_zero(tmp_path: Path) -> None:
    """The data directory disappears under a running `nbmon run` (a real filesystem error, as root too)."""
    app = AppMetrics()
    data = tmp_path / "data"
    data.mkdir()
    config = write_config(tmp_path, app.url, admin=f'token = "{TOKEN}"')
    config.write_text(config.read_text().replace(str(tmp_path / "state.json"), str(data / "state.json")))
    proc = Process(config)
    try:
        shutil.rmtree(data)
        answer = httpx.post(
            f"{proc.url}/v1/override",
            json={"value": True, "reason": "while the disk is gone", "expires_in": "10m"},
            headers={"authorization": f"Bearer {TOKEN}"},
            timeout=5,
        )
        assert answer.status_code == 200 and answer.json()["persisted"] is False
        wait_for(
            lambda: httpx.get(f"{proc.url}/readyz", timeout=5).status_code == 503,
            timeout=20,
            interval=0.1,
            what="/readyz red",
        )
        assert proc.stop(signal.SIGTERM) == 1
        assert any('"nbmon.state.unsaved_at_stop"' in line for line in proc.lines)
        assert proc.proc.returncode == 1
    finally:
        if proc.proc.poll() is None:
            proc.stop(signal.SIGKILL)
        app.close()
    assert not os.path.exists(data)
