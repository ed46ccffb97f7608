"""ImageGenerator with a pacer, against a simulator enforcing a rolling window, all on one virtual clock."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.generator import AsyncImageGenerator, ImageGenerator, PacingRejectedError, RetryPolicy, VirtualClock
from monitor.pacing import ConfiguredLimits, InProcessWindow, Pacer
from monitor.simulator import SimulatorServer
from monitor.taxonomy import ErrorClass
from tests.support.constants import PRO
from tests.support.shim import genai_client

RPM = 2


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=datetime(2026, 3, 10, 15, 0, tzinfo=UTC))


@pytest.fixture
def sim(clock: VirtualClock) -> Iterator[SimulatorServer]:
    # The simulator's window runs on the same clock as the generator's waits.
    with SimulatorServer(rpm_limits={PRO: RPM}, clock=clock.monotonic) as server:
        yield server


def pacer(clock: VirtualClock, registry: CollectorRegistry, **options: Any) -> Pacer:
    limits = ConfiguredLimits({PRO: {"rpm": RPM}})
    return Pacer(limits, InProcessWindow(clock=clock.monotonic), registry=registry, **options)


def generator(sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry, **settings: Any) -> Any:
    kind = settings.pop("kind", ImageGenerator)
    return kind(
        genai_client(sim.url),
        primary_model=PRO,
        fallback=False,
        config=ShimConfig(),
        clock=clock,
        registry=registry,
        **settings,
    )


def test_a_call_over_the_limit_waits_for_its_slot_instead_of_earning_a_429(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    gen = generator(sim, clock, registry, pacer=pacer(clock, registry))
    results = [gen.generate("a banana") for _ in range(RPM + 1)]
    assert [r.waited_s for r in results] == [0, 0, 61.0]  # the window plus the pacer's margin
    assert clock.sleeps == [61.0]
    assert results[-1].attempts == 1 and results[-1].error_classes == ()
    assert sim.stats()["rpm_rejected"] == {}
    assert registry.get_sample_value("nbmon_pacing_wait_seconds_total", {"model": PRO, "quota": "rpm"}) == 61.0


def test_fail_fast_raises_a_clear_error_and_sends_nothing(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    gen = generator(sim, clock, registry, pacer=pacer(clock, registry, on_limit="fail"))
    for _ in range(RPM):
        gen.generate("a banana")
    with pytest.raises(PacingRejectedError) as caught:
        gen.generate("a banana")
    error = caught.value
    assert (error.quota, error.limit, error.retry_after_s, error.attempts) == ("rpm", RPM, 61.0, 0)
    assert "rpm window (limit 2 per window) has a slot in 61.0s" in str(error)
    assert sim.stats()["requests"] == RPM  # never sent
    assert registry.get_sample_value("nbmon_pacing_rejected_total", {"model": PRO, "quota": "rpm"}) == 1


def test_the_deadline_bounds_the_wait(sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry) -> None:
    gen = generator(sim, clock, registry, pacer=pacer(clock, registry), policy=RetryPolicy(min_call_s=5))
    for _ in range(RPM):
        gen.generate("a banana")
    with pytest.raises(PacingRejectedError):
        gen.generate("a banana", deadline_s=65)  # 61 s of wait leaves less than min_call_s
    assert gen.generate("a banana", deadline_s=66).waited_s == 61.0
    assert sim.stats()["rpm_rejected"] == {}


async def test_the_async_generator_waits_through_the_same_clock(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    gen = generator(sim, clock, registry, pacer=pacer(clock, registry), kind=AsyncImageGenerator)
    waits = [(await gen.generate("a banana")).waited_s for _ in range(RPM + 1)]
    assert waits == [0, 0, 61.0] and sim.stats()["rpm_rejected"] == {}


def test_without_a_pacer_the_simulator_refuses_with_the_real_wait_and_the_generator_honours_it(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    gen = generator(sim, clock, registry)
    for _ in range(RPM):
        gen.generate("a banana")
    clock.advance(20)
    result = gen.generate("a banana")
    assert result.error_classes == (ErrorClass.RATE_LIMITED,)
    assert clock.sleeps == [40]  # RetryInfo: the first request leaves the rolling window 40 s later
    assert sim.stats()["rpm_rejected"] == {PRO: 1}


def test_an_input_image_costs_the_per_image_tokens_not_its_base64(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    limits = ConfiguredLimits({PRO: {"tpm": 600}})
    gen = generator(
        sim, clock, registry, pacer=Pacer(limits, InProcessWindow(clock=clock.monotonic), registry=registry)
    )
    photo = base64.b64encode(b"\x89PNG" + bytes(1_000_000)).decode()  # a 1 MB image: 333,000 "tokens" as text
    contents = [{"text": "make it a banana"}, {"inline_data": {"mime_type": "image/png", "data": photo}}]
    assert gen.generate(contents).waited_s == 0  # 4 + 258 tokens of 600
    assert gen.generate(contents).waited_s == 0
    assert gen.generate(contents).waited_s == 61.0  # 3 x 262 is over 600: the third waits


def test_the_images_asked_for_count_against_an_images_per_minute_limit(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    limits = ConfiguredLimits({PRO: {"ipm": 3}})
    gen = generator(
        sim, clock, registry, pacer=Pacer(limits, InProcessWindow(clock=clock.monotonic), registry=registry)
    )
    assert gen.generate("a banana", candidate_count=2).waited_s == 0
    assert gen.generate("a banana", candidate_count=2).waited_s == 61.0  # 2 + 2 images are over 3


@pytest.mark.telemetry_faults
def test_an_estimate_that_fails_never_breaks_the_call(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    class Prompt(str):  # a prompt the SDK sends as any other, but that the estimate cannot measure
        __slots__ = ()

        def __bool__(self) -> bool:
            return True

        def __len__(self) -> int:
            raise RuntimeError("unmeasurable")

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gen = generator(sim, clock, registry, pacer=pacer(clock, registry), tracer_provider=provider)
    assert gen.generate(Prompt("a banana")).served_model == PRO
    assert registry.get_sample_value("nbmon_internal_errors_total", {"component": "pacing"}) == 1
    assert [span.name for span in exporter.get_finished_spans()] == [f"generate_image {PRO}"]  # ended


async def test_a_cancelled_call_gives_its_slot_back(sim: SimulatorServer, registry: CollectorRegistry) -> None:
    window_s = 30.0
    paced = Pacer(
        ConfiguredLimits({PRO: {"rpm": 1}}), InProcessWindow(), window_s=window_s, margin_s=0, registry=registry
    )
    gen = AsyncImageGenerator(
        genai_client(sim.url), primary_model=PRO, fallback=False, config=ShimConfig(), registry=registry, pacer=paced
    )
    await gen.generate("a banana")
    waiting = asyncio.create_task(gen.generate("a banana"))  # its slot is a window after the first call
    await asyncio.sleep(0.3)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    after = paced.acquire(PRO, max_wait_s=0)
    assert not after.admitted and after.retry_after_s is not None
    assert after.retry_after_s <= window_s  # the slot given back (else the next one: about two windows away)
