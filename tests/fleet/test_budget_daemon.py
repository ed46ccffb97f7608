"""Issue #18, the spend budget through the real daemon: real calls through its proxy to the simulator are priced by
the catalog, the budget reads that cost counter, a scripted Pacific day crosses 80% and 100% (each told once on a
fake Slack, not again on later checks nor after a restart), the action switches the flag (read over OFREP), and
the next Pacific day re-arms it all."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from monitor.catalog import builtin_catalog
from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig, from_mapping
from monitor.simulator.server import SimulatorServer
from monitor.testing.notify import FakeSlack
from tests.proxy.conftest import API_KEY, IMAGE, PRO
from tests.support.budget import Wall


def _catalog_price() -> float:
    spec = builtin_catalog().get(PRO)
    price = spec.price("1K") if spec is not None else None
    assert price is not None, f"the catalog has no 1K price for {PRO}"
    return price


PRICE = _catalog_price()  # what the shim counts per final 1K image of PRO


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    with FakeSlack() as receiver:
        monkeypatch.setenv("TEST_SLACK_URL", receiver.url)
        yield receiver


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


def config_for(tmp_path: Path, upstream: str, action: str) -> DaemonConfig:
    return from_mapping(
        {
            "listen": {"port": 0},
            "state": {"path": str(tmp_path / "state.json")},
            # The scheduler runs each job once at start; the test runs the budget's checks itself.
            "source": {"interval": "1s"},
            "evaluation": {"interval": "1h"},
            "proxy": {"port": 0, "upstream": upstream},
            "fleet": {"project": "banana-prod"},
            "budget": {"daily_usd": 1.30, "action": action, "interval": "1h", "burn_rate_window": "1h"},
            "notify": {
                "environment": "test",
                "channels": {"oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"}},
            },
        }
    )


def flag(daemon: Daemon, key: str) -> dict[str, Any]:
    response = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags/{key}", json={"context": {}}, timeout=5)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def generate(daemon: Daemon, calls: int) -> None:
    assert daemon.proxy is not None and daemon.proxy_registry is not None
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=daemon.proxy.url))
    for _ in range(calls):
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    registry = daemon.proxy_registry
    wait_until(lambda: (registry.get_sample_value("nbmon_proxy_requests_in_flight") or 0) == 0)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def titles(slack: FakeSlack) -> list[str]:
    """The first line of each message's text, "[FIRING] <title> (rule ...)", as the title alone."""
    lines = [str(message["text"]).split("\n")[0] for message in slack.accepted]
    return [line.split("] ", 1)[1].rsplit(" (rule ", 1)[0] for line in lines]


@pytest.mark.parametrize("action", ["degraded", "stop"])
def test_a_scripted_day_crosses_80_and_100_percent_once_and_the_action_switches_the_flag(
    tmp_path: Path, sim: SimulatorServer, slack: FakeSlack, action: str
) -> None:
    wall = Wall()
    config = config_for(tmp_path, sim.url, action)
    daemon = Daemon(config, wall=wall)
    daemon.start()
    try:
        assert daemon.budget is not None and daemon.budget.spend.name == "local"
        daemon.check_budget()  # 08:00: the day's first sample, nothing spent
        wall.at_pacific(9)
        generate(daemon, 4)  # $0.536, 41%: at this pace the budget runs out at 10:25
        daemon.check_budget()
        spent = daemon.registry.get_sample_value(
            "nbmon_budget_spent_usd", {"project": "banana-prod", "period": "daily"}
        )
        assert spent == pytest.approx(4 * PRICE)
        wall.at_pacific(10)
        generate(daemon, 5)  # $1.206, 93%: past 50% and 80% at once, told once as 80%
        daemon.check_budget()
        wall.at_pacific(10.1)
        daemon.check_budget()  # nothing new
        assert flag(daemon, "degraded-mode")["value"] is False
        assert flag(daemon, "generation-allowed")["value"] is True
        wall.at_pacific(11)
        generate(daemon, 1)  # $1.34: spent
        daemon.check_budget()
        daemon.check_budget()
        wait_until(lambda: len(slack.accepted) == 3)
    finally:
        assert daemon.stop()

    assert titles(slack) == [
        "At this pace the daily budget of banana-prod runs out at 10:25 PST",
        "The daily budget of banana-prod is 80% spent: $1.21 of $1.30",
        "The daily budget of banana-prod is exhausted: $1.34 of $1.30",
    ], slack.accepted
    key = "degraded-mode" if action == "degraded" else "generation-allowed"
    switched = action == "degraded"  # degraded-mode turns on; generation-allowed turns off

    # A restart: the flag is held from the saved state, and nothing is told again.
    wall.at_pacific(11.5)
    daemon = Daemon(config, wall=wall)
    daemon.start()
    try:
        daemon.check_budget()
        answer = flag(daemon, key)
        assert answer["value"] is switched
        assert "budget_exhausted" in str(answer["metadata"]["detail"])
        assert answer["metadata"]["source" if action == "stop" else "rule"] == "budget"
        untouched = "generation-allowed" if action == "degraded" else "degraded-mode"
        assert flag(daemon, untouched)["value"] is (action == "degraded")
        bulk = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags", json={}, timeout=5).json()
        assert [f["key"] for f in bulk["flags"]] == ["degraded-mode", "image-model", "generation-allowed"]

        # The next Pacific day: re-armed, the flag released, one "starts again".
        wall.at_pacific(0.1, days=1)
        daemon.check_budget()
        assert flag(daemon, key)["value"] is not switched
        generate(daemon, 1)
        daemon.check_budget()
        wait_until(lambda: len(slack.accepted) == 4)
        state = daemon.state()["budget"]
        assert state["periods"]["daily"]["id"] == "2026-11-28"
        assert state["periods"]["daily"]["spent_usd"] == pytest.approx(PRICE)
        assert state["holding"] is None
    finally:
        assert daemon.stop()
    assert titles(slack)[3] == "The daily budget of banana-prod starts again (2026-11-28)"
    assert len(slack.accepted) == 4
