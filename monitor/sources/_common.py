"""What the sources share: per-target status, failure-streak logging, error counting and bounded reads."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import httpx
import structlog

from monitor.signals import Series

ErrorCallback = Callable[[str, str], None]  # (target, reason)
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # a 10,000-series exposition is ~2 MB; 20 MB means something is wrong

_log = structlog.get_logger("nbmon.sources")


class SourceError(Exception):
    """One failed read of one target; `reason` is a short, stable value used as a metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}: {self.args[0]}"


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """Health of one target as of its last read; times come from the source's clock."""

    target: str
    ok: bool | None = None  # None until the first read
    last_error: str | None = None
    last_reason: str | None = None
    last_success_at: float | None = None
    last_attempt_at: float | None = None
    consecutive_failures: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)  # failures per reason since start


def display(url: str) -> str:
    """The URL without userinfo, for logs and error strings (targets may embed basic-auth credentials)."""
    try:
        parsed = httpx.URL(url)
        return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as is
        return url


def add_sample(values: dict[Series, float], labels: Mapping[str, str], value: float) -> None:
    """Adds one sample to its (model, code, error_class) series, summing series that differ in other labels."""
    # NaN, Inf and negative values are not counts: skipping keeps one bad sample from poisoning a sum.
    if not math.isfinite(value) or value < 0:
        return
    series = Series(labels.get("model", ""), labels.get("code", ""), labels.get("error_class", ""))
    values[series] = values.get(series, 0.0) + value


def read_limited(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    """The body, refusing more than `max_bytes` (after decompression) or reading past `deadline`.

    httpx timeouts apply per socket operation, so a server that trickles bytes needs the overall deadline.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise SourceError("too_large", f"Content-Length {declared} exceeds {max_bytes} bytes")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise SourceError("too_large", f"body exceeds {max_bytes} bytes")
        if time.monotonic() > deadline:
            raise SourceError("timeout", "body not received within the timeout")
    return bytes(body)


def transport_error(exc: httpx.HTTPError) -> SourceError:
    """Maps an httpx failure to a reason: `timeout`, `parse` (undecodable encoding) or `connect`."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return SourceError("timeout", message)
    if isinstance(exc, httpx.DecodingError):
        return SourceError("parse", message)
    return SourceError("connect", message)


class Tracker:
    """Per-target status, one log line per failure streak (and one on recovery), errors counted by reason."""

    def __init__(self, source: str, targets: Iterable[str], on_error: ErrorCallback | None) -> None:
        self._source = source
        self._on_error = on_error
        self._lock = threading.Lock()
        self._status = {target: TargetStatus(target) for target in targets}

    def success(self, target: str, at: float) -> None:
        with self._lock:
            previous = self._status[target]
            self._status[target] = dataclasses.replace(
                previous, ok=True, last_success_at=at, last_attempt_at=at, consecutive_failures=0
            )
        if previous.consecutive_failures:
            _log.info(
                "nbmon.source.recovered",
                source=self._source,
                target=display(target),
                failures=previous.consecutive_failures,
            )

    def failure(self, target: str, error: SourceError, at: float) -> None:
        with self._lock:
            previous = self._status[target]
            errors = dict(previous.errors)
            errors[error.reason] = errors.get(error.reason, 0) + 1
            self._status[target] = dataclasses.replace(
                previous,
                ok=False,
                last_error=str(error),
                last_reason=error.reason,
                last_attempt_at=at,
                consecutive_failures=previous.consecutive_failures + 1,
                errors=errors,
            )
        if not previous.consecutive_failures:  # a dead target logs once, not at every read
            _log.warning(
                "nbmon.source.failed",
                source=self._source,
                target=display(target),
                reason=error.reason,
                error=str(error)[:300],
            )
        if self._on_error is not None:
            try:
                self._on_error(target, error.reason)
            except Exception as exc:  # noqa: BLE001 - a broken counter must not break the read
                _log.error("nbmon.source.on_error_failed", source=self._source, error=repr(exc)[:200])

    def snapshot(self) -> dict[str, TargetStatus]:
        with self._lock:
            return dict(self._status)
