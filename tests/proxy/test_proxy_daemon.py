"""`nbmon run` with [proxy]: the rules read the proxy's counters in-process, and the proxy steers by their flag."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai import errors

from monitor.daemon.app import Daemon
from monitor.daemon.config import ConfigErrors, from_mapping, preflight
from monitor.simulator.server import SimulatorServer
from tests.proxy.conftest import API_KEY, FLASH, IMAGE, PRO


def config_for(tmp_path: Path, upstream: str, **proxy: Any) -> Any:
    return from_mapping(
        {
            "listen": {"port": 0},
            "state": {"path": str(tmp_path / "state.json")},
            "source": {"interval": "0.2s"},
            "evaluation": {"interval": "0.2s"},
            "proxy": {"port": 0, "upstream": upstream, **proxy},
            "rules": {
                "degraded-mode": {
                    "window_s": "60s",
                    "hold_s": "0.5s",
                    "min_volume": 5,
                    "recovery_hold_s": "5s",
                    "probe_after_s": "10m",
                }
            },
        }
    )


def test_a_storm_through_the_proxy_flips_the_flag_and_the_proxy_steers(tmp_path: Path) -> None:
    from google import genai
    from google.genai import types

    with SimulatorServer() as sim:
        config = config_for(tmp_path, sim.url, steer=True, canary_share=0.0)
        assert config.source_kind == "proxy"  # the default with [proxy]
        daemon = Daemon(config)
        daemon.start()
        try:
            assert daemon.proxy is not None
            client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=daemon.proxy.url))
            wait_until(lambda: daemon.ready()[0])  # a first reading to count the storm from
            sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})
            for _ in range(8):
                with pytest.raises(errors.ServerError):
                    client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
            # No scrape: the rules read the proxy's counters in-process, on the daemon's own schedule.
            wait_until(lambda: daemon.store.effective().value)
            assert daemon.store.effective().value is True, daemon.state()["rules"]
            response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
            headers = response.sdk_http_response.headers if response.sdk_http_response else {}
            assert headers is not None and headers["x-nbmon-route"] == "degraded"
            assert headers["x-nbmon-served-model"] == FLASH
            proxy_metrics = httpx.get(f"{daemon.proxy.url}/metrics", timeout=5).text
            assert 'nbmon_requests_total{code="503",error_class="overloaded",model="gemini-3-pro-image"} 8.0' in (
                proxy_metrics
            )
            own = httpx.get(f"{daemon.url}/metrics", timeout=5).text
            assert "nbmon_degraded_mode 1.0" in own
        finally:
            assert daemon.stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_check_config_refuses_a_proxy_on_the_daemons_port(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"proxy.port: 8016 is listen.port too"):
        from_mapping({"state": {"path": str(tmp_path / "s.json")}, "proxy": {"port": 8016}})
    with pytest.raises(ConfigErrors, match=r"proxy.upstream: .*no query"):
        from_mapping({"proxy": {"upstream": "https://example.com/?key=abc"}})
    with pytest.raises(ConfigErrors, match=r"proxy.retry_policy: RetryPolicy.max_attempts"):
        from_mapping({"proxy": {"retry_policy": {"max_attempts": 0}}})
    with pytest.raises(ConfigErrors, match=r"proxy.stear: unknown key"):
        from_mapping({"proxy": {"stear": True}})


def test_preflight_names_a_taken_proxy_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = from_mapping(
            {"listen": {"port": 0}, "state": {"path": str(tmp_path / "s.json")}, "proxy": {"port": port}}
        )
        assert [e.key for e in preflight(config)] == ["proxy.port"]


def test_a_scrape_source_beside_the_proxy_is_said(tmp_path: Path) -> None:
    config = from_mapping({"source": {"kind": "scrape"}, "proxy": {}, "state": {"path": str(tmp_path / "s.json")}})
    assert any(w.startswith("source.kind: scrape while [proxy] is on") for w in config.warnings)
