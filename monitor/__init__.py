"""nbmon: observability and quota monitoring for Gemini image generation.

Every public name is imported when first used (PEP 562), so `import monitor` costs nothing: a daemon that never
calls Gemini does not import google-genai, and an app that only instruments does not import the daemon.
"""

import importlib as _importlib
import typing as _typing

# name -> module that defines it
_EXPORTS = {
    "ConfigError": "monitor.errors",
    "ModelSpec": "monitor.catalog",
    "ShimConfig": "monitor.config",
    "load_shim_config": "monitor.config",
    "AsyncImageChat": "monitor.generator",
    "AsyncImageGenerator": "monitor.generator",
    "ContentBlockedError": "monitor.generator",
    "FallbackReason": "monitor.generator",
    "GenerationError": "monitor.generator",
    "GenerationStoppedError": "monitor.generator",
    "ImageChat": "monitor.generator",
    "ImageGenerator": "monitor.generator",
    "ImageResult": "monitor.generator",
    "InProcessFlag": "monitor.generator",
    "OfrepFlagSource": "monitor.generator",
    "PacingRejectedError": "monitor.generator",
    "Progress": "monitor.generator",
    "QuotaExhaustedError": "monitor.generator",
    "RetriesExhaustedError": "monitor.generator",
    "RetryPolicy": "monitor.generator",
    "VirtualClock": "monitor.clock",
    "configure_logging": "monitor.logs",
    "instrument": "monitor.shim",
    "is_instrumented": "monitor.shim",
    "set_enabled": "monitor.shim",
    "uninstrument": "monitor.shim",
    "Category": "monitor.taxonomy",
    "ErrorClass": "monitor.taxonomy",
    "Outcome": "monitor.taxonomy",
    "classify_api_error": "monitor.taxonomy",
    "classify_exception": "monitor.taxonomy",
    "classify_http": "monitor.taxonomy",
    "classify_response": "monitor.taxonomy",
    "embed": "monitor.daemon.embed",
}
__all__ = [
    "AsyncImageChat",
    "AsyncImageGenerator",
    "Category",
    "ConfigError",
    "ContentBlockedError",
    "ErrorClass",
    "FallbackReason",
    "GenerationError",
    "GenerationStoppedError",
    "ImageChat",
    "ImageGenerator",
    "ImageResult",
    "InProcessFlag",
    "ModelSpec",
    "OfrepFlagSource",
    "Outcome",
    "PacingRejectedError",
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
    from monitor.catalog import ModelSpec
    from monitor.clock import VirtualClock
    from monitor.config import ShimConfig, load_shim_config
    from monitor.daemon.embed import embed
    from monitor.errors import ConfigError
    from monitor.generator import (
        AsyncImageChat,
        AsyncImageGenerator,
        ContentBlockedError,
        FallbackReason,
        GenerationError,
        GenerationStoppedError,
        ImageChat,
        ImageGenerator,
        ImageResult,
        InProcessFlag,
        OfrepFlagSource,
        PacingRejectedError,
        Progress,
        QuotaExhaustedError,
        RetriesExhaustedError,
        RetryPolicy,
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


def __getattr__(name: str) -> _typing.Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
