"""monitor.embed(): the daemon in the app's process, on the shim's registry, feeding ImageGenerator directly."""

from __future__ import annotations

from pathlib import Path

import structlog
from google import genai
from google.genai import types
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

import monitor
from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.generator import ImageGenerator, VirtualClock
from monitor.signals import Reading
from monitor.simulator import SimulatorServer
from tests.support.constants import FLASH, PRO
from tests.support.wait import wait_for

FAST = {"degraded-mode": {"window_s": "2s", "hold_s": "0.5s", "min_volume": 5, "recovery_hold_s": "0.5s"}}


def test_embedded_daemon_drives_the_generator(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    monitor.uninstrument()
    monitor.instrument(registry=registry, logger=structlog.wrap_logger(None, processors=[LogCapture()]))
    config = DaemonConfig(rules=FAST, source_interval_s=0.1, evaluation_interval_s=0.1)
    with SimulatorServer() as sim, monitor.embed(config, registry=registry, state_path=tmp_path / "s.json") as embedded:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.url))
        generator = ImageGenerator(
            client, flag_source=embedded.flag, canary_share=0.0, clock=VirtualClock(), registry=CollectorRegistry()
        )
        sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})

        def pro_traffic() -> bool:
            for _ in range(5):
                try:
                    client.models.generate_content(model=PRO, contents="x", config={"response_modalities": ["IMAGE"]})
                except Exception:
                    continue
            return embedded.flag.degraded()

        wait_for(pro_traffic)
        assert generator.generate("a banana").served_model == FLASH
        client.close()
    monitor.uninstrument()


class ExplodingSource:
    name = "exploding"

    def __init__(self) -> None:
        self.reads = 0

    def read(self) -> Reading:
        self.reads += 1
        raise RuntimeError("a third-party source with a bug")


def test_a_failing_job_is_counted_and_the_daemon_goes_on(tmp_path: Path) -> None:
    source = ExplodingSource()
    daemon = Daemon(
        DaemonConfig(state_path=tmp_path / "s.json", source_interval_s=0.05, evaluation_interval_s=0.05),
        source=source,
    )
    daemon.start(serve_http=False)
    try:
        wait_for(lambda: source.reads >= 3)
        assert (daemon.registry.get_sample_value("nbmon_job_errors_total", {"job": "read"}) or 0) >= 3
        assert daemon.registry.get_sample_value("nbmon_degraded_mode") == 0
    finally:
        daemon.stop()
