"""`nbmon run` as a real process: kill -9 while degraded, SIGTERM, bad config, the admin API and CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server

from monitor.shim.metrics import ShimMetrics
from tests.support.constants import PRO
from tests.support.wait import wait_for

TOKEN = "test-admin-token-0123456789"


def attempts(metrics: ShimMetrics, model: str, code: str, error_class: str, n: int = 1) -> None:
    """n HTTP attempts through the shim's own hot-path API."""
    for _ in range(n):
        metrics.record_attempt(model, code, error_class, 0.5)


class AppMetrics:
    """An app's /metrics with nbmon_requests_total driven by the test: a share of 503s per tick."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = ShimMetrics(self.registry)
        self.share_503 = 0.0
        self._stop = threading.Event()
        self.server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(0.05):
            failed = round(10 * self.share_503)
            attempts(self.metrics, PRO, "503", "overloaded", failed)
            attempts(self.metrics, PRO, "200", "ok", 10 - failed)

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app() -> Iterator[AppMetrics]:
    served = AppMetrics()
    yield served
    served.close()


def write_config(tmp_path: Path, target: str, **sections: Any) -> Path:
    state = tmp_path / "state.json"
    text = f"""
[listen]
host = "127.0.0.1"
port = 0

[source]
kind = "scrape"
targets = ["{target}"]
interval = "0.2s"

[evaluation]
interval = "0.2s"

[state]
path = "{state}"

[log]
format = "json"

