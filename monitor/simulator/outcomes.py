"""The fault vocabulary: every simulated request ends in exactly one of these outcomes.

Other parts of nbmon (taxonomy tests, the demo, benchmarks) import these names, so they are defined once here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class SimOutcome(StrEnum):
    """What the simulator does with one request; the value is the wire name used in specs and headers."""

    OK = "ok"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    BAD_GATEWAY = "bad_gateway"
    BAD_GATEWAY_JSON = "bad_gateway_json"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    RATE_LIMITED = "rate_limited"
    RATE_LIMITED_LEGACY = "rate_limited_legacy"
    RATE_LIMITED_NO_DETAILS = "rate_limited_no_details"
    QUOTA_EXHAUSTED = "quota_exhausted"
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    MISSING_THOUGHT_SIGNATURE = "missing_thought_signature"
    SAFETY_BLOCK = "safety_block"
    PROMPT_BLOCK = "prompt_block"
    POLICY_BLOCK = "policy_block"
    PROMPT_POLICY_BLOCK = "prompt_policy_block"
    RECITATION = "recitation"
    NO_IMAGE = "no_image"
    NO_IMAGE_STOP = "no_image_stop"
    THOUGHT_ONLY = "thought_only"
    UNKNOWN_FINISH = "unknown_finish"
    STREAM_ERROR = "stream_error"
    RESET = "reset"
    SLOW = "slow"
    # The API as of 2026 (gemini-api.md; docs/models.md, "Today's error and response shapes", has the sources)
    HIGH_DEMAND = "high_demand"  # 503 "currently experiencing high demand", no details
    CAPACITY_EXHAUSTED = "capacity_exhausted"  # 503 with ErrorInfo MODEL_CAPACITY_EXHAUSTED
    SPEND_CAP = "spend_cap"  # 429: the project's monthly spend cap is reached
    PREPAID_DEPLETED = "prepaid_depleted"  # 429: prepaid credits are depleted
    TIER_DROPPED = "tier_dropped"  # a per-minute 429 whose limit (quotaValue) is lower than rate_limited's
    IMAGE_OTHER = "image_other"  # 200, finishReason IMAGE_OTHER with empty content and a finishMessage
    TIER_DOWNGRADED = "tier_downgraded"  # 200, served at the standard tier whatever was requested


OUTCOMES: Final[tuple[str, ...]] = tuple(o.value for o in SimOutcome)

# Outcomes answered with HTTP 200 and a GenerateContentResponse body (the rest are HTTP errors or a reset).
HTTP_200_OUTCOMES: Final[frozenset[SimOutcome]] = frozenset(
    {
        SimOutcome.OK,
        SimOutcome.SLOW,
        SimOutcome.SAFETY_BLOCK,
        SimOutcome.PROMPT_BLOCK,
        SimOutcome.POLICY_BLOCK,
        SimOutcome.PROMPT_POLICY_BLOCK,
        SimOutcome.RECITATION,
        SimOutcome.NO_IMAGE,
        SimOutcome.NO_IMAGE_STOP,
        SimOutcome.THOUGHT_ONLY,
        SimOutcome.UNKNOWN_FINISH,
        SimOutcome.IMAGE_OTHER,
        SimOutcome.TIER_DOWNGRADED,
    }
)


def to_outcome(name: str, where: str = "outcome") -> SimOutcome:
    """Parse a wire name, or raise ValueError naming `where` and listing the valid names."""
    try:
        return SimOutcome(name)
    except ValueError:
        raise ValueError(f"{where}: unknown outcome {name!r}; valid outcomes: {', '.join(OUTCOMES)}") from None
