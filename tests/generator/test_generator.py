"""ImageGenerator against the simulator over real HTTP, with the real SDK and a virtual clock."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from monitor.generator import (
    ContentBlockedError,
    FallbackReason,
    ImageChat,
    ImageGenerator,
    InProcessFlag,
    QuotaExhaustedError,
    RetriesExhaustedError,
    RetryPolicy,
    VirtualClock,
)
from monitor.simulator import SimulatorServer
from monitor.taxonomy import ErrorClass
from tests.support.constants import FLASH, PRO
from tests.support.shim import Shim, genai_client

PRO_ONLY_503 = {"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": 1.0}}}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=datetime(2026, 3, 10, 15, 0, tzinfo=UTC))


@pytest.fixture
def make(
    sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry, tracer_provider: TracerProvider
) -> Iterator[Any]:
    clients: list[genai.Client] = []

    def build(client: genai.Client | None = None, **settings: Any) -> ImageGenerator:
        client = client or genai_client(sim.url)
        clients.append(client)
        settings.setdefault("clock", clock)
        settings.setdefault("rng", random.Random(7))
        return ImageGenerator(client, registry=registry, tracer_provider=tracer_provider, **settings)

    yield build
    for client in clients:
        client.close()


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_ok_result_carries_the_final_image(make: Any, sim: SimulatorServer) -> None:
    result = make().generate("a banana", image_size="2K", aspect_ratio="16:9")
    assert result.image.startswith(b"\x89PNG")
    assert result.mime_type == "image/png"
    assert (result.requested_model, result.served_model) == (PRO, PRO)
    assert (result.attempts, result.waited_s, result.error_classes) == (1, 0.0, ())
    assert result.fallback_reason is FallbackReason.NONE
    assert result.thought_images == 2
    assert result.estimated_cost_usd == pytest.approx(0.134)
    assert type(result.response) is types.GenerateContentResponse
    assert sim.stats()["requests"] == 1


def test_503_burst_then_success_backs_off(
    make: Any, sim: SimulatorServer, clock: VirtualClock, registry: CollectorRegistry
) -> None:
    sim.set_profile("sequence:overloaded,overloaded,ok")
    result = make().generate("a banana")
    assert result.attempts == 3
    assert result.error_classes == (ErrorClass.OVERLOADED, ErrorClass.OVERLOADED)
    first, second = clock.sleeps
    assert 24 <= first <= 36 and 48 <= second <= 72  # 30 s then 60 s, +/-20% jitter
    assert result.waited_s == pytest.approx(first + second)
    assert metric(registry, "nbmon_retries_total", model=PRO, error_class="overloaded") == 2
    assert metric(registry, "nbmon_retry_wait_seconds_total", model=PRO) == pytest.approx(first + second)


def test_429_retry_delay_is_honoured_to_the_second(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("sequence:rate_limited,ok")
    result = make().generate("a banana")
    assert clock.sleeps == [36.0]
    assert result.error_classes == (ErrorClass.RATE_LIMITED,)


def test_429_without_a_delay_waits_the_default(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("sequence:rate_limited_no_details,ok")
    make(policy=RetryPolicy(rate_limit_default_wait_s=12)).generate("a banana")
    assert clock.sleeps == [12.0]


def test_sdk_retry_options_never_multiply_attempts(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile("sequence:overloaded,ok")
    client = genai_client(sim.url, retry_options=types.HttpRetryOptions(attempts=5, initial_delay=0.01))
    make(client).generate("a banana")
    assert sim.stats()["requests"] == 2  # the SDK would have made its own extra attempt after the 503


def test_daily_quota_fails_fast_with_the_reset_time(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("fixed:quota_exhausted")
    with pytest.raises(QuotaExhaustedError) as caught:
        make(fallback=False).generate("a banana")
    error = caught.value
    assert error.quota_id == "GenerateRequestsPerDayPerProjectPerModel"
    # 2026-03-10 15:00 UTC is 08:00 in Los Angeles (PDT since March 8): the reset is 07:00 UTC on the 11th
    assert error.resets_at == datetime(2026, 3, 11, 7, 0, tzinfo=UTC)
    assert isinstance(error.__cause__, errors.ClientError)
    assert sim.stats()["requests"] == 1
    assert clock.sleeps == []


def test_daily_quota_goes_straight_to_flash(make: Any, sim: SimulatorServer, registry: CollectorRegistry) -> None:
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"quota_exhausted": 1.0}}})
    result = make().generate("a banana")
    assert (result.served_model, result.fallback_reason) == (FLASH, FallbackReason.QUOTA_EXHAUSTED)
    assert result.attempts == 2
    assert result.estimated_cost_usd == pytest.approx(0.0336)  # the fallback's price (catalog)
    labels = {"from_model": PRO, "to_model": FLASH, "reason": "quota_exhausted"}
    assert metric(registry, "nbmon_fallbacks_total", **labels) == 1


@pytest.mark.parametrize("outcome", ["invalid_argument", "permission_denied", "not_found", "failed_precondition"])
def test_client_errors_are_never_retried(make: Any, sim: SimulatorServer, clock: VirtualClock, outcome: str) -> None:
    sim.set_profile(f"fixed:{outcome}")
    with pytest.raises(errors.ClientError):  # the SDK's own exception
        make().generate("a banana")
    assert sim.stats()["requests"] == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("outcome", "stage", "reason"),
    [("policy_block", "output", "IMAGE_PROHIBITED_CONTENT"), ("prompt_policy_block", "input", "PROHIBITED_CONTENT")],
)
def test_policy_blocks_are_never_retried(
    make: Any, sim: SimulatorServer, outcome: str, stage: str, reason: str
) -> None:
    sim.set_profile(f"fixed:{outcome}")
    with pytest.raises(ContentBlockedError) as caught:
        make().generate("a banana")
    assert (caught.value.stage, caught.value.reason) == (stage, reason)
    assert caught.value.error_class is ErrorClass.POLICY_BLOCK
    assert sim.stats()["requests"] == 1


def test_image_safety_is_rerolled_then_raised(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("fixed:safety_block")
    with pytest.raises(ContentBlockedError) as caught:
        make().generate("a portrait")
    assert (caught.value.stage, caught.value.reason) == ("output", "IMAGE_SAFETY")
    assert "after re-rolls" in str(caught.value)
    assert sim.stats()["requests"] == 2  # the first try and one re-roll
    assert clock.sleeps == []


def test_reroll_can_succeed(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile("sequence:no_image,ok")
    result = make().generate("a banana")
    assert result.error_classes == (ErrorClass.NO_IMAGE,)
    assert result.attempts == 2


def test_prompt_safety_block_is_not_rerolled(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile("fixed:prompt_block")
    with pytest.raises(ContentBlockedError) as caught:
        make().generate("a banana")
    assert caught.value.stage == "input"
    assert sim.stats()["requests"] == 1


def test_retries_exhausted_then_flash(
    make: Any,
    sim: SimulatorServer,
    clock: VirtualClock,
    registry: CollectorRegistry,
    span_exporter: InMemorySpanExporter,
    shim: Shim,
) -> None:
    sim.set_profile(PRO_ONLY_503)
    result = make().generate("a banana")
    assert (result.served_model, result.fallback_reason) == (FLASH, FallbackReason.RETRIES_EXHAUSTED)
    assert result.attempts == 6  # 5 on Pro, 1 on Flash
    assert len(clock.sleeps) == 4
    for wait, base in zip(clock.sleeps, (30, 60, 120, 240), strict=True):
        assert base * 0.8 <= wait <= base * 1.2
    labels = {"from_model": PRO, "to_model": FLASH, "reason": "retries_exhausted"}
    assert metric(registry, "nbmon_fallbacks_total", **labels) == 1
    assert metric(registry, "nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 5
    # the generator's span has an event per wait and per fallback; the shim's spans are its children
    spans = span_exporter.get_finished_spans()
    (outer,) = [s for s in spans if s.name.startswith("generate_image")]
    names = [e.name for e in outer.events]
    assert names.count("nbmon.retry_wait") == 4 and names.count("nbmon.fallback") == 1
    inner = [s for s in spans if s.name.startswith("generate_content")]
    assert len(inner) == 6
    assert all(s.parent is not None and s.parent.span_id == outer.context.span_id for s in inner)
    assert (outer.attributes or {})["nbmon.fallback_reason"] == "retries_exhausted"


def test_fallback_disabled_raises_after_retries(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile(PRO_ONLY_503)
    with pytest.raises(RetriesExhaustedError) as caught:
        make(fallback=False).generate("a banana")
    assert caught.value.attempts == 5
    assert isinstance(caught.value.__cause__, errors.ServerError)


def test_never_waits_past_the_deadline(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile(PRO_ONLY_503)
    with pytest.raises(RetriesExhaustedError, match="deadline"):
        make(fallback=False, policy=RetryPolicy(jitter=0)).generate("a banana", deadline_s=100)
    assert clock.sleeps == [30.0, 60.0]  # the next 120 s wait would cross the 100 s deadline


def test_rate_limit_delay_past_the_deadline_is_not_waited(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("fixed:rate_limited")
    with pytest.raises(RetriesExhaustedError):
        make(fallback=False).generate("a banana", deadline_s=20)
    assert clock.sleeps == []


def test_degraded_mode_routes_to_flash_with_a_canary_share(
    make: Any, sim: SimulatorServer, registry: CollectorRegistry
) -> None:
    generator = make(flag_source=InProcessFlag(degraded=True), canary_share=0.05, rng=random.Random(2026))
    served = [generator.generate("a banana").served_model for _ in range(400)]
    canary = served.count(PRO)
    # Binomial(400, 0.05): mean 20, sd 4.4; 5 sd either side would be a real routing bug
    assert canary == 18  # this seed's draw: a change in routing shows up here first
    assert 1 <= canary <= 42
    assert served.count(FLASH) == 400 - canary
    assert metric(registry, "nbmon_degraded_routing_total", decision="canary") == canary
    assert metric(registry, "nbmon_degraded_routing_total", decision="flash") == 400 - canary
    fallbacks = {"from_model": PRO, "to_model": FLASH, "reason": "degraded_mode"}
    assert metric(registry, "nbmon_fallbacks_total", **fallbacks) == 0  # routing is not a fallback


def test_a_failing_canary_falls_back_at_once(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile(PRO_ONLY_503)
    result = make(flag_source=InProcessFlag(degraded=True), canary_share=1.0).generate("a banana")
    assert (result.served_model, result.fallback_reason) == (FLASH, FallbackReason.DEGRADED_MODE)
    assert result.attempts == 2 and clock.sleeps == []  # one probe of the primary, no backoff


def test_degraded_result_reports_the_reason(make: Any) -> None:
    result = make(flag_source=InProcessFlag(degraded=True), canary_share=0.0).generate("a banana")
    assert (result.served_model, result.fallback_reason) == (FLASH, FallbackReason.DEGRADED_MODE)


@pytest.mark.telemetry_faults
def test_broken_flag_source_keeps_the_last_value(make: Any, registry: CollectorRegistry) -> None:
    class FailsAfterFirstRead:
        def __init__(self) -> None:
            self.reads = 0

        def degraded(self) -> bool:
            self.reads += 1
            if self.reads > 1:
                raise RuntimeError("flag store down")
            return True

        async def adegraded(self) -> bool:
            return self.degraded()

    generator = make(flag_source=FailsAfterFirstRead(), canary_share=0.0)
    assert generator.generate("a banana").served_model == FLASH
    assert generator.generate("a banana").served_model == FLASH  # the last value read holds
    errors_seen = registry.get_sample_value("nbmon_internal_errors_total", {"component": "generator.flag_source"})
    assert errors_seen == 1


def test_a_failing_canary_still_gets_flash_retries(make: Any, sim: SimulatorServer) -> None:
    sim.set_profile("sequence:overloaded,overloaded,ok")  # Pro canary fails, Flash fails once, then ok
    result = make(flag_source=InProcessFlag(degraded=True), canary_share=1.0).generate("a banana")
    assert (result.served_model, result.attempts) == (FLASH, 3)


def test_no_request_starts_without_time_left(make: Any, sim: SimulatorServer, clock: VirtualClock) -> None:
    sim.set_profile("fixed:overloaded")
    policy = RetryPolicy(jitter=0, initial_backoff_s=30, min_call_s=5)
    with pytest.raises(RetriesExhaustedError, match="deadline"):
        make(policy=policy, fallback=False).generate("a banana", deadline_s=34)  # a 30 s wait leaves 4 s < 5 s
    assert sim.stats()["requests"] == 1 and clock.sleeps == []


def test_stream_closed_early_is_not_an_error(make: Any, span_exporter: InMemorySpanExporter) -> None:
    stream = make().generate_stream("a banana")
    assert next(stream).kind == "thought_image"
    stream.close()
    (outer,) = [s for s in span_exporter.get_finished_spans() if s.name.startswith("generate_image")]
    assert outer.status.status_code.name != "ERROR"
    assert (outer.attributes or {})["nbmon.closed_early"] is True


def test_stream_does_not_leave_its_span_current(make: Any) -> None:
    from opentelemetry import trace

    before = trace.get_current_span()
    for step in make().generate_stream("a banana"):
        assert trace.get_current_span() is before, step.kind


def test_unknown_config_keys_fail_before_any_request(make: Any, sim: SimulatorServer) -> None:
    with pytest.raises(ValueError, match="config"):
        make().generate("a banana", temprature=0.5)
    with pytest.raises(ValueError, match="deadline_s"):
        make().generate("a banana", deadline_s=True)
    assert sim.stats()["requests"] == 0


def test_multi_turn_keeps_thought_signatures(make: Any) -> None:
    with SimulatorServer(require_thought_signatures=True) as strict:
        chat = ImageChat(make(genai_client(strict.url)))
        chat.send("a banana on a table")
        second = chat.send("now make the banana blue")
        third = chat.send("add a red apple")
        assert third.image.startswith(b"\x89PNG") and second.attempts == 1
        assert len(chat.history) == 6
        signed = [p for p in chat.history[1].parts or [] if p.thought_signature]
        assert signed, "the model turn is kept with its thoughtSignature"
        assert strict.stats()["by_outcome"].get("missing_thought_signature", 0) == 0


def test_the_simulator_does_refuse_unsigned_turns(make: Any) -> None:
    """The control for the test above: dropping the signatures is caught."""
    with SimulatorServer(require_thought_signatures=True) as strict:
        chat = ImageChat(make(genai_client(strict.url)))
        chat.send("a banana")
        for part in chat.history[1].parts or []:
            part.thought_signature = None
        with pytest.raises(errors.ClientError):
            chat.send("now blue")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": "8K"}, "image_size"),
        ({"image_size": "512px"}, "image_size"),  # the Pro model does not take 512px
        ({"aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"deadline_s": -1}, "deadline_s"),
        ({"deadline_s": 0}, "deadline_s"),
        ({"response_modalities": ["TEXT"]}, "response_modalities"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    make: Any, sim: SimulatorServer, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make().generate("a banana", **kwargs)
    assert sim.stats()["requests"] == 0


def test_empty_prompt_and_bad_settings(make: Any, sim: SimulatorServer) -> None:
    with pytest.raises(ValueError, match="prompt_or_contents"):
        make().generate("")
    with pytest.raises(ValueError, match="canary_share"):
        make(canary_share=1.5)
    with pytest.raises(ValueError, match=r"RetryPolicy\.max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match=r"RetryPolicy\.retry_classes"):
        RetryPolicy(retry_classes=frozenset({ErrorClass.INVALID_ARGUMENT}))
    assert sim.stats()["requests"] == 0


def test_a_fallback_gets_only_the_sizes_it_takes(make: Any, sim: SimulatorServer) -> None:
    """The catalog's image_sizes: 4K goes to a 4K fallback as asked; to a 1K-only one (Lite) the fallback request
    drops imageSize instead of failing on it (the simulator, like the API, refuses a size a model does not take)."""
    sim.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"quota_exhausted": 1.0}}})
    result = make().generate("a banana", image_size="4K")
    assert result.served_model == FLASH
    assert result.estimated_cost_usd == pytest.approx(0.1134)  # Nano Banana 2.1 at 4K
    lite = "gemini-3.1-flash-lite-image"
    result = make(fallback_model=lite).generate("a banana", image_size="4K")
    assert result.served_model == lite
    assert result.estimated_cost_usd == pytest.approx(0.0336)  # served at the default 1K
    assert sim.stats()["rejected"] == {}
