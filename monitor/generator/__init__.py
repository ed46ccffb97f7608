"""Resilient image generation: server-honouring retries, Flash fallback, degraded-mode routing."""

from monitor.clock import Clock, SystemClock, VirtualClock
from monitor.daily_reset import next_daily_reset
from monitor.generator.aio import AsyncImageGenerator
from monitor.generator.chat import AsyncImageChat, ImageChat
from monitor.generator.flags import FlagSource, InProcessFlag, OfrepFlagSource
from monitor.generator.policy import FallbackReason, RetryPolicy
from monitor.generator.result import (
    ContentBlockedError,
    GenerationError,
    ImageResult,
    Progress,
    QuotaExhaustedError,
    RetriesExhaustedError,
)
from monitor.generator.sync import ImageGenerator
from monitor.wire import DEGRADED_FLAG

__all__ = [
    "DEGRADED_FLAG",
    "AsyncImageChat",
    "AsyncImageGenerator",
    "Clock",
    "ContentBlockedError",
    "FallbackReason",
    "FlagSource",
    "GenerationError",
    "ImageChat",
    "ImageGenerator",
    "ImageResult",
    "InProcessFlag",
    "OfrepFlagSource",
    "Progress",
    "QuotaExhaustedError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SystemClock",
    "VirtualClock",
    "next_daily_reset",
]
