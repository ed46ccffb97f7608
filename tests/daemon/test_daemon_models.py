"""Degraded mode on today's models, from the catalog's defaults and from one config line: the same file drives
the app's shim, its ImageGenerator and the daemon, so they agree on which model is the primary."""

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
from monitor.cli import main
from monitor.config import config_from_document
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.generator import ImageGenerator
from monitor.simulator import SimulatorServer
from tests.daemon.test_daemon_e2e import FAST_RULES
from tests.support.wait import wait_for

STORM = 0.45


@pytest.fixture
def app(request: pytest.FixtureRequest) -> Iterator[str]:
    """An instrumented app process: its shim's /metrics URL. The config document is the test's parameter."""
    registry = CollectorRegistry()
    monitor.uninstrument()
    config = config_from_document(request.param, environ={})
    logger = structlog.wrap_logger(None, processors=[LogCapture()])
    assert monitor.instrument(registry=registry, logger=logger, config=config)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    monitor.uninstrument()


def storm_turns_degraded_mode_on(tmp_path: Path, target: str, document: dict[str, Any]) -> tuple[str, str]:
    """Drive the app's own primary through a 45% 503 storm; return (the model called, the model the daemon
    names primary) once the daemon went degraded."""
    generator = ImageGenerator(genai.Client(api_key="k"), config=config_from_document(document, environ={}))
    primary = generator.primary_model
    daemon = Daemon(
        from_mapping(
            {
                "listen": {"host": "127.0.0.1", "port": 0},
                "source": {"kind": "scrape", "targets": [target], "interval": "0.2s"},
                "evaluation": {"interval": "0.2s"},
                "state": {"path": str(tmp_path / "state.json")},
                "rules": FAST_RULES,
                **document,
            }
        )
    )
    with SimulatorServer(profile={"kind": "mix", "weights": {}, "models": {primary: {"overloaded": STORM}}}) as sim:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.url))
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # the 503s are the signal under test
                    client.models.generate_content(
                        model=primary, contents="x", config={"response_modalities": ["IMAGE"]}
                    )
                time.sleep(0.005)

        daemon.start()
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            wait_for(lambda: daemon.store.effective().value, timeout=20, what="degraded mode on")
            state = httpx.get(f"{daemon.url}/v1/state").json()
            metrics = httpx.get(f"{daemon.url}/metrics").text
            assert 'nbmon_model_info{family="' in metrics and f'model="{primary}",role="primary"' in metrics
            return primary, state["models"]["primary"]
        finally:
            stop.set()
            worker.join(timeout=5)
            daemon.stop()
            client.close()


@pytest.mark.parametrize("app", [{}], indirect=True)
def test_no_config_watches_todays_pro_model(tmp_path: Path, app: str) -> None:
    called, watched = storm_turns_degraded_mode_on(tmp_path, app, {})
    assert called == watched == "gemini-3-pro-image"


ONE_LINE = {"models": {"primary": "gemini-3.1-flash-image"}}


@pytest.mark.parametrize("app", [ONE_LINE], indirect=True)
def test_one_config_line_moves_the_whole_loop_to_another_primary(tmp_path: Path, app: str) -> None:
    called, watched = storm_turns_degraded_mode_on(tmp_path, app, ONE_LINE)
    assert called == watched == "gemini-3.1-flash-image"


RETIRED = {"models": {"primary": "gemini-3-pro-image-preview"}}


@pytest.mark.parametrize("app", [RETIRED], indirect=True)
def test_a_config_naming_the_retired_preview_still_works(tmp_path: Path, app: str) -> None:
    called, watched = storm_turns_degraded_mode_on(tmp_path, app, RETIRED)
    assert called == watched == "gemini-3-pro-image"  # the successor is called and watched


def test_check_config_warns_about_a_retired_model_and_names_the_replacement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text('[models]\nprimary = "gemini-3-pro-image-preview"\nfallback = "gemini-3.1-flash-image"\n')
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "models primary gemini-3-pro-image fallback gemini-3.1-flash-image" in out
    lines = err.splitlines()
    assert any(
        line.startswith("nbmon: warning: models.primary: gemini-3-pro-image-preview was shut down on 2026-06-25")
        and "gemini-3-pro-image" in line
        for line in lines
    ), err
    assert any("models.fallback: gemini-3.1-flash-image is deprecated" in line for line in lines), err
