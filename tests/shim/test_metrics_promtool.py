"""`promtool check metrics` on the shim's and the daemon's real /metrics output: the naming lint is clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from google import genai
from prometheus_client import CollectorRegistry, generate_latest

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.generator.metrics import GeneratorMetrics
from monitor.signals import Reading
from tests.support.constants import IMAGE_CONFIG, PRO
from tests.support.shim import Shim
from tests.support.tools import promtool


def lint(exposition: bytes) -> str:
    done = subprocess.run([promtool(), "check", "metrics"], input=exposition, capture_output=True, check=False)
    return (done.stdout + done.stderr).decode()


def test_the_shims_metrics_pass_promtool(shim: Shim, gclient: genai.Client) -> None:
    gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    GeneratorMetrics.for_registry(shim.registry)
    report = lint(generate_latest(shim.registry))
    assert report.strip() == "", report


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


def test_the_daemons_metrics_pass_promtool(tmp_path: Path) -> None:
    daemon = Daemon(DaemonConfig(state_path=tmp_path / "s.json"), source=QuietSource(), registry=CollectorRegistry())
    try:
        daemon.evaluate()
        report = lint(daemon.metrics_exposition()[0])
        assert report.strip() == "", report
    finally:
        daemon.stop()


@pytest.mark.parametrize("bad", [b"# TYPE nbmon_thing counter\nnbmon_thing 1\n"])
def test_the_lint_does_catch_bad_names(bad: bytes) -> None:
    """The control: promtool does flag a counter without _total, so a clean report means something."""
    assert "_total" in lint(bad)
