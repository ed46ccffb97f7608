"""What ImageGenerator returns and raises."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.generator.policy import FallbackReason
from monitor.taxonomy import ErrorClass


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The final image of one generate() call and how it was obtained."""

    image: bytes  # the LAST non-thought image of the response
    mime_type: str
    requested_model: str
    served_model: str
    attempts: int  # SDK calls made, every model and re-roll included
    waited_s: float  # time spent sleeping between attempts
    error_classes: tuple[ErrorClass, ...]  # classes met on the way, in order (the final ok excluded)
    fallback_reason: FallbackReason
    thought_images: int  # interim images skipped (not billed)
    estimated_cost_usd: float
    text: str | None  # the model's non-thought text, if any
    response: Any  # the SDK's own GenerateContentResponse of the successful attempt


@dataclass(frozen=True, slots=True)
class Progress:
    """One step of generate_stream(): interim images as they arrive, retries, then the final image."""

    kind: str  # "thought_image", "text", "retry", "fallback", "final"
    model: str
    image: bytes | None = None
    mime_type: str | None = None
    text: str | None = None
    wait_s: float | None = None
    error_class: ErrorClass | None = None
    result: ImageResult | None = None  # set on the "final" step


class GenerationError(Exception):
    """Base of ImageGenerator's own errors. `__cause__` is the SDK's exception when there was one.

    Attributes: `model` (the model of the last attempt), `error_classes` (the classes met, in order), `attempts`
    (SDK calls made) and `error_class` (the last class, or None).
    """

    def __init__(self, message: str, *, model: str, error_classes: tuple[ErrorClass, ...], attempts: int) -> None:
        super().__init__(message)
        self.model = model
        self.error_classes = error_classes
        self.attempts = attempts

    @property
    def error_class(self) -> ErrorClass | None:
        return self.error_classes[-1] if self.error_classes else None


class QuotaExhaustedError(GenerationError):
    """A per-day quota is used up: no retry helps before the reset."""

    def __init__(self, message: str, *, quota_id: str | None, resets_at: datetime, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.quota_id = quota_id
        self.resets_at = resets_at


class ContentBlockedError(GenerationError):
    """A safety or policy block, or no image, after the configured re-rolls."""

    def __init__(self, message: str, *, stage: str | None, reason: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.stage = stage  # "input" (the prompt) or "output" (the generated image); None for no_image
        self.reason = reason  # raw finishReason / blockReason


class RetriesExhaustedError(GenerationError):
    """Retries (and the fallback, if enabled) ran out, or the deadline left no room for another wait."""


class PacingRejectedError(GenerationError):
    """The pacer refused the call, which was not sent: its quota window has no slot before the deadline (or the
    pacer's `on_limit` is "fail"). `quota` (rpm, ipm, tpm), `limit`, `retry_after_s` (None: the cost never fits)."""

    def __init__(
        self, message: str, *, quota: str, limit: float | None, retry_after_s: float | None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.quota = quota
        self.limit = limit
        self.retry_after_s = retry_after_s


class GenerationStoppedError(GenerationError):
    """Generation is stopped (`allowed_source` answered false: the daemon's `generation-allowed` flag, e.g. a spent
    budget with `action = "stop"`); the request was not sent. `until` (when the stop lapses, when the source says:
    the daemon's OFREP metadata does; else None) and `reason` (the stop's detail, or None)."""

    def __init__(self, message: str, *, until: datetime | None, reason: str | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.until = until
        self.reason = reason
