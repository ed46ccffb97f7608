"""An app in another language: the official JS SDK (@google/genai, from npm) with its base URL at the proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.simulator.server import SimulatorServer
from tests.proxy.conftest import API_KEY, FLASH, PRO, Proxy, ProxyFactory

JS = Path(__file__).parent / "js"
NodeClient = Callable[..., dict[str, Any]]
pytestmark = pytest.mark.timeout(300)  # the first test may install the npm package


@pytest.fixture(scope="session")
def node_client() -> NodeClient:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed: the machines have Node 20"
    if not (JS / "node_modules" / "@google" / "genai").is_dir():
        done = subprocess.run(  # as `make test` does: the locked version, into this folder only
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            check=False,
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=280,
        )
        assert done.returncode == 0, done.stderr[-2000:]

    def run(mode: str, base_url: str, model: str = PRO, arg: str | None = None) -> dict[str, Any]:
        command = [node, "client.mjs", mode, base_url, model, *([arg] if arg else [])]
        env = {"PATH": os.environ.get("PATH", ""), "GEMINI_API_KEY": API_KEY}
        done = subprocess.run(command, cwd=JS, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    return run


@pytest.fixture
def twin() -> Any:
    with SimulatorServer(retry_delay="0.2s") as server:
        yield server


def test_generate_gets_what_a_direct_call_gets(proxy: Proxy, twin: SimulatorServer, node_client: NodeClient) -> None:
    direct, proxied = node_client("generate", twin.url)["ok"], node_client("generate", proxy.url)["ok"]
    assert proxied["body"] == direct["body"]
    assert (proxied["images"], proxied["thoughtImages"], proxied["finishReason"]) == (1, 2, "STOP")
    assert (proxied["route"], proxied["servedModel"]) == ("primary", PRO)
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert proxy.value("nbmon_images_total", model=PRO, image_size="1K", kind="final") == 1


def test_a_stream_gets_every_chunk_a_direct_stream_gets(
    proxy: Proxy, twin: SimulatorServer, node_client: NodeClient
) -> None:
    direct, proxied = node_client("stream", twin.url)["ok"], node_client("stream", proxy.url)["ok"]
    assert proxied["body"] == direct["body"] and proxied["chunks"] >= 3 and proxied["images"] == 1
    assert proxy.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert proxy.value("nbmon_proxy_requests_total", method="streamGenerateContent", code="200") == 1


def test_a_503_storm_is_the_sdks_own_error(proxy: Proxy, sim: SimulatorServer, node_client: NodeClient) -> None:
    sim.set_profile("fixed:overloaded")
    for _ in range(2):
        error = node_client("generate", proxy.url)["error"]
        assert (error["status"], error["name"]) == (503, "ApiError")
    assert proxy.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 2


def test_a_429_with_retry_info_is_retried_for_the_node_client(
    make_proxy: ProxyFactory, sim: SimulatorServer, node_client: NodeClient
) -> None:
    proxy = make_proxy(retry=True)
    sim.set_profile("sequence:rate_limited,ok")
    assert node_client("generate", proxy.url)["ok"]["images"] == 1
    assert proxy.value("nbmon_requests_total", model=PRO, code="429", error_class="rate_limited") == 1
    assert proxy.value("nbmon_retries_total", model=PRO, error_class="rate_limited") == 1


def test_a_safety_block_is_classified(proxy: Proxy, sim: SimulatorServer, node_client: NodeClient) -> None:
    sim.set_profile("fixed:safety_block")
    result = node_client("generate", proxy.url)["ok"]
    assert (result["images"], result["finishReason"]) == (0, "IMAGE_SAFETY")
    assert proxy.value("nbmon_requests_total", model=PRO, code="200", error_class="safety_block") == 1


def test_steering_and_retries_give_the_node_client_a_flash_image_in_a_storm(
    make_proxy: ProxyFactory, sim: SimulatorServer, node_client: NodeClient
) -> None:
    from monitor.proxy.config import PROXY_RETRY_POLICY

    policy = PROXY_RETRY_POLICY.__class__(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.02)
    proxy = make_proxy(steer=True, retry=True, canary_share=0.0, retry_policy=policy)
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})
    # Before the flag flips: the retry policy spends its attempts on Pro, then falls back.
    first = node_client("generate", proxy.url, PRO, "4K")["ok"]
    assert (first["images"], first["servedModel"], first["route"]) == (1, FLASH, "fallback")
    # Degraded: straight to Flash, no time lost on Pro.
    proxy.flag["degraded"] = True
    second = node_client("generate", proxy.url)["ok"]
    assert (second["images"], second["servedModel"], second["route"]) == (1, FLASH, "degraded")
    assert proxy.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 2
    assert proxy.value("nbmon_requests_total", model=FLASH, code="200", error_class="ok") == 2
    assert proxy.value("nbmon_degraded_routing_total", decision="flash") == 1


def test_an_upload_from_node_goes_through_the_proxy(proxy: Proxy, node_client: NodeClient, tmp_path: Path) -> None:
    path = tmp_path / "banana.png"
    path.write_bytes(os.urandom(9 * 1024 * 1024))
    result = node_client("upload", proxy.url, PRO, str(path))["ok"]
    assert (result["sizeBytes"], result["state"]) == (str(9 * 1024 * 1024), "ACTIVE")
    assert result["fetched"] == result["name"]
    assert proxy.value("nbmon_proxy_requests_total", method="other", code="200") == 4
