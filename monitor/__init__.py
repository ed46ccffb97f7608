"""nbmon: observability and quota monitoring for Gemini image generation."""

import typing as _typing

from monitor.config import ConfigError, ModelSpec, ShimConfig, load_shim_config
from monitor.generator import (
    AsyncImageChat,
    AsyncImageGenerator,
    ContentBlockedError,
    FallbackReason,
    GenerationError,
    ImageChat,
    ImageGenerator,
    ImageResult,
    InProcessFlag,
    OfrepFlagSource,
    Progress,
    QuotaExhaustedError,
    RetriesExhaustedError,
    RetryPolicy,
    VirtualClock,
)
from monitor.logs import configure_logging
from monitor.shim import instrument, is_instrumented, set_enabled, uninstrument
from monitor.taxonomy import (
    Category,
    ErrorClass,
    Outcome,
    classify_api_error,
    classify_exception,
    classify_http,
    classify_response,
)

__all__ = [
    "AsyncImageChat",
    "AsyncImageGenerator",
    "Category",
    "ConfigError",
    "ContentBlockedError",
    "ErrorClass",
    "FallbackReason",
    "GenerationError",
    "ImageChat",
    "ImageGenerator",
    "ImageResult",
    "InProcessFlag",
    "ModelSpec",
    "OfrepFlagSource",
    "Outcome",
    "Progress",
    "QuotaExhaustedError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "ShimConfig",
    "VirtualClock",
    "classify_api_error",
    "classify_exception",
    "classify_http",
    "classify_response",
    "configure_logging",
    "embed",
    "instrument",
    "is_instrumented",
    "load_shim_config",
    "set_enabled",
    "uninstrument",
]

if _typing.TYPE_CHECKING:
    from monitor.daemon.embed import embed


def __getattr__(name: str) -> _typing.Any:
    # The daemon (APScheduler, notifiers, gRPC) loads only when an app embeds it: `import monitor` stays light.
    if name == "embed":
        from monitor.daemon.embed import embed

        return embed
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
