"""AsyncImageGenerator, the streaming variants, and the OFREP flag source over real HTTP."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from google import genai
from prometheus_client import CollectorRegistry

from monitor.generator import (
    AsyncImageGenerator,
    FallbackReason,
    ImageGenerator,
    InProcessFlag,
    OfrepFlagSource,
    RetriesExhaustedError,
    VirtualClock,
)
from monitor.generator.chat import AsyncImageChat
from monitor.simulator import SimulatorServer
from monitor.taxonomy import ErrorClass
from tests.support.constants import FLASH, PRO
from tests.support.http import LoopbackServer, Reply, Request
from tests.support.shim import genai_client


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
async def async_generator() -> AsyncIterator[Any]:
    clients: list[genai.Client] = []

    def build(sim: SimulatorServer, clock: VirtualClock, **settings: Any) -> AsyncImageGenerator:
        settings.setdefault("rng", random.Random(3))
        clients.append(genai_client(sim.url))
        return AsyncImageGenerator(clients[-1], clock=clock, registry=CollectorRegistry(), **settings)

    yield build
    for client in clients:  # google-genai's async transport must be closed inside the loop
        await client.aio.aclose()
        client.close()


async def test_async_retries_and_fallback(sim: SimulatorServer, async_generator: Any) -> None:
    clock = VirtualClock()
    sim.set_profile("sequence:overloaded,rate_limited,ok")
    result = await async_generator(sim, clock).generate("a banana")
    assert result.error_classes == (ErrorClass.OVERLOADED, ErrorClass.RATE_LIMITED)
    assert clock.sleeps[1] == 36.0
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}})
    result = await async_generator(sim, clock).generate("a banana")
    assert (result.served_model, result.fallback_reason) == (FLASH, FallbackReason.RETRIES_EXHAUSTED)


async def test_async_degraded_routing_and_chat(sim: SimulatorServer, async_generator: Any) -> None:
    generator = async_generator(sim, VirtualClock(), flag_source=InProcessFlag(True), canary_share=0.0)
    assert (await generator.generate("x")).served_model == FLASH
    with SimulatorServer(require_thought_signatures=True) as strict:
        chat = AsyncImageChat(async_generator(strict, VirtualClock()))
        await chat.send("a banana")
        result = await chat.send("make it blue")
        assert result.image.startswith(b"\x89PNG")
        assert len(chat.history) == 4


def test_stream_yields_thought_images_then_the_final_one(sim: SimulatorServer) -> None:
    generator = ImageGenerator(genai_client(sim.url), clock=VirtualClock(), registry=CollectorRegistry())
    steps = list(generator.generate_stream("a banana"))
    kinds = [s.kind for s in steps]
    assert kinds.count("thought_image") == 2
    assert kinds[-1] == "final"
    assert kinds.index("thought_image") < kinds.index("final")
    final = steps[-1]
    assert final.result is not None and final.image == final.result.image
    assert final.result.thought_images == 2


def test_stream_error_mid_stream_is_retried(sim: SimulatorServer) -> None:
    clock = VirtualClock()
    sim.set_profile("sequence:stream_error,ok")
    generator = ImageGenerator(genai_client(sim.url), clock=clock, registry=CollectorRegistry(), rng=random.Random(1))
    steps = list(generator.generate_stream("a banana"))
    kinds = [s.kind for s in steps]
    assert "retry" in kinds and kinds[-1] == "final"
    retry = steps[kinds.index("retry")]
    assert retry.error_class is ErrorClass.OVERLOADED and retry.wait_s == clock.sleeps[0]
    assert kinds.index("thought_image") < kinds.index("retry")  # progress from the failed attempt was shown


async def test_async_stream(sim: SimulatorServer, async_generator: Any) -> None:
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"quota_exhausted": 1.0}}})
    generator = async_generator(sim, VirtualClock())
    steps = [step async for step in generator.generate_stream("a banana")]
    kinds = [s.kind for s in steps]
    assert "fallback" in kinds and kinds[-1] == "final"
    assert steps[-1].model == FLASH


async def test_async_stream_raises_when_exhausted(sim: SimulatorServer, async_generator: Any) -> None:
    sim.set_profile("fixed:overloaded")
    generator = async_generator(sim, VirtualClock(), fallback=False)
    with pytest.raises(RetriesExhaustedError):
        async for _ in generator.generate_stream("a banana"):
            pass


# --- the OFREP flag source against a real OFREP HTTP server ---------------------------------------------------


class FakeOfrep:
    """An OFREP endpoint on a free loopback port: one boolean flag, switchable, countable, stoppable."""

    def __init__(self, value: Any = True, status: int = 200) -> None:
        self.value, self.status, self.requests = value, status, 0
        self.bodies: list[Any] = []
        self.server = LoopbackServer(self._respond)
        self.url = self.server.url

    def _respond(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply(501)
        self.requests += 1
        self.bodies.append(request.json())
        key = request.path.rsplit("/", 1)[-1]
        if self.status == 200:
            return Reply.json({"key": key, "value": self.value, "reason": "STATIC", "variant": "on"})
        return Reply.json({"key": key, "errorCode": "FLAG_NOT_FOUND"}, self.status)

    def stop(self) -> None:
        self.server.close()


@pytest.fixture
def ofrep() -> Iterator[FakeOfrep]:
    server = FakeOfrep()
    yield server
    server.stop()


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ofrep_reads_caches_and_fails_static(ofrep: FakeOfrep) -> None:
    ticks = Ticks()
    source = OfrepFlagSource(ofrep.url, ttl_s=5, clock=ticks)
    assert source.degraded() is True
    assert ofrep.bodies == [{"context": {"targetingKey": "nbmon"}}]
    ticks.now = 4.9
    assert source.degraded() is True and ofrep.requests == 1  # cached
    ofrep.value = False
    ticks.now = 5.1
    assert source.degraded() is False and ofrep.requests == 2
    ofrep.value = True
    ticks.now = 10.2
    ofrep.stop()  # the daemon is gone: keep the last value read
    assert source.degraded() is False
    assert source.errors == 1
    ticks.now = 10.3
    assert source.degraded() is False and source.errors == 1  # no new attempt before the TTL


@pytest.mark.parametrize(("value", "status"), [("yes", 200), (None, 200), (True, 404), (True, 500)])
def test_ofrep_bad_answers_keep_the_last_value(ofrep: FakeOfrep, value: Any, status: int) -> None:
    ticks = Ticks()
    source = OfrepFlagSource(ofrep.url, ttl_s=1, clock=ticks)
    assert source.degraded() is True
    ofrep.value, ofrep.status = value, status
    ticks.now = 2
    assert source.degraded() is True
    assert source.errors == 1


def test_ofrep_default_before_the_first_read() -> None:
    with httpx.Client() as client:
        source = OfrepFlagSource("http://127.0.0.1:9", default=True, http_client=client, timeout_s=0.5)
        assert source.degraded() is True
        assert source.last_value is None and source.errors == 1
    assert OfrepFlagSource("http://127.0.0.1:9", timeout_s=0.5).degraded() is False


async def test_ofrep_async(ofrep: FakeOfrep) -> None:
    source = OfrepFlagSource(ofrep.url, ttl_s=0)
    assert await source.adegraded() is True
    ofrep.stop()
    assert await source.adegraded() is True
    assert source.errors == 1


def test_generator_reads_the_daemon_flag_over_ofrep(ofrep: FakeOfrep, sim: SimulatorServer) -> None:
    source = OfrepFlagSource(ofrep.url, ttl_s=0)
    generator = ImageGenerator(
        genai_client(sim.url), flag_source=source, canary_share=0.0, clock=VirtualClock(), registry=CollectorRegistry()
    )
    assert generator.generate("x").served_model == FLASH
    ofrep.value = False
    assert generator.generate("x").served_model == PRO


def test_ofrep_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        OfrepFlagSource("http://127.0.0.1:1", ttl_s=-1)
    with pytest.raises(ValueError, match="timeout_s"):
        OfrepFlagSource("http://127.0.0.1:1", timeout_s=0)
