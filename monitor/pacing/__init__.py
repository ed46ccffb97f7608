"""Shared pacing (issue #18): calls wait for a slot in Google's rolling one-minute quota windows instead of
earning a 429. Per project + model + quota (rpm, ipm, tpm), shared through Redis by a fleet, or per process.

Pure except RedisWindow (the `fleet` extra). See docs/pacing.md.
"""

from monitor.pacing.config import PacingConfig, build_pacer, load_pacer, pacing_config_from_mapping
from monitor.pacing.estimate import CHARS_PER_TOKEN, TOKENS_PER_IMAGE, estimate_tokens, requested_images
from monitor.pacing.fallback import FallbackWindow, Window
from monitor.pacing.limits import QUOTAS, ConfiguredLimits, LimitProvider, QuotaLimits
from monitor.pacing.local import InProcessWindow
from monitor.pacing.metrics import PacingMetrics
from monitor.pacing.pacer import Decision, Pacer
from monitor.pacing.window import Reservation

__all__ = [
    "CHARS_PER_TOKEN",
    "QUOTAS",
    "TOKENS_PER_IMAGE",
    "ConfiguredLimits",
    "Decision",
    "FallbackWindow",
    "InProcessWindow",
    "LimitProvider",
    "Pacer",
    "PacingConfig",
    "PacingMetrics",
    "QuotaLimits",
    "Reservation",
    "Window",
    "build_pacer",
    "estimate_tokens",
    "load_pacer",
    "pacing_config_from_mapping",
    "requested_images",
]
