"""The proxy with `pace = true`: a generate request waits for its slot, or gets a Google-shaped 429 the SDK
understands (RetryInfo, Retry-After) and is never sent upstream."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.generator import RetryPolicy
from monitor.pacing import ConfiguredLimits, InProcessWindow, Pacer
from monitor.proxy.config import ProxyConfig
from monitor.proxy.server import ProxyServer, build_forwarder
from monitor.simulator.server import SimulatorServer
from monitor.taxonomy import ErrorClass, classify_http
from tests.proxy.conftest import API_KEY, IMAGE, PRO, Proxy

WINDOW, RPM = 1.0, 2


@pytest.fixture
def rolling_sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(rpm_limits={PRO: RPM}, rpm_window_s=WINDOW) as server:
        yield server


@pytest.fixture
def paced_proxy(rolling_sim: SimulatorServer) -> Iterator[Callable[..., Proxy]]:
    started: list[ProxyServer] = []

    def make(**options: Any) -> Proxy:
        registry = CollectorRegistry()
        limits = ConfiguredLimits({PRO: {"rpm": RPM}})
        pacer = Pacer(limits, InProcessWindow(), window_s=WINDOW, margin_s=0.05, registry=registry, **options)
        config = ProxyConfig(port=0, upstream=rolling_sim.url, pace=True)
        forwarder = build_forwarder(
            config, ShimConfig(), registry, _normal, tracer_provider=TracerProvider(), rng=random.Random(7), pacer=pacer
        )
        server = ProxyServer(forwarder, registry)
        server.start()
        started.append(server)
        return Proxy(server, registry, InMemorySpanExporter())

    yield make
    for server in started:
        server.stop()


async def _normal() -> bool:
    return False


def test_a_request_over_the_limit_waits_for_its_slot(
    paced_proxy: Callable[..., Proxy], rolling_sim: SimulatorServer
) -> None:
    proxy = paced_proxy()
    client = proxy.client()
    started = time.monotonic()
    for _ in range(RPM + 1):
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert time.monotonic() - started >= WINDOW  # the third waited for the first to leave the window
    assert rolling_sim.stats()["rpm_rejected"] == {}
    assert proxy.value("nbmon_pacing_wait_seconds_total", model=PRO, quota="rpm") > WINDOW - 0.2


def test_fail_fast_answers_a_429_the_sdk_reads_as_rate_limited_and_sends_nothing(
    paced_proxy: Callable[..., Proxy], rolling_sim: SimulatorServer
) -> None:
    proxy = paced_proxy(on_limit="fail")
    client = proxy.client()
    for _ in range(RPM):
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert caught.value.code == 429 and caught.value.status == "RESOURCE_EXHAUSTED"
    assert rolling_sim.stats()["requests"] == RPM  # the refused one never went upstream
    assert proxy.value("nbmon_pacing_rejected_total", model=PRO, quota="rpm") == 1
    assert proxy.value("nbmon_proxy_requests_total", method="generateContent", code="429") == 1

    url = f"{proxy.url}/v1beta/models/{PRO}:generateContent"
    body = {"contents": [{"parts": [{"text": "a banana"}]}]}
    response = httpx.post(url, json=body, headers={"x-goog-api-key": API_KEY})
    seconds = response.headers["retry-after"]  # the slot is up to a window (+ margin) away, whole seconds up
    assert response.status_code == 429 and seconds in ("1", "2")
    details = {d["@type"].rsplit(".", 1)[-1]: d for d in response.json()["error"]["details"]}
    assert details["RetryInfo"]["retryDelay"] == f"{seconds}s"
    assert details["QuotaFailure"]["violations"][0]["quotaValue"] == str(RPM)
    assert classify_http(429, response.content, dict(response.headers)).error_class is ErrorClass.RATE_LIMITED


def test_the_clients_own_timeout_bounds_the_wait(
    paced_proxy: Callable[..., Proxy], rolling_sim: SimulatorServer
) -> None:
    proxy = paced_proxy()
    url = f"{proxy.url}/v1beta/models/{PRO}:generateContent"
    body = json.dumps({"contents": [{"parts": [{"text": "a banana"}]}]})
    headers = {"x-goog-api-key": API_KEY, "content-type": "application/json"}
    for _ in range(RPM):
        assert httpx.post(url, content=body, headers=headers).status_code == 200
    refused = httpx.post(url, content=body, headers={**headers, "x-server-timeout": "0.3"})
    assert refused.status_code == 429  # its slot is a window away, past the SDK's timeout
    assert rolling_sim.stats()["rpm_rejected"] == {} and rolling_sim.stats()["requests"] == RPM


def test_pace_is_a_proxy_key() -> None:
    from monitor.errors import ConfigError
    from monitor.proxy.config import proxy_config_from_mapping

    found: list[ConfigError] = []
    assert proxy_config_from_mapping({"pace": True}, found).pace and not found
    proxy_config_from_mapping({"pace": "maybe"}, found)
    assert [e.key for e in found] == ["proxy.pace"]
    assert dataclasses.replace(ProxyConfig(), pace=True).pace


def _serve(rolling_sim: SimulatorServer, pacer: Pacer, **config: Any) -> ProxyServer:
    proxy_config = ProxyConfig(port=0, upstream=rolling_sim.url, pace=True, **config)
    forwarder = build_forwarder(
        proxy_config, ShimConfig(), CollectorRegistry(), _normal, tracer_provider=TracerProvider(), pacer=pacer
    )
    server = ProxyServer(forwarder, CollectorRegistry())
    server.start()
    return server


def test_an_input_image_costs_the_per_image_tokens_not_its_base64(rolling_sim: SimulatorServer) -> None:
    pacer = Pacer(
        ConfiguredLimits({PRO: {"tpm": 1000}}), InProcessWindow(), window_s=WINDOW, registry=CollectorRegistry()
    )
    server = _serve(rolling_sim, pacer)
    try:
        client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=server.url))
        # 2 MB of base64: over aiohttp's 1 MiB large-body line too (the proxy must send it without a warning).
        photo = types.Part.from_bytes(data=b"\x89PNG" + bytes(1_500_000), mime_type="image/png")
        client.models.generate_content(model=PRO, contents=["make it a banana", photo], config=IMAGE)
        client.close()
    finally:
        server.stop()
    assert rolling_sim.stats()["requests"] == 1  # sent: 4 + 258 tokens, not 100,000 that never fit


def test_the_wait_leaves_min_call_s_of_the_clients_timeout_for_the_call(rolling_sim: SimulatorServer) -> None:
    pacer = Pacer(ConfiguredLimits({PRO: {"rpm": RPM}}), InProcessWindow(), window_s=WINDOW, margin_s=0.05)
    server = _serve(rolling_sim, pacer, retry_policy=RetryPolicy(min_call_s=1.0))
    url = f"{server.url}/v1beta/models/{PRO}:generateContent"
    body = json.dumps({"contents": [{"parts": [{"text": "a banana"}]}]})
    headers = {"x-goog-api-key": API_KEY, "content-type": "application/json"}
    try:
        for _ in range(RPM):
            assert httpx.post(url, content=body, headers=headers).status_code == 200
        # A slot about a window away fits 1.5 s, but would leave the call itself less than min_call_s.
        refused = httpx.post(url, content=body, headers={**headers, "x-server-timeout": "1.5"})
    finally:
        server.stop()
    assert refused.status_code == 429 and rolling_sim.stats()["requests"] == RPM


def test_a_client_that_leaves_while_it_waits_gives_its_slot_back(rolling_sim: SimulatorServer) -> None:
    window_s = 10.0
    pacer = Pacer(ConfiguredLimits({PRO: {"rpm": 1}}), InProcessWindow(), window_s=window_s, margin_s=0)
    server = _serve(rolling_sim, pacer)
    url = f"{server.url}/v1beta/models/{PRO}:generateContent"
    body = json.dumps({"contents": [{"parts": [{"text": "a banana"}]}]})
    headers = {"x-goog-api-key": API_KEY, "content-type": "application/json"}
    try:
        assert httpx.post(url, content=body, headers=headers).status_code == 200
        with pytest.raises(httpx.ReadTimeout):  # waits for a slot a window away; the client gives up first
            httpx.post(url, content=body, headers=headers, timeout=0.5)
        time.sleep(0.6)  # the proxy sees the connection gone within its poll
        after = pacer.acquire(PRO, max_wait_s=0)
    finally:
        server.stop()
    assert not after.admitted and after.retry_after_s is not None
    assert after.retry_after_s <= window_s  # the slot given back (else the next one: about two windows away)
    assert rolling_sim.stats()["requests"] == 1
