"""Resilient image generation: server-honouring retries, Flash fallback, degraded-mode routing.

Exports are lazy (PEP 562): the retry policy is pure and the proxy and the daemon read it without importing
google-genai, which `ImageGenerator` needs.
"""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = [
    "DEGRADED_FLAG",
    "AsyncImageChat",
    "AsyncImageGenerator",
    "Clock",
    "ContentBlockedError",
    "FallbackReason",
    "FlagSource",
    "GenerationError",
    "GenerationStoppedError",
    "ImageChat",
    "ImageGenerator",
    "ImageResult",
    "InProcessFlag",
    "OfrepFlagSource",
    "PacingRejectedError",
    "Progress",
    "QuotaExhaustedError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SystemClock",
    "VirtualClock",
    "next_daily_reset",
]

_EXPORTS = {
    "DEGRADED_FLAG": "monitor.wire",
    "AsyncImageChat": "monitor.generator.chat",
    "AsyncImageGenerator": "monitor.generator.aio",
    "Clock": "monitor.clock",
    "ContentBlockedError": "monitor.generator.result",
    "FallbackReason": "monitor.generator.policy",
    "FlagSource": "monitor.generator.flags",
    "GenerationError": "monitor.generator.result",
    "GenerationStoppedError": "monitor.generator.result",
    "ImageChat": "monitor.generator.chat",
    "ImageGenerator": "monitor.generator.sync",
    "ImageResult": "monitor.generator.result",
    "InProcessFlag": "monitor.generator.flags",
    "OfrepFlagSource": "monitor.generator.flags",
    "PacingRejectedError": "monitor.generator.result",
    "Progress": "monitor.generator.result",
    "QuotaExhaustedError": "monitor.generator.result",
    "RetriesExhaustedError": "monitor.generator.result",
    "RetryPolicy": "monitor.generator.policy",
    "SystemClock": "monitor.clock",
    "VirtualClock": "monitor.clock",
    "next_daily_reset": "monitor.daily_reset",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.clock import Clock, SystemClock, VirtualClock
    from monitor.daily_reset import next_daily_reset
    from monitor.generator.aio import AsyncImageGenerator
    from monitor.generator.chat import AsyncImageChat, ImageChat
    from monitor.generator.flags import FlagSource, InProcessFlag, OfrepFlagSource
    from monitor.generator.policy import FallbackReason, RetryPolicy
    from monitor.generator.result import (
        ContentBlockedError,
        GenerationError,
        GenerationStoppedError,
        ImageResult,
        PacingRejectedError,
        Progress,
        QuotaExhaustedError,
        RetriesExhaustedError,
    )
    from monitor.generator.sync import ImageGenerator
    from monitor.wire import DEGRADED_FLAG
