"""ImageGenerator's `allowed_source`: while generation is stopped (the daemon's `generation-allowed` flag, a spent
budget with `action = "stop"`), each call raises GenerationStoppedError and no request reaches the simulator; once
the stop lapses, calls go through again. Sync, async and streaming; fail-static when the source breaks."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from prometheus_client import CollectorRegistry

from monitor import GenerationError, GenerationStoppedError
from monitor.daemon.app import Daemon
from monitor.generator import AsyncImageGenerator, ImageGenerator, InProcessFlag, OfrepFlagSource, VirtualClock
from monitor.simulator import SimulatorServer
from monitor.taxonomy import ErrorClass
from tests.support.budget import NEXT_DAY, Wall, spend_the_day, stop_config
from tests.support.http import LoopbackServer, Reply, Request, free_port
from tests.support.shim import genai_client


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def clients() -> Iterator[list[genai.Client]]:
    held: list[genai.Client] = []
    yield held
    for client in held:
        client.close()


@pytest.fixture
def make(sim: SimulatorServer, clients: list[genai.Client], registry: CollectorRegistry) -> Any:
    def build(allowed_source: Any, **settings: Any) -> ImageGenerator:
        clients.append(genai_client(sim.url))
        settings.setdefault("clock", VirtualClock())
        settings.setdefault("rng", random.Random(7))
        return ImageGenerator(clients[-1], registry=registry, allowed_source=allowed_source, **settings)

    return build


def sent(sim: SimulatorServer) -> int:
    return int(sim.stats()["requests"])


async def test_a_spent_budget_read_over_ofrep_stops_the_generator_until_the_next_day(
    tmp_path: Path, sim: SimulatorServer, make: Any
) -> None:
    wall = Wall()
    daemon = Daemon(stop_config(tmp_path, sim.url), wall=wall)  # its proxy spends; the generator calls Google
    daemon.start()
    try:
        spend_the_day(daemon, wall)
        source = OfrepFlagSource.generation_allowed(daemon.url, ttl_s=0)
        generator = make(source)
        before = sent(sim)

        with pytest.raises(GenerationStoppedError) as raised:
            generator.generate("a banana")
        stop = raised.value
        assert isinstance(stop, GenerationError)
        assert stop.until == NEXT_DAY and stop.attempts == 0 and stop.error_classes == ()
        assert stop.reason is not None and stop.reason.startswith("budget_exhausted")
        assert "stopped until 2026-11-28T08:00:00Z" in str(stop)

        with pytest.raises(GenerationStoppedError):  # streaming: raised while iterating, before any request
            list(generator.generate_stream("a banana"))

        async_client = genai_client(sim.url)
        try:
            async_generator = AsyncImageGenerator(
                async_client, registry=CollectorRegistry(), clock=VirtualClock(), allowed_source=source
            )
            with pytest.raises(GenerationStoppedError):
                await async_generator.generate("a banana")
            with pytest.raises(GenerationStoppedError):
                async for _ in async_generator.generate_stream("a banana"):
                    pass
        finally:
            await async_client.aio.aclose()
            async_client.close()
        assert sent(sim) == before  # nothing reached the simulator

        wall.at_pacific(0.1, days=1)  # the stop's `until`: lapsed, no budget check needed
        assert generator.generate("a banana").served_model == "gemini-3-pro-image"
        assert sent(sim) == before + 1
    finally:
        assert daemon.stop()


def test_an_in_process_flag_stops_and_releases(make: Any, sim: SimulatorServer) -> None:
    allowed = InProcessFlag(True)
    generator = make(allowed)
    generator.generate("a banana")
    allowed.set(False)
    with pytest.raises(GenerationStoppedError) as raised:
        generator.generate("a banana")
    assert (raised.value.until, raised.value.reason) == (None, None)
    assert "until the stop is lifted" in str(raised.value)
    assert sent(sim) == 1
    allowed.set(True)
    generator.generate("a banana")
    assert sent(sim) == 2


class StopsAfterFirstRead:
    """Allowed at the first read, stopped after it; raises from the third read on when `breaks`."""

    def __init__(self, breaks: bool = False) -> None:
        self.reads, self.breaks = 0, breaks

    def degraded(self) -> bool:
        self.reads += 1
        if self.breaks and self.reads > 2:
            raise RuntimeError("flag store down")
        return self.reads == 1

    async def adegraded(self) -> bool:
        return self.degraded()


def test_the_stop_is_checked_before_every_request_retries_included(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile("sequence:overloaded,ok")
    with pytest.raises(GenerationStoppedError) as raised:
        make(StopsAfterFirstRead()).generate("a banana")
    assert (raised.value.attempts, raised.value.error_classes) == (1, (ErrorClass.OVERLOADED,))
    assert sent(sim) == 1  # the retry was not sent


@pytest.mark.telemetry_faults
def test_a_broken_source_keeps_the_last_answer(make: Any, sim: SimulatorServer, registry: CollectorRegistry) -> None:
    source = StopsAfterFirstRead(breaks=True)
    generator = make(source)
    generator.generate("a banana")  # allowed
    for _ in range(2):  # stopped, then the source breaks: still stopped
        with pytest.raises(GenerationStoppedError):
            generator.generate("a banana")
    assert sent(sim) == 1
    component = {"component": "generator.allowed_source"}
    assert registry.get_sample_value("nbmon_internal_errors_total", component) == 1


def test_ofrep_fails_static_and_defaults_to_allowed(make: Any, sim: SimulatorServer) -> None:
    answers = [
        Reply.json(
            {
                "key": "generation-allowed",
                "value": False,
                "variant": "off",
                "reason": "STATIC",
                "metadata": {
                    "source": "budget",
                    "detail": "budget_exhausted: monthly",
                    "until": "2026-12-01T08:00:00Z",
                },
            }
        ),
        Reply.json({"errorCode": "GENERAL"}, status=500),
    ]

    def respond(request: Request) -> Reply:
        assert request.route == "/ofrep/v1/evaluate/flags/generation-allowed"
        return answers.pop(0) if len(answers) > 1 else answers[0]

    with LoopbackServer(respond) as server:
        source = OfrepFlagSource.generation_allowed(server.url, ttl_s=0)
        generator = make(source)
        for _ in range(2):  # read false; then the daemon errs: the last value holds
            with pytest.raises(GenerationStoppedError) as raised:
                generator.generate("a banana")
            assert raised.value.reason == "budget_exhausted: monthly"
            assert raised.value.until is not None and raised.value.until.isoformat() == "2026-12-01T08:00:00+00:00"
        assert source.errors == 1
    assert sent(sim) == 0

    unreachable = OfrepFlagSource.generation_allowed(f"http://127.0.0.1:{free_port()}", ttl_s=0)
    make(unreachable).generate("a banana")  # never read: allowed (the default)
    assert sent(sim) == 1 and unreachable.errors == 1
