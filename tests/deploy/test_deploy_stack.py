"""The compose stack's app and sidecar as real processes on loopback: the wiring works, not only the files.

app.py runs against the simulator with the compose environment; `nbmon run` runs with the image's environment,
deploy/nbmon.toml and the compose secrets (ports moved to free ones). The sidecar becomes ready by scraping the app,
and an override set with the stack's admin token reaches the app's generator over OFREP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.simulator import SimulatorServer
from tests.deploy.deploy_support import COMPOSE_FILE, Dockerfile, compose_mounts
from tests.support.http import free_port
from tests.support.redis import RedisServer
from tests.support.wait import wait_for

APP = COMPOSE_FILE.parent / "app.py"
pytestmark = pytest.mark.timeout(120)


@contextmanager
def process(command: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """A child that must stop cleanly on SIGTERM, as `docker stop` asks."""
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd), **env}
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    with subprocess.Popen(command, env=env, cwd=cwd, **pipes) as proc:
        try:
            yield proc
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0, proc.stderr.read() if proc.stderr else ""
        finally:
            if proc.poll() is None:
                proc.kill()


def running(check: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> Callable[[], bool]:
    """`check`, but a process of the stack that died fails the wait at once, with its stderr."""

    def probe() -> bool:
        if check():
            return True
        for proc in procs:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return False

    return probe


def sample(url: str, name: str, **labels: str) -> float:
    try:
        text = httpx.get(url, timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def test_the_sidecar_scrapes_the_app_and_the_app_follows_the_flag(
    compose: dict[str, Any], dockerfile: Dockerfile, gemini_sim: SimulatorServer, tmp_path: Path
) -> None:
    app_port, nbmon_port = free_port(), free_port()
    app_env = {
        **compose["services"]["app"]["environment"],
        "APP_GEMINI_URL": gemini_sim.url,
        "APP_METRICS_HOST": "127.0.0.1",
        "APP_METRICS_PORT": str(app_port),
        "NBMON_URL": f"http://127.0.0.1:{nbmon_port}",
    }
    mounts = compose_mounts(compose, "nbmon", dockerfile, tmp_path)
    nbmon_env = mounts.remap({**dockerfile.env(), **compose["services"]["nbmon"]["environment"]})
    nbmon_env.pop("PATH")
    nbmon_env |= {
        "NBMON_LISTEN_HOST": "127.0.0.1",
        "NBMON_LISTEN_PORT": str(nbmon_port),
        "NBMON_SOURCE_TARGETS": f"http://127.0.0.1:{app_port}/metrics",
        "NBMON_SOURCE_INTERVAL": "1s",
        "NBMON_EVALUATION_INTERVAL": "1s",
    }
    redis = RedisServer(tmp_path / "redis")  # the stack's `redis` service, on loopback; started by the `with`
    nbmon_env["NBMON_REDIS_URL"] = redis.url
    token = Path(nbmon_env["NBMON_ADMIN_TOKEN_FILE"]).read_text().strip()
    daemon, metrics = f"http://127.0.0.1:{nbmon_port}", f"http://127.0.0.1:{app_port}/metrics"
    nbmon_run = [sys.executable, "-m", "monitor", *dockerfile.final.last_json("CMD")]
    app_run = [sys.executable, str(APP)]
    with redis, process(app_run, app_env, tmp_path) as app, process(nbmon_run, nbmon_env, tmp_path) as nbmon:
        pro_traffic = running(lambda: sample(metrics, "nbmon_requests_total", code="200") > 0, [app, nbmon])
        wait_for(pro_traffic, timeout=30, interval=0.25, what="Pro requests")

        def ready() -> bool:
            try:
                return httpx.get(f"{daemon}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(running(ready, [app, nbmon]), timeout=30, interval=0.25, what="the sidecar's first scrape")
        override = {"value": True, "reason": "deploy test", "expires_in": "5m"}
        headers = {"authorization": f"Bearer {token}"}
        assert httpx.post(f"{daemon}/v1/override", json=override, headers=headers, timeout=5).status_code == 200

        def flash_only() -> bool:
            return sample(metrics, "nbmon_degraded_routing_total", decision="flash") > 0

        wait_for(running(flash_only, [app, nbmon]), timeout=30, interval=0.25, what="Flash-only routing in the app")
