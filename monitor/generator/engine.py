"""The generator's retry/fallback/routing logic as a sans-I/O coroutine.

`plan()` yields operations (read the flag, call the SDK, sleep, report progress) and receives their
results; the sync and async drivers perform them. One implementation of the logic, two of the I/O,
and tests of the logic need neither threads nor an event loop.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

from monitor.daily_reset import next_daily_reset
from monitor.generator.attempt import AttemptResult
from monitor.generator.policy import FallbackReason, RetryAction, RetryDecision, RetryPolicy, decide
from monitor.generator.result import (
    ContentBlockedError,
    GenerationError,
    ImageResult,
    QuotaExhaustedError,
    RetriesExhaustedError,
)
from monitor.generator.telemetry import GeneratorTelemetry
from monitor.taxonomy import ErrorClass


@dataclass(frozen=True, slots=True)
class ReadFlag:
    """Ask the flag source whether the app is in degraded mode."""


@dataclass(frozen=True, slots=True)
class Call:
    model: str
    timeout_s: float | None  # what is left of the deadline, for the SDK's HTTP timeout


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a streaming caller is told about: a retry wait or a fallback."""

    kind: str  # "retry" or "fallback"
    model: str
    wait_s: float | None
    error_class: ErrorClass


Operation = ReadFlag | Call | Sleep | Notice
Plan = Generator[Operation, Any, ImageResult]


@dataclass(frozen=True, slots=True)
class Routing:
    primary: str
    fallback: str | None  # None: fallback disabled
    canary_share: float
    image_size: str


def plan(
    route: Routing,
    policy: RetryPolicy,
    telemetry: GeneratorTelemetry,
    rng: random.Random,
    deadline_s: float | None,
    now: Any,
) -> Plan:
    """`now` is the clock; only its monotonic() and now() are read here, never sleep()."""
    started = now.monotonic()
    model, reason = route.primary, FallbackReason.NONE
    canary = False
    degraded = yield ReadFlag()
    if degraded and route.fallback is not None:
        if rng.random() < route.canary_share:
            telemetry.routing("canary", route.primary)  # keeps measuring the primary's recovery
            canary = True
        else:
            telemetry.routing("flash", route.fallback)
            model, reason = route.fallback, FallbackReason.DEGRADED_MODE
    # A canary measures; it must not make its user sit through minutes of backoff on the primary in an
    # outage. The cap applies to the primary only: after the fallback the normal policy holds again.
    canary_policy = replace(policy, max_attempts=1) if canary else policy
    attempt = rerolls = calls = 0
    waited = 0.0
    classes: list[ErrorClass] = []
    result: AttemptResult | None = None
    while True:
        attempt += 1
        time_left = None if deadline_s is None else deadline_s - (now.monotonic() - started)
        if time_left is not None and time_left < policy.min_call_s and result is not None:
            # No time for a useful request: give up now rather than send one that must time out.
            raise _error(RetryDecision(RetryAction.RAISE, why="deadline"), result, model, tuple(classes), calls, now)
        calls += 1
        result = yield Call(model, time_left)
        cls = result.outcome.error_class
        if cls is ErrorClass.OK:
            return _result(route, model, reason, result, calls, waited, classes, telemetry)
        classes.append(cls)
        time_left = None if deadline_s is None else deadline_s - (now.monotonic() - started)
        can_fallback = route.fallback is not None and model != route.fallback
        decision = decide(
            canary_policy if model == route.primary else policy,
            result.outcome,
            attempt=attempt,
            rerolls_used=rerolls,
            time_left_s=time_left,
            can_fallback=can_fallback,
            jitter_draw=rng.uniform(-1.0, 1.0),
        )
        if decision.action is RetryAction.RETRY:
            telemetry.retry(model, cls, decision.wait_s, attempt)
            yield Notice("retry", model, decision.wait_s, cls)
            yield Sleep(decision.wait_s)
            waited += decision.wait_s
        elif decision.action is RetryAction.REROLL:
            rerolls += 1
            telemetry.retry(model, cls, 0.0, attempt)
            yield Notice("retry", model, 0.0, cls)
        elif decision.action is RetryAction.FALLBACK and route.fallback is not None:
            reason = decision.fallback_reason or FallbackReason.RETRIES_EXHAUSTED
            if canary and reason is FallbackReason.RETRIES_EXHAUSTED:
                reason = FallbackReason.DEGRADED_MODE
            telemetry.fallback(model, route.fallback, reason, decision.why)
            yield Notice("fallback", route.fallback, None, cls)
            model, attempt, rerolls = route.fallback, 0, 0
        else:
            raise _error(decision, result, model, tuple(classes), calls, now)


def _result(
    route: Routing,
    model: str,
    reason: FallbackReason,
    result: AttemptResult,
    calls: int,
    waited: float,
    classes: list[ErrorClass],
    telemetry: GeneratorTelemetry,
) -> ImageResult:
    if result.image is None or result.mime_type is None:  # ok means a final image was seen
        raise AssertionError("an ok attempt without a final image")
    return ImageResult(
        image=result.image,
        mime_type=result.mime_type,
        requested_model=route.primary,
        served_model=model,
        attempts=calls,
        waited_s=waited,
        error_classes=tuple(classes),
        fallback_reason=reason,
        thought_images=result.summary.thought_images,
        estimated_cost_usd=telemetry.cost(model, route.image_size, result.summary),
        text=result.text,
        response=result.response,
    )


def _error(
    decision: RetryDecision, result: AttemptResult, model: str, classes: tuple[ErrorClass, ...], calls: int, now: Any
) -> BaseException:
    outcome = result.outcome
    cls = outcome.error_class
    common: dict[str, Any] = {"model": model, "error_classes": classes, "attempts": calls}
    error: GenerationError
    if cls is ErrorClass.QUOTA_EXHAUSTED:
        resets = next_daily_reset(now.now())
        error = QuotaExhaustedError(
            f"{model}: daily quota {outcome.quota_id or '(unnamed)'} exhausted; it resets at {resets.isoformat()}",
            quota_id=outcome.quota_id,
            resets_at=resets,
            **common,
        )
    elif cls in (ErrorClass.SAFETY_BLOCK, ErrorClass.POLICY_BLOCK, ErrorClass.RECITATION, ErrorClass.NO_IMAGE):
        stage = outcome.block_stage or "output"
        error = ContentBlockedError(
            f"{model}: {cls.value} at the {stage} stage (reason {outcome.reason or 'none'})"
            + (" after re-rolls" if decision.why == "rerolls_exhausted" else ""),
            stage=outcome.block_stage,
            reason=outcome.reason,
            **common,
        )
    elif decision.why in ("attempts_exhausted", "deadline"):
        what = "the deadline leaves no room for the next wait" if decision.why == "deadline" else "retries exhausted"
        error = RetriesExhaustedError(f"{model}: {what} after {calls} attempts (last: {cls.value})", **common)
    elif result.error is not None:
        return result.error  # client_fix and unknown: the SDK's own exception, unchanged
    else:
        error = GenerationError(f"{model}: {cls.value}", **common)
    error.__cause__ = result.error
    return error