[rules.degraded-mode]
window_s = "2s"
hold_s = "1s"
min_volume = 5
recovery_hold_s = "60s"
"""
    for name, body in sections.items():
        text += f"\n[{name}]\n{body}\n"
    path = tmp_path / "nbmon.toml"
    path.write_text(text)
    return path


class Process:
    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.url = ""
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline and not self.url:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if '"nbmon.daemon.listening"' in line:
                self.url = json.loads(line)["url"]
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        if not self.url:
            self.stop(signal.SIGKILL)
            raise AssertionError(
                f"daemon did not start: {self.lines} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal, wait, and close the pipes (an unclosed pipe fails the suite's warning filter)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        if hasattr(self, "_drainer"):
            self._drainer.join(timeout=5)  # it ends at EOF; closing under it would race
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/v1/state", timeout=5).json()  # type: ignore[no-any-return]


def test_kill_9_while_degraded_then_restart_is_still_degraded(tmp_path: Path, app: AppMetrics) -> None:
    config = write_config(tmp_path, app.url)
    first = Process(config)
    app.share_503 = 0.6
    wait_for(lambda: first.state()["effective"]["value"] is True, timeout=20, interval=0.1, what="degraded")
    before = first.state()
    first.stop(signal.SIGKILL)
    second = Process(config)  # the outage goes on: nothing may flip the app back to Pro
    try:
        after = second.state()  # read at once, before any evaluation could re-derive it
        assert after["effective"]["value"] is True
        assert after["effective"]["since"] == before["effective"]["since"]
        history = after["state"]["history"]
        assert [h["to"] for h in history].count(True) == 1  # the transition was kept, not lost or repeated
        assert after["rules"]["degraded-mode"]["state"] == "firing"
    finally:
        second.stop()


def test_sigterm_shuts_down_within_5_seconds(tmp_path: Path, app: AppMetrics) -> None:
    daemon = Process(write_config(tmp_path, app.url))
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    assert json.loads((tmp_path / "state.json").read_text())  # state flushed and readable


def test_sigterm_within_5_seconds_while_a_scrape_hangs(tmp_path: Path) -> None:
    import socket

    hung = socket.socket()  # accepts connections, never answers: the scrape waits on it
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        target = f"http://127.0.0.1:{hung.getsockname()[1]}/metrics"
        daemon = Process(write_config(tmp_path, target))
        time.sleep(0.5)  # a scrape is in flight
        started = time.monotonic()
        assert daemon.stop(signal.SIGTERM) == 0
        assert time.monotonic() - started < 5
        assert all(json.loads(line) for line in daemon.lines if line.strip())  # every stdout line is JSON
    finally:
        hung.close()


def test_readyz_waits_for_the_source(tmp_path: Path) -> None:
    daemon = Process(write_config(tmp_path, "http://127.0.0.1:9/metrics"))  # nothing listens there
    try:
        response = httpx.get(f"{daemon.url}/readyz", timeout=5)
        assert response.status_code == 503 and response.json()["reasons"]
        assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200
        wait_for(
            lambda: (
                'nbmon_source_errors_total{reason="connect",source="scrape"}' in httpx.get(f"{daemon.url}/metrics").text
            ),
            timeout=20,
            interval=0.1,
            what="a counted connect error",
        )
    finally:
        daemon.stop()


def test_admin_api_and_cli_override(tmp_path: Path, app: AppMetrics) -> None:
    daemon = Process(write_config(tmp_path, app.url, admin=f'token = "{TOKEN}"'))
    try:
        override = {"value": True, "reason": "planned maintenance", "expires_in": "10m"}
        assert httpx.post(f"{daemon.url}/v1/override", json=override).status_code == 401
        wrong = httpx.post(f"{daemon.url}/v1/override", json=override, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        bad = httpx.post(
            f"{daemon.url}/v1/override", json={"value": "yes"}, headers={"authorization": f"Bearer {TOKEN}"}
        )
        assert bad.status_code == 400 and "value" in bad.json()["error"]
        assert daemon.state()["effective"]["value"] is False  # nothing changed

        env = {**os.environ, "NBMON_ADMIN_TOKEN": TOKEN, "NBMON_URL": daemon.url}
        cli = [sys.executable, "-m", "monitor", "flag"]
        done = subprocess.run(
            [*cli, "set", "on", "--reason", "drill", "--for", "5m"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        state = daemon.state()["effective"]
        assert (state["value"], state["source"]) == (True, "override")
        ofrep = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags/image-model", json={"context": {}}).json()
        assert ofrep["value"] == "gemini-nano-banana-2.1"
        cleared = subprocess.run([*cli, "clear"], env=env, capture_output=True, text=True, check=False)
        assert cleared.returncode == 0, cleared.stderr
        assert daemon.state()["effective"]["value"] is False
        refused = subprocess.run(
            [*cli, "set", "on", "--reason", "x"],
            env={**env, "NBMON_ADMIN_TOKEN": ""},
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode == 1 and "NBMON_ADMIN_TOKEN" in refused.stderr
    finally:
        daemon.stop()


def test_admin_api_is_off_without_a_token(tmp_path: Path, app: AppMetrics) -> None:
    daemon = Process(write_config(tmp_path, app.url))
    try:
        response = httpx.post(f"{daemon.url}/v1/override", json={"value": True, "reason": "x", "expires_in": "1m"})
        assert response.status_code == 403
        malformed = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags/degraded-mode", content=b"{not json")
        assert malformed.status_code == 400 and malformed.json()["errorCode"] == "PARSE_ERROR"
        assert httpx.get(f"{daemon.url}/nope").status_code == 404
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[listen]\nport = 70000\n", "listen.port"),
        ('[source]\nkind = "carrier-pigeon"\n', "source.kind"),
        ('[source]\ntargets = ["ftp://x"]\n', "source.targets[0]"),
        ('[source]\nkind = "promql"\n', "source.promql_url"),
        ('[evaluation]\ninterval = "soon"\n', "evaluation.interval"),
        ("[rules.degraded-mode]\nthreshold = 3\n", "rules.degraded-mode.threshold"),
        ('[admin]\ntoken = "short"\n', "admin.token"),
        ("[colour]\nvalue = 1\n", "colour"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    commands = ("check-config", "run") if key == "listen.port" else ("check-config",)  # run: once is enough
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "monitor", command, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert key in done.stderr


def test_check_config_lists_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("listen:\n  port: -1\nsource:\n  kind: nope\nlog:\n  level: LOUD\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    for key in ("listen.port", "source.kind", "log.level"):
        assert key in done.stderr


def test_check_config_accepts_a_good_file_and_env(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text('source:\n  targets: ["http://127.0.0.1:9464/metrics"]\n')
    env = {**os.environ, "NBMON_LISTEN_PORT": "9999"}
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "127.0.0.1:9999" in done.stdout and "degraded-mode" in done.stdout


def test_corrupt_state_file_stops_the_start(tmp_path: Path, app: AppMetrics) -> None:
    config = write_config(tmp_path, app.url)
    (tmp_path / "state.json").write_text("{half a file")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "state.json" in done.stderr
