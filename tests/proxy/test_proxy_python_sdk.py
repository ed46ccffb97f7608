"""The proxy through the real google-genai SDK: transparent bytes, the shim's telemetry contract, steering, retries."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
import structlog.testing
from google.genai import errors, types

from monitor.simulator.server import SimulatorServer
from tests.proxy.conftest import API_KEY, FLASH, IMAGE, PRO, Proxy, ProxyFactory
from tests.support.shim import Shim

BODY = {"contents": [{"role": "user", "parts": [{"text": "a banana on a desk"}]}],
        "generationConfig": {"responseModalities": ["IMAGE"]}}  # fmt: skip
HEADERS = {"x-goog-api-key": API_KEY, "content-type": "application/json"}


@pytest.fixture
def twin() -> Iterator[SimulatorServer]:
    """A second simulator with the same seed: the direct call's reference answers."""
    with SimulatorServer(retry_delay="0.2s") as server:
        yield server


def images(response: types.GenerateContentResponse) -> list[types.Part]:
    assert response.candidates and response.candidates[0].content and response.candidates[0].content.parts
    return [p for p in response.candidates[0].content.parts if p.inline_data is not None and not p.thought]


def test_bytes_reaching_the_client_are_the_direct_calls(proxy: Proxy, twin: SimulatorServer) -> None:
    path = f"/v1beta/models/{PRO}:generateContent"
    direct = httpx.post(twin.url + path, json=BODY, headers=HEADERS, timeout=10)
    proxied = httpx.post(proxy.url + path, json=BODY, headers=HEADERS, timeout=10)
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["x-nbmon-proxy"] == "1" and proxied.headers["x-nbmon-route"] == "primary"
    assert proxied.headers["x-nbmon-served-model"] == PRO


@pytest.mark.parametrize("sse", [True, False], ids=["sse", "json-array"])
def test_streams_pass_event_by_event_unchanged(make_proxy: ProxyFactory, sse: bool) -> None:
    path = f"/v1beta/models/{PRO}:streamGenerateContent" + ("?alt=sse" if sse else "")
    # Events 0.2 s apart: a proxy that gathered the stream would deliver its first byte with its last.
    with SimulatorServer(latency=0.8) as slow, SimulatorServer(latency=0.8) as reference:
        proxy = make_proxy(upstream=slow.url)
        with httpx.stream("POST", reference.url + path, json=BODY, headers=HEADERS, timeout=10) as direct:
            expected = b"".join(direct.iter_raw())
        arrivals: list[float] = []
        pieces: list[bytes] = []
        with httpx.stream("POST", proxy.url + path, json=BODY, headers=HEADERS, timeout=10) as proxied:
            for piece in proxied.iter_raw():
                arrivals.append(time.monotonic())
                pieces.append(piece)
    assert b"".join(pieces) == expected
    if sse:  # (the simulator writes a JSON-array stream in one piece)
        assert len(pieces) >= 3 and arrivals[-1] - arrivals[0] > 0.25
    assert proxy.value("nbmon_generations_total", model=PRO, error_class="ok") == 1


def test_the_sdk_generates_and_streams_through_the_proxy(proxy: Proxy) -> None:
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert len(images(response)) == 1
    chunks = list(client.models.generate_content_stream(model=PRO, contents="a banana", config=IMAGE))
    assert len(chunks) >= 3
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 2
    assert proxy.value("nbmon_generations_total", model=PRO, error_class="ok") == 2
    assert proxy.value("nbmon_images_total", model=PRO, image_size="1K", kind="final") == 2
    assert proxy.value("nbmon_images_total", model=PRO, image_size="1K", kind="thought") == 4
    assert proxy.value("nbmon_estimated_cost_usd_total", model=PRO, image_size="1K", service_tier="standard") > 0
    assert proxy.value("nbmon_proxy_requests_total", method="streamGenerateContent", code="200") == 1
    assert len(proxy.finished_spans()) == 2


def test_a_503_storm_reaches_the_sdk_as_its_own_error_and_counts(proxy: Proxy, sim: SimulatorServer) -> None:
    sim.set_profile("fixed:overloaded")
    client = proxy.client()
    for _ in range(3):
        with pytest.raises(errors.ServerError) as raised:
            client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        assert raised.value.code == 503
    assert proxy.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 3
    assert proxy.value("nbmon_generations_total", model=PRO, error_class="overloaded") == 3


def test_a_safety_block_returned_as_http_200_is_classified(proxy: Proxy, sim: SimulatorServer) -> None:
    sim.set_profile("fixed:safety_block")
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.IMAGE_SAFETY
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="safety_block") == 1
    assert proxy.value("nbmon_blocks_total", model=PRO, stage="output", reason="IMAGE_SAFETY") == 1


def test_a_429_with_retry_info_is_waited_out_server_side(make_proxy: ProxyFactory, sim: SimulatorServer) -> None:
    proxy = make_proxy(retry=True)
    sim.set_profile("sequence:rate_limited,ok")
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert len(images(response)) == 1
    assert proxy.value("nbmon_requests_total", model=PRO, code="429", error_class="rate_limited") == 1
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert proxy.value("nbmon_retries_total", model=PRO, error_class="rate_limited") == 1
    assert proxy.value("nbmon_retry_wait_seconds_total", model=PRO) == pytest.approx(0.2)
    assert proxy.value("nbmon_generations_total", model=PRO, error_class="ok") == 1


def test_without_retry_a_429_goes_back_unchanged(proxy: Proxy, sim: SimulatorServer, twin: SimulatorServer) -> None:
    sim.set_profile("fixed:rate_limited")
    twin.set_profile("fixed:rate_limited")
    path = f"/v1beta/models/{PRO}:generateContent"
    direct = httpx.post(twin.url + path, json=BODY, headers=HEADERS, timeout=10)
    proxied = httpx.post(proxy.url + path, json=BODY, headers=HEADERS, timeout=10)
    assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content) == (429, direct.content)


