"""Issue #18, `[budget] action = "stop"` enforced by the daemon's own proxy: once the budget is spent, generate
requests are answered 429 by the proxy without reaching the simulator, shaped like Gemini's spend-cap refusal (the
SDK raises its usual ClientError, nbmon's taxonomy reads `billing_limited`), while other routes pass; at the next
Pacific midnight the stop lapses and calls reach Google again, without waiting for the budget job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.genai import errors
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.daemon.app import Daemon
from monitor.generator import ImageGenerator
from monitor.proxy.config import ProxyConfig
from monitor.proxy.server import ProxyServer, build_forwarder
from monitor.proxy.stop import ofrep_stop_check
from monitor.simulator.server import SimulatorServer
from monitor.taxonomy import ErrorClass, classify_exception, classify_http
from tests.support.budget import IMAGE, Wall, proxy_client, settled, spend_the_day, stop_config
from tests.support.constants import API_KEY, IMAGE_REQUEST, PRO
from tests.support.shim import genai_client

KEY = {"x-goog-api-key": API_KEY}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def stopped(tmp_path: Path, sim: SimulatorServer) -> Iterator[tuple[Daemon, Wall]]:
    wall = Wall()
    daemon = Daemon(stop_config(tmp_path, sim.url), wall=wall)
    daemon.start()
    try:
        spend_the_day(daemon, wall)
        yield daemon, wall
    finally:
        assert daemon.stop()


def stopped_count(daemon: Daemon, method: str) -> float:
    settled(daemon)
    assert daemon.proxy_registry is not None
    return daemon.proxy_registry.get_sample_value("nbmon_proxy_stopped_requests_total", {"method": method}) or 0.0


def test_a_spent_budget_stops_generate_calls_at_the_proxy(stopped: tuple[Daemon, Wall], sim: SimulatorServer) -> None:
    daemon, _wall = stopped
    assert daemon.proxy is not None and daemon.proxy_registry is not None
    sent = sim.stats()["requests"]
    client = proxy_client(daemon)

    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert raised.value.code == 429 and raised.value.status == "RESOURCE_EXHAUSTED"
    assert "stopped until 2026-11-28T08:00:00Z" in str(raised.value.message)
    assert "budget_exhausted" in str(raised.value.message)
    assert classify_exception(raised.value).error_class is ErrorClass.BILLING_LIMITED

    with pytest.raises(errors.ClientError):  # streaming too
        for _ in client.models.generate_content_stream(model=PRO, contents="a banana", config=IMAGE):
            pass

    async def async_call() -> None:
        try:
            await client.aio.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        finally:
            await client.aio.aclose()

    with pytest.raises(errors.ClientError):
        asyncio.run(async_call())

    # On the wire: the spend-cap shape, marked by the proxy.
    url = f"{daemon.proxy.url}/v1beta/models/{PRO}"
    raw = httpx.post(f"{url}:generateContent", json=IMAGE_REQUEST, headers=KEY, timeout=10)
    assert raw.status_code == 429
    assert (raw.headers["x-nbmon-route"], raw.headers["x-nbmon-proxy"]) == ("stopped", "1")
    assert classify_http(429, raw.content, dict(raw.headers)).error_class is ErrorClass.BILLING_LIMITED
    batch = {"batch": {"inputConfig": {"requests": {"requests": [{"request": IMAGE_REQUEST}]}}}}
    assert httpx.post(f"{url}:batchGenerateContent", json=batch, headers=KEY, timeout=10).status_code == 429

    # ImageGenerator behind the proxy: billing_limited is not retried, nor sent to the fallback.
    generator = ImageGenerator(client, registry=CollectorRegistry())
    with pytest.raises(errors.ClientError):
        generator.generate("a banana")

    assert sim.stats()["requests"] == sent  # nothing reached the upstream
    assert stopped_count(daemon, "generateContent") == 4  # SDK, async SDK, raw, ImageGenerator (one attempt)
    assert stopped_count(daemon, "streamGenerateContent") == 1
    assert stopped_count(daemon, "batchGenerateContent") == 1
    requests = daemon.proxy_registry.get_sample_value(
        "nbmon_proxy_requests_total", {"method": "generateContent", "code": "429"}
    )
    assert requests == 4

    # Routes that do not generate pass while stopped.
    files = httpx.get(f"{daemon.proxy.url}/v1beta/files", headers=KEY, timeout=10)
    assert files.status_code == 200 and "x-nbmon-route" not in files.headers


def test_the_stop_lapses_at_the_next_pacific_midnight(stopped: tuple[Daemon, Wall], sim: SimulatorServer) -> None:
    daemon, wall = stopped
    client = proxy_client(daemon)
    with pytest.raises(errors.ClientError):
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    sent = sim.stats()["requests"]

    wall.at_pacific(0.1, days=1)  # no budget check: the stop's own `until` ends it
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    headers = response.sdk_http_response.headers if response.sdk_http_response else None
    assert headers is not None and headers["x-nbmon-route"] == "primary"
    assert sim.stats()["requests"] == sent + 1
    assert stopped_count(daemon, "generateContent") == 1


def test_the_stop_survives_a_restart(tmp_path: Path, sim: SimulatorServer) -> None:
    wall = Wall()
    config = stop_config(tmp_path, sim.url)
    daemon = Daemon(config, wall=wall)
    daemon.start()
    try:
        spend_the_day(daemon, wall)
    finally:
        assert daemon.stop()
    sent = sim.stats()["requests"]
    daemon = Daemon(config, wall=wall)  # the stop is served from the saved state before any budget check
    daemon.start()
    try:
        client = proxy_client(daemon)
        with pytest.raises(errors.ClientError) as raised:
            client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        assert raised.value.code == 429
        assert sim.stats()["requests"] == sent
    finally:
        assert daemon.stop()


def test_a_standalone_proxy_reads_the_stop_over_ofrep(stopped: tuple[Daemon, Wall], sim: SimulatorServer) -> None:
    """`nbmon proxy --flag-url <daemon>`: the same refusal, the daemon's `until` and reason read from OFREP."""
    daemon, wall = stopped
    registry = CollectorRegistry()

    async def never_degraded() -> bool:
        return False

    check = ofrep_stop_check(daemon.url, ttl_s=0)
    config = ProxyConfig(port=0, upstream=sim.url)
    forwarder = build_forwarder(config, ShimConfig(), registry, never_degraded, stopped=check)
    server = ProxyServer(forwarder, registry)
    server.start()
    try:
        client = genai_client(server.url)
        sent = sim.stats()["requests"]
        with pytest.raises(errors.ClientError) as raised:
            client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        assert raised.value.code == 429 and classify_exception(raised.value).error_class is ErrorClass.BILLING_LIMITED
        assert "stopped until 2026-11-28T08:00:00Z" in str(raised.value.message)
        assert "budget_exhausted" in str(raised.value.message)
        assert sim.stats()["requests"] == sent
        wall.at_pacific(0.1, days=1)
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        assert sim.stats()["requests"] == sent + 1
    finally:
        server.stop()
