"""The generator's retry/fallback/routing logic as a sans-I/O coroutine.

`plan()` yields operations (read the flag, call the SDK, sleep, report progress) and receives their
results; the sync and async drivers perform them. One implementation of the logic, two of the I/O,
and tests of the logic need neither threads nor an event loop.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from monitor.daily_reset import next_daily_reset
from monitor.generator.attempt import AttemptResult
from monitor.generator.policy import FallbackReason, RetryAction, RetryDecision, RetryPolicy, decide
from monitor.generator.result import (
    ContentBlockedError,
    GenerationError,
    GenerationStoppedError,
    ImageResult,
    PacingRejectedError,
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
class Pace:
    """Ask the pacer for a send slot; the reply is a monitor.pacing.Decision."""

    model: str
    max_wait_s: float | None  # what the deadline leaves (min_call_s kept for the call); None: no bound
    tokens: int
    images: int = 1  # the images the request asks for (candidate_count), for an images-per-minute limit


@dataclass(frozen=True, slots=True)
class CheckAllowed:
    """Ask the allowed source whether generation may go on; the reply is None (it may) or a Halt."""

    model: str


@dataclass(frozen=True, slots=True)
class Halt:
    """Generation is stopped: until when and why, as far as the source tells."""

    until: datetime | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float
    slot: Any = None  # the pacing Decision this sleep waits for: given back should the sleep not end (cancelled)


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a streaming caller is told about: a retry wait or a fallback."""

    kind: str  # "retry" or "fallback"
    model: str
    wait_s: float | None
    error_class: ErrorClass


Operation = ReadFlag | CheckAllowed | Pace | Call | Sleep | Notice
Plan = Generator[Operation, Any, ImageResult]


@dataclass(frozen=True, slots=True)
class Routing:
    primary: str
    fallback: str | None  # None: fallback disabled
    canary_share: float
    image_size: str
    paced: bool = False  # a pacer is set: every call first waits for a slot in its quota window
    tokens: int = 0  # the prompt's estimated input tokens, for a tokens-per-minute limit
    images: int = 1  # the images asked for (candidate_count), for an images-per-minute limit
    gated: bool = False  # an allowed source is set: every call first asks whether generation is stopped


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
        if route.gated:  # before the pacer: a stopped call must not take a slot
            halt = yield CheckAllowed(model)
            if halt is not None:
                raise _stopped(halt, model, tuple(classes), calls)
        if route.paced:
            bound = None if time_left is None else max(time_left - policy.min_call_s, 0.0)
            paced = yield Pace(model, bound, route.tokens, route.images)
            if not paced.admitted:  # never send a request sure to get a 429
                raise _refused(paced, model, tuple(classes), calls)
            if paced.wait_s > 0:
                yield Sleep(paced.wait_s, paced)
                waited += paced.wait_s
                time_left = None if deadline_s is None else deadline_s - (now.monotonic() - started)
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


def _refused(decision: Any, model: str, classes: tuple[ErrorClass, ...], calls: int) -> PacingRejectedError:
    quota, retry = decision.quota or "rpm", decision.retry_after_s
    when = "never fits: the call costs more than the limit" if retry is None else f"has a slot in {retry:.1f}s"
    limit = "" if decision.limit is None else f" (limit {decision.limit:g} per window)"
    return PacingRejectedError(
        f"{model}: not sent: the {quota} window{limit} {when}, beyond the wait allowed (deadline or on_limit)",
        quota=quota,
        limit=decision.limit,
        retry_after_s=retry,
        model=model,
        error_classes=classes,
        attempts=calls,
    )


def _stopped(halt: Halt, model: str, classes: tuple[ErrorClass, ...], calls: int) -> GenerationStoppedError:
    when = halt.until.isoformat().replace("+00:00", "Z") if halt.until is not None else None
    until = f"until {when}" if when is not None else "until the stop is lifted"
    why = f" ({halt.reason})" if halt.reason else ""
    return GenerationStoppedError(
        f"{model}: not sent: generation is stopped {until} (flag generation-allowed is false){why}",
        until=halt.until,
        reason=halt.reason,
        model=model,
        error_classes=classes,
        attempts=calls,
    )
