"""nbmon: observability and quota monitoring for Gemini image generation."""

from monitor.config import ConfigError, ModelSpec, ShimConfig, load_shim_config
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
    "Category",
    "ConfigError",
    "ErrorClass",
    "ModelSpec",
    "Outcome",
    "ShimConfig",
    "classify_api_error",
    "classify_exception",
    "classify_http",
    "classify_response",
    "configure_logging",
    "instrument",
    "is_instrumented",
    "load_shim_config",
    "set_enabled",
    "uninstrument",
]
