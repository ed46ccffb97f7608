"""End to end over real HTTP: simulator -> instrumented SDK load -> app /metrics -> daemon (scrape)
-> the flag flips -> ImageGenerator routes to Flash -> recovery. Windows shortened by config."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from google import genai
from google.genai import types
from prometheus_client import CollectorRegistry, start_http_server
from structlog.testing import LogCapture

import monitor
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.generator import ImageGenerator, OfrepFlagSource, VirtualClock
from monitor.simulator import SimulatorServer
from tests.support.constants import FLASH, PRO
from tests.support.wait import wait_for

FAST_RULES = {
    "degraded-mode": {
        "window_s": "2s",
        "hold_s": "1s",
        "min_volume": 5,
        "recovery_hold_s": "1s",
        "probe_after_s": "30s",
    }
}


@pytest.fixture
def app_metrics() -> Iterator[tuple[CollectorRegistry, str]]:
    registry = CollectorRegistry()
    monitor.uninstrument()
    assert monitor.instrument(registry=registry, logger=structlog.wrap_logger(None, processors=[LogCapture()]))
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield registry, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    monitor.uninstrument()


def make_daemon(tmp_path: Path, target: str, **extra: Any) -> Daemon:
    config = from_mapping(
        {
            "listen": {"host": "127.0.0.1", "port": 0},
            "source": {"kind": "scrape", "targets": [target], "interval": "0.2s"},
            "evaluation": {"interval": "0.2s"},
            "state": {"path": str(tmp_path / "state.json"), "flagd_path": str(tmp_path / "flags.json")},
            "admin": {"token": "a-long-enough-admin-token"},
            "rules": FAST_RULES,
            **extra,
        }
    )
    return Daemon(config)


def test_outage_flips_the_flag_and_the_generator_follows(tmp_path: Path, app_metrics: tuple[Any, str]) -> None:
    _, target = app_metrics
    with SimulatorServer(profile="fixed:ok") as sim:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.url))
        stop = threading.Event()

        def load() -> None:  # the app's own traffic to the primary model, instrumented by nbmon
            while not stop.is_set():
                with contextlib.suppress(Exception):  # failures are the signal under test
                    client.models.generate_content(model=PRO, contents="x", config={"response_modalities": ["IMAGE"]})
                time.sleep(0.01)

        daemon = make_daemon(tmp_path, target)
        daemon.start()
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            flag = OfrepFlagSource(daemon.url, ttl_s=0)
            generator = ImageGenerator(
                client, flag_source=flag, canary_share=0.0, clock=VirtualClock(), registry=CollectorRegistry()
            )
            wait_for(lambda: daemon.ready()[0], what="daemon ready")
            assert generator.generate("a banana").served_model == PRO

            sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})  # a Pro outage
            wait_for(flag.degraded, what="degraded-mode on")
            assert generator.generate("a banana").served_model == FLASH
            state = httpx.get(f"{daemon.url}/v1/state").json()
            assert state["effective"]["value"] is True
            assert state["rules"]["degraded-mode"]["state"] in ("firing", "recovering")
            assert (tmp_path / "flags.json").exists()
            metrics = httpx.get(f"{daemon.url}/metrics").text
            assert "nbmon_degraded_mode 1.0" in metrics
            assert 'nbmon_degraded_transitions_total{to="degraded"} 1.0' in metrics

            sim.set_profile("fixed:ok")  # recovery
            wait_for(lambda: not flag.degraded(), what="degraded-mode off")
            assert generator.generate("a banana").served_model == PRO
            metrics = httpx.get(f"{daemon.url}/metrics").text
            assert 'nbmon_degraded_transitions_total{to="normal"} 1.0' in metrics
        finally:
            stop.set()
            worker.join(timeout=5)
            daemon.stop()
            client.close()
