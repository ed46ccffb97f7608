"""The guard around all telemetry code: errors are logged once, counted and swallowed.

Sentry's pattern (capture_internal_exceptions): invisible in production, loud in tests, because
listeners registered here (see monitor.testing) see every swallowed error.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from types import TracebackType

import structlog
from prometheus_client import CollectorRegistry, Counter

Listener = Callable[[str, BaseException], None]

_listeners: list[Listener] = []
_logged_components: set[str] = set()
_lock = threading.Lock()
_log = structlog.get_logger("nbmon.internal")


def add_listener(listener: Listener) -> None:
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def report_internal_error(component: str, error: BaseException, count: Callable[[str], None] | None) -> None:
    """Log (once per component), count and tell listeners; itself never raises."""
    try:
        with _lock:
            first = component not in _logged_components
            _logged_components.add(component)
            listeners = list(_listeners)
        for listener in listeners:  # first: a broken metric below must not hide the error from tests
            listener(component, error)
        if first:
            # The formatted traceback, not exc_info: rich/better-exceptions renderers would print local
            # variables, and a notifier's locals can hold a routing key.
            trace = "".join(traceback.format_exception(error))[-4000:]
            _log.error("nbmon.internal_error", component=component, error_type=type(error).__name__, traceback=trace)
        if count is not None:
            count(component)
    except Exception:  # noqa: BLE001, S110 - the last line of defence must not raise into the app
        pass


class guarded:  # used like a function: `with guarded("component", count):`
    """Context manager that swallows Exception (never BaseException) from telemetry code."""

    __slots__ = ("_component", "_count")

    def __init__(self, component: str, count: Callable[[str], None] | None = None) -> None:
        self._component = component
        self._count = count

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        report_internal_error(self._component, exc, self._count)
        return True


INTERNAL_ERRORS_TOTAL = "nbmon_internal_errors"


class InternalErrors:
    """`nbmon_internal_errors_total{component}` on one registry: every guard of this process counts here."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            INTERNAL_ERRORS_TOTAL,
            "Errors inside nbmon's own telemetry code, swallowed so the app is never affected.",
            ["component"],
            registry=registry,
        )

    def count(self, component: str) -> None:
        self.counter.labels(component).inc()

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> InternalErrors:
        from monitor._registry import per_registry

        return per_registry(cls, registry)
