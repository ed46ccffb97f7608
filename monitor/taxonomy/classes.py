"""The error classes: a public contract shared by metrics, dashboards and alert rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ErrorClass(StrEnum):
    """Outcome of one HTTP attempt or one logical call. Values are label values: never rename."""

    OK = "ok"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    BAD_GATEWAY = "bad_gateway"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BILLING_LIMITED = "billing_limited"  # a spend cap or depleted prepaid credits: no wait, no fallback cures it
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    SAFETY_BLOCK = "safety_block"
    POLICY_BLOCK = "policy_block"
    RECITATION = "recitation"
    NO_IMAGE = "no_image"
    UNKNOWN = "unknown"


class Category(StrEnum):
    """What a caller should do about a class."""

    OK = "ok"
    RETRYABLE = "retryable"
    RATE_LIMITED = "rate_limited"
    CLIENT_FIX = "client_fix"
    SAFETY = "safety"
    POLICY = "policy"
    UNKNOWN = "unknown"


CATEGORY_OF: dict[ErrorClass, Category] = {
    ErrorClass.OK: Category.OK,
    ErrorClass.OVERLOADED: Category.RETRYABLE,
    ErrorClass.SERVER_ERROR: Category.RETRYABLE,
    ErrorClass.BAD_GATEWAY: Category.RETRYABLE,
    ErrorClass.DEADLINE_EXCEEDED: Category.RETRYABLE,
    ErrorClass.NETWORK_ERROR: Category.RETRYABLE,
    ErrorClass.TIMEOUT: Category.RETRYABLE,
    ErrorClass.RATE_LIMITED: Category.RATE_LIMITED,
    ErrorClass.QUOTA_EXHAUSTED: Category.RATE_LIMITED,
    ErrorClass.BILLING_LIMITED: Category.CLIENT_FIX,
    ErrorClass.INVALID_ARGUMENT: Category.CLIENT_FIX,
    ErrorClass.FAILED_PRECONDITION: Category.CLIENT_FIX,
    ErrorClass.PERMISSION_DENIED: Category.CLIENT_FIX,
    ErrorClass.NOT_FOUND: Category.CLIENT_FIX,
    ErrorClass.SAFETY_BLOCK: Category.SAFETY,
    ErrorClass.POLICY_BLOCK: Category.POLICY,
    ErrorClass.RECITATION: Category.SAFETY,
    ErrorClass.NO_IMAGE: Category.SAFETY,
    ErrorClass.UNKNOWN: Category.UNKNOWN,
}


class Cause(StrEnum):
    """What the API said caused a refusal, beyond its class. Values are label values: never rename."""

    SPEND_CAP = "spend_cap"  # the project's monthly spend cap is reached (billing_limited)
    PREPAID_CREDITS = "prepaid_credits"  # prepaid credits are depleted (billing_limited)
    SPEND_RATE_LIMIT = "spend_rate_limit"  # the tier's spend per rolling 10 minutes (rate_limited)
    LIMIT_LOWERED = "limit_lowered"  # a quota's limit is lower than before: a tier drop (rate_limited/quota)
    CAPACITY_EXHAUSTED = "capacity_exhausted"  # no capacity for the model (overloaded)


class QuotaWindow(StrEnum):
    MINUTE = "minute"
    DAY = "day"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class QuotaViolation:
    """One violated quota, from a QuotaFailure violation or a legacy ErrorInfo."""

    quota_metric: str | None
    quota_id: str | None
    quota_value: int | None
    window: QuotaWindow


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything the taxonomy extracts from one outcome. Never holds prompt or image content."""

    error_class: ErrorClass
    http_code: int | None = None
    grpc_status: str | None = None
    retry_after_s: float | None = None
    quota: tuple[QuotaViolation, ...] = field(default_factory=tuple)
    block_stage: str | None = None  # "input" (promptFeedback) or "output" (finishReason)
    reason: str | None = None  # raw finishReason / blockReason / exception type name
    # Why a 429 or 503 happened, where the body says more than its class: a Cause value.
    cause: str | None = None
    # The `code` metric label: HTTP status as a string, or "none" without a response. A field computed once,
    # not a property: the shim reads it on every call.
    code_label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_label", str(self.http_code) if self.http_code is not None else "none")

    @property
    def category(self) -> Category:
        return CATEGORY_OF[self.error_class]

    @property
    def quota_id(self) -> str | None:
        """The most relevant quota id: a per-day one if any, else the first."""
        for violation in self.quota:
            if violation.window is QuotaWindow.DAY:
                return violation.quota_id
        return self.quota[0].quota_id if self.quota else None