def test_retries_spent_fall_back_to_the_fallback_model(make_proxy: ProxyFactory, sim: SimulatorServer) -> None:
    from monitor.proxy.config import PROXY_RETRY_POLICY

    policy = PROXY_RETRY_POLICY.__class__(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.02)
    proxy = make_proxy(retry=True, retry_policy=policy)
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert len(images(response)) == 1
    assert response.sdk_http_response is not None and response.sdk_http_response.headers is not None
    assert response.sdk_http_response.headers["x-nbmon-served-model"] == FLASH
    assert response.sdk_http_response.headers["x-nbmon-route"] == "fallback"
    assert proxy.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 2
    assert proxy.value("nbmon_fallbacks_total", from_model=PRO, to_model=FLASH, reason="retries_exhausted") == 1


def test_steering_sends_the_primary_to_the_fallback_while_degraded(
    make_proxy: ProxyFactory, sim: SimulatorServer
) -> None:
    proxy = make_proxy(steer=True, canary_share=0.0)
    proxy.flag["degraded"] = True
    config = types.GenerateContentConfig(response_modalities=["IMAGE"], image_config=types.ImageConfig(image_size="4K"))
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=config)
    assert len(images(response)) == 1  # 4K is not a size the fallback takes: the option was dropped, not refused
    headers = response.sdk_http_response.headers if response.sdk_http_response else None
    assert headers is not None and headers["x-nbmon-route"] == "degraded" and headers["x-nbmon-served-model"] == FLASH
    assert sim.stats()["by_model"] == {FLASH: 1}
    assert proxy.value("nbmon_degraded_routing_total", decision="flash") == 1
    proxy.flag["degraded"] = False
    client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert sim.stats()["by_model"] == {FLASH: 1, PRO: 1}


def test_a_canary_share_stays_on_the_primary(make_proxy: ProxyFactory, sim: SimulatorServer) -> None:
    proxy = make_proxy(steer=True, canary_share=1.0)
    proxy.flag["degraded"] = True
    client = proxy.client()
    response = client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    headers = response.sdk_http_response.headers if response.sdk_http_response else None
    assert headers is not None and headers["x-nbmon-route"] == "canary"
    assert sim.stats()["by_model"] == {PRO: 1}


def test_other_routes_pass_through(proxy: Proxy, twin: SimulatorServer) -> None:
    path = f"/v1beta/models/{PRO}:countTokens"
    direct = httpx.post(twin.url + path, json=BODY, headers=HEADERS, timeout=10)
    proxied = httpx.post(proxy.url + path, json=BODY, headers=HEADERS, timeout=10)
    assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)
    assert proxy.value("nbmon_proxy_requests_total", method="countTokens", code=str(direct.status_code)) == 1
    assert proxy.value("nbmon_requests_total", model=PRO, code=str(direct.status_code), error_class="ok") == 0


def test_the_api_key_never_reaches_logs_metrics_or_spans(
    proxy: Proxy, sim: SimulatorServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the libraries' own records too (aiohttp, httpx)
    with structlog.testing.capture_logs() as events:
        sim.set_profile("sequence:ok,overloaded,invalid_argument")
        client = proxy.client()
        for _ in range(3):
            with contextlib.suppress(errors.APIError):
                client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
        httpx.post(f"{proxy.url}/v1beta/models/{PRO}:generateContent?key={API_KEY}", json=BODY, timeout=10)
    # The proxy's records (the test's own httpx and the SDK log in this process too, before any redaction).
    proxy_records = [r.getMessage() for r in caplog.records if r.name.startswith(("aiohttp", "nbmon", "monitor"))]
    logged = json.dumps(events, default=str) + "\n".join(proxy_records)
    exposition = httpx.get(f"{proxy.url}/metrics", timeout=5).text
    spans = json.dumps([dict(s.attributes or {}) for s in proxy.finished_spans()])
    assert sum(1 for e in events if e["event"] == "genai.generation") == 4
    for text in (logged, exposition, spans):
        assert API_KEY not in text and API_KEY[:12] not in text


def test_a_shim_behind_the_proxy_counts_nothing_twice(proxy: Proxy, shim: Shim) -> None:
    """The process that talks to Google counts: the proxy. The app's shim keeps its span and log, adds no series."""
    client = proxy.client()
    client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.total("nbmon_requests_total") == 0 and shim.total("nbmon_generations_total") == 0
    (event,) = shim.events()
    assert event["proxied"] is True and event["error_class"] == "ok" and event["final_images"] == 1
    assert len(shim.spans.get_finished_spans()) == 1


def test_an_upload_goes_through_the_proxy_both_ways(proxy: Proxy, sim: SimulatorServer, tmp_path: Path) -> None:
    """The resumable upload's URL is the upstream's: the proxy rewrites it so the chunks come back through it."""
    data = os.urandom(9 * 1024 * 1024)  # two of the SDK's 8 MiB chunks
    path = tmp_path / "banana.png"
    path.write_bytes(data)
    client = proxy.client()
    uploaded = client.files.upload(file=str(path), config=types.UploadFileConfig(mime_type="image/png"))
    assert uploaded.size_bytes == len(data) and uploaded.name is not None
    assert base64.b64decode(uploaded.sha256_hash or "").decode() == hashlib.sha256(data).hexdigest()
    assert client.files.get(name=uploaded.name).name == uploaded.name
    # start + 2 chunks (upload, then upload+finalize) + get: all of them through the proxy, none around it
    assert proxy.value("nbmon_proxy_requests_total", method="other", code="200") == 4
