"""The retry policy of ImageGenerator: one pure decision per attempt outcome. No I/O, no clock.

Defaults are the article's: 30 s backoff doubling to a 300 s cap, 5 attempts, +/-20% jitter; 429s wait
exactly what the server says; per-day quota fails fast or goes straight to the fallback model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.taxonomy import CATEGORY_OF, Category, ErrorClass, Outcome

RETRYABLE_CLASSES = frozenset(
    {
        ErrorClass.OVERLOADED,
        ErrorClass.SERVER_ERROR,
        ErrorClass.BAD_GATEWAY,
        ErrorClass.DEADLINE_EXCEEDED,
        ErrorClass.NETWORK_ERROR,
        ErrorClass.TIMEOUT,
    }
)
REROLL_CLASSES = frozenset({ErrorClass.SAFETY_BLOCK, ErrorClass.RECITATION, ErrorClass.NO_IMAGE})


class FallbackReason(StrEnum):
    """Why the served model differs from the requested one (a label value: never rename)."""

    NONE = "none"
    DEGRADED_MODE = "degraded_mode"
    RETRIES_EXHAUSTED = "retries_exhausted"
    QUOTA_EXHAUSTED = "quota_exhausted"


class RetryAction(StrEnum):
    DONE = "done"
    RETRY = "retry"  # same model, after wait_s
    REROLL = "reroll"  # same request again at once: output blocks are stochastic
    FALLBACK = "fallback"
    RAISE = "raise"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    action: RetryAction
    wait_s: float = 0.0
    why: str = ""
    fallback_reason: FallbackReason | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-class behaviour. Invalid values raise ValueError naming the field, at construction."""

    max_attempts: int = 5  # per model, the first attempt included
    initial_backoff_s: float = 30.0
    backoff_multiplier: float = 2.0
    max_backoff_s: float = 300.0
    jitter: float = 0.2  # +/- this fraction of each backoff
    deadline_s: float | None = 900.0  # the whole generate() call; None: no deadline
    min_call_s: float = 5.0  # no request is started with less of the deadline left than this
    rate_limit_default_wait_s: float = 60.0  # a 429 that names no delay
    reroll_attempts: int = 1  # re-sends after an output safety block / no image
    fallback_on_exhausted: bool = True
    fallback_on_quota: bool = True
    retry_classes: frozenset[ErrorClass] = field(default=RETRYABLE_CLASSES)

    def __post_init__(self) -> None:
        _check(self.max_attempts >= 1, "max_attempts", "must be >= 1")
        for name in ("initial_backoff_s", "max_backoff_s", "rate_limit_default_wait_s", "min_call_s"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value >= 0, name, "must be a finite number >= 0")
        _check(self.backoff_multiplier >= 1, "backoff_multiplier", "must be >= 1")
        _check(0 <= self.jitter < 1, "jitter", "must be in [0, 1)")
        if self.deadline_s is not None:
            _check(math.isfinite(self.deadline_s) and self.deadline_s > 0, "deadline_s", "must be > 0 or None")
        _check(self.reroll_attempts >= 0, "reroll_attempts", "must be >= 0")
        bad = {c.value for c in self.retry_classes if CATEGORY_OF[c] is not Category.RETRYABLE}
        _check(not bad, "retry_classes", f"only retryable classes may be retried with backoff, not {sorted(bad)}")

    def backoff(self, attempt: int, jitter_draw: float) -> float:
        """Wait after failed attempt number `attempt` (1-based); jitter_draw is uniform in [-1, 1]."""
        base = min(self.initial_backoff_s * self.backoff_multiplier ** (attempt - 1), self.max_backoff_s)
        return max(base * (1 + self.jitter * jitter_draw), 0.0)


def decide(
    policy: RetryPolicy,
    outcome: Outcome,
    *,
    attempt: int,
    rerolls_used: int,
    time_left_s: float | None,
    can_fallback: bool,
    jitter_draw: float,
) -> RetryDecision:
    """What to do after attempt number `attempt` on the current model ended with `outcome`."""
    cls = outcome.error_class
    if cls is ErrorClass.OK:
        return RetryDecision(RetryAction.DONE)
    if cls is ErrorClass.QUOTA_EXHAUSTED:
        if can_fallback and policy.fallback_on_quota:
            return RetryDecision(
                RetryAction.FALLBACK, why="quota_exhausted", fallback_reason=FallbackReason.QUOTA_EXHAUSTED
            )
        return RetryDecision(RetryAction.RAISE, why="quota_exhausted")
    if cls in REROLL_CLASSES:
        if outcome.block_stage == "input":
            return RetryDecision(RetryAction.RAISE, why="prompt_blocked")
        if rerolls_used < policy.reroll_attempts:
            return RetryDecision(RetryAction.REROLL, why="output_blocked")
        return RetryDecision(RetryAction.RAISE, why="rerolls_exhausted")
    if cls is ErrorClass.RATE_LIMITED:
        wait = outcome.retry_after_s if outcome.retry_after_s is not None else policy.rate_limit_default_wait_s
        return _wait_or_give_up(policy, wait, "rate_limited", attempt, time_left_s, can_fallback)
    if cls in policy.retry_classes:
        wait = policy.backoff(attempt, jitter_draw)
        return _wait_or_give_up(policy, wait, "retryable", attempt, time_left_s, can_fallback)
    # client_fix, policy_block, unknown, and retryable classes left out of retry_classes: never retried.
    return RetryDecision(RetryAction.RAISE, why=outcome.category.value)


def _wait_or_give_up(
    policy: RetryPolicy, wait: float, why: str, attempt: int, time_left_s: float | None, can_fallback: bool
) -> RetryDecision:
    if attempt >= policy.max_attempts:
        give_up = "attempts_exhausted"
    elif time_left_s is not None and wait > time_left_s - policy.min_call_s:
        give_up = "deadline"  # never wait past the deadline: give up now rather than later
    else:
        return RetryDecision(RetryAction.RETRY, wait_s=wait, why=why)
    if can_fallback and policy.fallback_on_exhausted:
        return RetryDecision(RetryAction.FALLBACK, why=give_up, fallback_reason=FallbackReason.RETRIES_EXHAUSTED)
    return RetryDecision(RetryAction.RAISE, why=give_up)


def _check(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise ValueError(f"RetryPolicy.{name}: {problem}")
