"""instrument() / uninstrument(): patch google-genai once, reversibly, within a declared range."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig, load_shim_config, warn_lifecycle
from monitor.shim import wrappers
from monitor.shim.metrics import ShimMetrics
from monitor.shim.recorder import Recorder

SUPPORTED_GENAI = (3, 4)  # google-genai >= 3.0, < 4
DISABLE_ENV = "NBMON_DISABLED"
_log = structlog.get_logger("nbmon.instrument")

# (module, class, method, wrapper factory); the HTTP hooks are private SDK methods, so each is
# optional: without them every logical call still counts as one attempt.
_PUBLIC = (
    ("google.genai.models", "Models", "generate_content", wrappers.wrap_generate),
    ("google.genai.models", "Models", "generate_content_stream", wrappers.wrap_stream),
    ("google.genai.models", "AsyncModels", "generate_content", wrappers.wrap_generate_async),
    ("google.genai.models", "AsyncModels", "generate_content_stream", wrappers.wrap_stream_async),
)
_HTTP = (
    ("google.genai._api_client", "BaseApiClient", "_request_once", wrappers.wrap_request_once),
    ("google.genai._api_client", "BaseApiClient", "_async_request_once", wrappers.wrap_request_once_async),
)


@dataclass
class _Installed:
    recorder: Recorder
    originals: list[tuple[type, str, Any]]


_lock = threading.Lock()
_installed: _Installed | None = None
_enabled = True


def _current_recorder() -> Recorder | None:
    installed = _installed
    return installed.recorder if installed is not None and _enabled else None


def genai_version() -> str | None:
    try:
        return metadata.version("google-genai")
    except metadata.PackageNotFoundError:
        return None


def _supported(version: str) -> bool:
    try:
        major = int(version.split(".", 1)[0])
    except ValueError:
        return False
    return SUPPORTED_GENAI[0] <= major < SUPPORTED_GENAI[1]


def instrument(
    *,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    logger: Any = None,
    config: ShimConfig | None = None,
) -> bool:
    """Instrument google-genai; True when instrumented. Never raises: problems are logged.

    Patches `Models.generate_content`, `generate_content_stream` and their `AsyncModels` twins, and the SDK's
    HTTP layer, so that every HTTP attempt (SDK retries included) and every logical call is counted, traced and
    logged. The app keeps getting the SDK's own results, chunks and exceptions.

    Args:
        registry: the Prometheus registry for the metrics (default: prometheus_client's global one).
        tracer_provider: the OpenTelemetry tracer provider for the spans (default: the global one).
        logger: a structlog logger for the `genai.generation` events (default: structlog's "nbmon" logger).
        config: a ShimConfig, the models and the shim's options (default: the file in $NBMON_CONFIG, else
            $NBMON_CONFIG_FILE, else the defaults).

    Returns False (and logs why) when NBMON_DISABLED is 1/true/yes, when the installed google-genai is outside
    >=3.0,<4, when the configuration file is invalid, or when the metrics cannot be registered (their names
    already taken in `registry`). Idempotent: a second call while instrumented logs and keeps the first set-up.
    """
    global _installed
    if os.environ.get(DISABLE_ENV, "").lower() in ("1", "true", "yes"):
        _log.info("nbmon.instrument.disabled", reason=f"{DISABLE_ENV} is set")
        return False
    with _lock:
        if _installed is not None:
            _log.warning("nbmon.instrument.already_instrumented")
            return True
        version = genai_version()
        if version is None or not _supported(version):
            _log.error(
                "nbmon.instrument.unsupported_version",
                installed=version,
                supported=f">={SUPPORTED_GENAI[0]},<{SUPPORTED_GENAI[1]}",
            )
            return False
        try:
            import google.genai._api_client
            import google.genai.models  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - an import failure must not break the app
            _log.error("nbmon.instrument.import_failed", error_type=type(exc).__name__)
            return False
        try:
            config = config or load_shim_config()
        except ValueError as exc:
            _log.error("nbmon.instrument.bad_config", error=str(exc))
            return False
        try:
            provider = tracer_provider or trace.get_tracer_provider()
            tracer = provider.get_tracer("nbmon", _package_version())
            metrics = ShimMetrics.for_registry(registry)
        except Exception as exc:  # noqa: BLE001 - e.g. our metric names already taken in that registry
            _log.error("nbmon.instrument.setup_failed", error_type=type(exc).__name__, error=str(exc))
            return False
        metrics.model_info.use(config)
        warn_lifecycle(config, logger or _log)
        recorder = Recorder(metrics, tracer, logger or structlog.get_logger("nbmon"), config, own_logger=logger is None)
        originals: list[tuple[type, str, Any]] = []
        get = _current_recorder
        for module, cls_name, method, factory in _PUBLIC:
            if not _patch(module, cls_name, method, factory, get, originals):
                _restore(originals)
                return False
        hooked = [
            _patch(module, cls_name, method, factory, get, originals) for module, cls_name, method, factory in _HTTP
        ]
        recorder.http_hooked = all(hooked)
        if not recorder.http_hooked:
            _log.warning("nbmon.instrument.http_hooks_missing", sdk_version=version)
        _installed = _Installed(recorder, originals)
        _log.debug("nbmon.instrument.installed", sdk_version=version)
        return True


def uninstrument() -> None:
    """Restore the SDK's original methods. Safe to call when not instrumented; never raises.

    The metrics stay registered: a later instrument() on the same registry reuses them.
    """
    global _installed
    with _lock:
        if _installed is None:
            return
        _restore(_installed.originals)
        _installed = None


def is_instrumented() -> bool:
    """True while instrument() has patched google-genai (and uninstrument() has not undone it).

    set_enabled(False) does not change it: the methods stay patched, only pass through.
    """
    return _installed is not None


def set_enabled(enabled: bool) -> None:
    """Kill switch at run time: False makes every wrapper call straight through to the SDK (nothing is counted,
    traced or logged); True turns the telemetry back on. Works whether or not instrument() ran; never raises."""
    global _enabled
    _enabled = enabled


def _patch(
    module: str,
    cls_name: str,
    method: str,
    factory: Any,
    get: wrappers.RecorderGetter,
    originals: list[tuple[type, str, Any]],
) -> bool:
    import importlib

    cls = getattr(importlib.import_module(module), cls_name, None)
    original = cls.__dict__.get(method) if isinstance(cls, type) else None
    if cls is None or original is None or not callable(original):
        _log.warning("nbmon.instrument.missing_target", target=f"{module}.{cls_name}.{method}")
        return False
    setattr(cls, method, factory(original, get))
    originals.append((cls, method, original))
    return True


def _restore(originals: list[tuple[type, str, Any]]) -> None:
    for cls, method, original in reversed(originals):
        setattr(cls, method, original)
    originals.clear()


def _package_version() -> str:
    try:
        return metadata.version("nbmon")
    except metadata.PackageNotFoundError:
        return "0+unknown"
