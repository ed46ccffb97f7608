"""A real daemon whose spend budget stops generation: `[proxy]` in front of the simulator, `[budget] action =
"stop"`, and a scripted wall clock (a Pacific day) the test moves. Calls through the daemon's proxy are priced by
the catalog; one Pro image ($0.134) spends the $0.10 day, and the next check turns `generation-allowed` off until
the next Pacific midnight."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google import genai
from google.genai import types

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig, from_mapping
from tests.support.constants import API_KEY, PRO

START = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 08:00 PST
NEXT_DAY = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)  # the next Pacific midnight: the daily stop's `until`
IMAGE = types.GenerateContentConfig(response_modalities=["IMAGE"])


class Wall:
    """The daemon's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def at_pacific(self, hours: float, days: int = 0) -> None:
        self.now = START + timedelta(days=days, hours=hours - 8)


def stop_config(tmp_path: Path, upstream: str, daily_usd: float = 0.10) -> DaemonConfig:
    return from_mapping(
        {
            "listen": {"port": 0},
            "state": {"path": str(tmp_path / "state.json")},
            # The scheduler runs each job once at start; the test runs the budget's checks itself.
            "source": {"interval": "1s"},
            "evaluation": {"interval": "1h"},
            "proxy": {"port": 0, "upstream": upstream},
            "fleet": {"project": "banana-prod"},
            "budget": {"daily_usd": daily_usd, "action": "stop", "interval": "1h", "burn_rate_window": "1h"},
        }
    )


def proxy_client(daemon: Daemon) -> genai.Client:
    assert daemon.proxy is not None
    return genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=daemon.proxy.url))


def settled(daemon: Daemon) -> None:
    """Every request the proxy took is counted (the in-flight gauge drops last)."""
    registry = daemon.proxy_registry
    assert registry is not None
    wait_until(lambda: (registry.get_sample_value("nbmon_proxy_requests_in_flight") or 0) == 0)


def spend_the_day(daemon: Daemon, wall: Wall) -> None:
    """From a fresh daemon at 08:00 PST: the day's first sample, one Pro image through the proxy, the check at
    09:00 that finds the day spent and stops generation."""
    daemon.check_budget()
    client = proxy_client(daemon)  # held: a Client closes its transport when it is collected
    client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    settled(daemon)
    wall.at_pacific(9)
    daemon.check_budget()
    assert daemon.store.effective().stop is not None, daemon.state().get("budget")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
