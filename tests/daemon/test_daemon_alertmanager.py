"""Alertmanager into the daemon: a real Alertmanager (Debian's prometheus-alertmanager) posting its webhook."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.signals import Reading
from tests.support.http import free_port
from tests.support.tools import alertmanager, amtool
from tests.support.wait import wait_for

TOKEN = "alertmanager-bearer-token-0123"
ALERT = "NbmonImage503RateHigh"


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    config = DaemonConfig(
        listen_port=0,
        state_path=tmp_path / "state.json",
        admin_token=TOKEN,
        rules={"degraded-mode": {"recovery_hold_s": 0}},  # release at once: the hold has its own test
    )
    running = Daemon(config, source=QuietSource())
    running.start()
    yield running
    running.stop()


def post(daemon: Daemon, body: Any, token: str | None = TOKEN) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    content = body if isinstance(body, bytes) else None
    return httpx.post(f"{daemon.url}/v1/alertmanager", json=None if content else body, content=content, headers=headers)


def payload(status: str, name: str = ALERT, fingerprint: str = "abc123") -> dict[str, Any]:
    alert = {"status": status, "labels": {"alertname": name, "severity": "critical"}, "fingerprint": fingerprint}
    return {"version": "4", "status": status, "receiver": "nbmon", "alerts": [alert], "groupLabels": {}}


def degraded(daemon: Daemon) -> bool:
    return bool(httpx.get(f"{daemon.url}/v1/state").json()["effective"]["value"])


def test_webhook_sets_and_clears_degraded_mode(daemon: Daemon) -> None:
    assert post(daemon, payload("firing")).status_code == 200
    assert degraded(daemon)
    state = httpx.get(f"{daemon.url}/v1/state").json()
    assert state["effective"]["rule"] == "alertmanager"
    assert post(daemon, payload("firing", name="SomethingElse", fingerprint="x")).json()["accepted"] == 0
    assert post(daemon, payload("resolved")).status_code == 200
    assert not degraded(daemon)


def test_webhook_degraded_while_any_watched_alert_fires(daemon: Daemon) -> None:
    post(daemon, payload("firing", fingerprint="a"))
    post(daemon, payload("firing", fingerprint="b"))
    post(daemon, payload("resolved", fingerprint="a"))
    assert degraded(daemon)
    post(daemon, payload("resolved", fingerprint="b"))
    assert not degraded(daemon)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", "not JSON"),
        ([], "JSON object"),
        ({"version": "3", "alerts": []}, "version"),
        ({"version": "4", "alerts": "x"}, "alerts"),
        ({"version": "4", "alerts": [{"status": "weird", "labels": {"alertname": ALERT}}]}, "status"),
        ({"version": "4", "alerts": [{"status": "firing", "labels": {}}]}, "alertname"),
    ],
)
def test_malformed_payloads_get_400_and_change_nothing(daemon: Daemon, body: Any, message: str) -> None:
    response = post(daemon, body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not degraded(daemon)


def test_webhook_needs_the_bearer_token(daemon: Daemon) -> None:
    assert post(daemon, payload("firing"), token=None).status_code == 401
    assert post(daemon, payload("firing"), token="wrong").status_code == 401
    assert not degraded(daemon)


def test_real_alertmanager_flips_the_flag(daemon: Daemon, tmp_path: Path) -> None:
    binary = alertmanager()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: nbmon
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: nbmon
    webhook_configs:
      - url: {daemon.url}/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {TOKEN}
"""
    )
    checked = subprocess.run([amtool(), "check-config", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: _ok(f"{url}/-/ready"), timeout=30, interval=0.2, what="Alertmanager ready")
        now = datetime.now(UTC)
        alert = {"labels": {"alertname": ALERT, "severity": "critical"}, "startsAt": now.isoformat()}
        alert["endsAt"] = (now + timedelta(hours=1)).isoformat()
        assert httpx.post(f"{url}/api/v2/alerts", json=[alert]).status_code == 200
        wait_for(lambda: degraded(daemon), timeout=30, interval=0.2, what="degraded after the alert fired")
        alert["endsAt"] = datetime.now(UTC).isoformat()  # resolve it
        assert httpx.post(f"{url}/api/v2/alerts", json=[alert]).status_code == 200
        wait_for(lambda: not degraded(daemon), timeout=30, interval=0.2, what="cleared after the alert resolved")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_alertmanager_release_waits_for_the_recovery_hold(tmp_path: Path) -> None:
    clock = [0.0]
    config = DaemonConfig(state_path=tmp_path / "s.json", rules={"degraded-mode": {"recovery_hold_s": 60}})
    held = Daemon(config, source=QuietSource(), monotonic=lambda: clock[0])
    held.alertmanager(payload("firing"))
    assert held.store.effective().value is True
    clock[0] = 10
    held.alertmanager(payload("resolved"))
    held.evaluate()
    assert held.store.effective().value is True  # held for the recovery hold, like the built-in rule
    clock[0] = 71
    held.evaluate()
    assert held.store.effective().value is False
    held.stop()


def test_alertmanager_and_the_rules_both_hold_the_flag(tmp_path: Path) -> None:
    """Neither holder may clear what the other still holds."""
    from monitor.alerts import State

    config = DaemonConfig(state_path=tmp_path / "s.json", rules={"degraded-mode": {"recovery_hold_s": 0}})
    both = Daemon(config, source=QuietSource())
    both.alertmanager(payload("firing"))
    both.evaluator.restore("degraded-mode", State.FIRING, since=0.0)  # the rule fires too
    both.alertmanager(payload("resolved"))
    assert both.store.effective().value is True  # the rule still holds it
    both.stop()


def test_alertmanager_hold_survives_a_restart(tmp_path: Path) -> None:
    config = DaemonConfig(state_path=tmp_path / "s.json", rules={"degraded-mode": {"recovery_hold_s": 0}})
    first = Daemon(config, source=QuietSource())
    first.alertmanager(payload("firing"))
    first.stop()
    second = Daemon(config, source=QuietSource())
    second.evaluate()  # nothing from Alertmanager yet: the restored hold stays
    assert second.store.effective().value is True
    second.alertmanager(payload("resolved"))
    assert second.store.effective().value is False
    second.stop()
