"""Readers for google.rpc error details (RetryInfo, QuotaFailure, ErrorInfo) and retry hints.

Every function takes untrusted, possibly malformed input and returns None / empty instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from monitor.taxonomy.classes import QuotaViolation, QuotaWindow

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

# protobuf Duration JSON is "36s" / "1.5s"; third-party bodies also show "6h34m53s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_FULL = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_RETRY_IN_MESSAGE = re.compile(r"retry in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_MAX_DELAY_S = 7 * 86400.0  # anything longer is garbage, not a hint


def error_object(body: object) -> Mapping[str, Any] | None:
    """The `error` object of a Gemini error body, or the body itself when it has no wrapper."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, Mapping):
        return None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        return inner
    return body


def detail_list(error: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if error is None:
        return []
    details = error.get("details")
    if not isinstance(details, Sequence) or isinstance(details, str | bytes):
        return []
    return [d for d in details if isinstance(d, Mapping)]


def protobuf_duration(text: object) -> float | None:
    """Seconds in a protobuf-style duration ("36s", "0.5s", "6h34m53s"), or None."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str) and _DURATION_FULL.fullmatch(text.strip()):
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    elif isinstance(text, Mapping):  # {"seconds": "36", "nanos": 0}
        try:
            seconds = float(text.get("seconds", 0)) + float(text.get("nanos", 0)) / 1e9
        except (TypeError, ValueError):
            return None
    else:
        return None
    return seconds if 0 <= seconds <= _MAX_DELAY_S else None


def retry_info_delay(details: list[Mapping[str, Any]]) -> float | None:
    for detail in details:
        if detail.get("@type") == _RETRY_INFO:
            delay = protobuf_duration(detail.get("retryDelay"))
            if delay is not None:
                return delay
    return None


def retry_after_header(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP-date (needs `now`)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        seconds = max(seconds, 0.0)
    return seconds if 0 <= seconds <= _MAX_DELAY_S else None


def retry_hint_in_message(message: object) -> float | None:
    """The "Please retry in 37.36s." hint some 429 messages carry."""
    if not isinstance(message, str):
        return None
    match = _RETRY_IN_MESSAGE.search(message)
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return seconds if seconds <= _MAX_DELAY_S else None


def window_of(*names: str | None) -> QuotaWindow:
    """Per-minute or per-day, read from quota ids / metric names / limit names."""
    text = "".join(n for n in names if n).lower().replace("_", "").replace("-", "").replace(" ", "")
    if "perday" in text or "daily" in text:
        return QuotaWindow.DAY
    if "perminute" in text or "persecond" in text:
        return QuotaWindow.MINUTE
    return QuotaWindow.UNKNOWN


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None and not isinstance(value, bool) else None
    except ValueError:
        return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def quota_violations(details: list[Mapping[str, Any]]) -> tuple[QuotaViolation, ...]:
    """Violations from QuotaFailure details and from the older ErrorInfo format."""
    found: list[QuotaViolation] = []
    for detail in details:
        kind = detail.get("@type")
        if kind == _QUOTA_FAILURE:
            violations = detail.get("violations")
            if not isinstance(violations, Sequence) or isinstance(violations, str):
                continue
            for v in violations:
                if not isinstance(v, Mapping):
                    continue
                metric = _str_or_none(v.get("quotaMetric"))
                quota_id = _str_or_none(v.get("quotaId"))
                found.append(QuotaViolation(metric, quota_id, _int_or_none(v.get("quotaValue")), window_of(quota_id)))
        elif kind == _ERROR_INFO:
            metadata = detail.get("metadata")
            if not isinstance(metadata, Mapping):
                continue
            metric = _str_or_none(metadata.get("quota_metric"))
            limit = _str_or_none(metadata.get("quota_limit"))
            if metric is None and limit is None:
                continue
            value = _int_or_none(metadata.get("quota_limit_value"))
            found.append(QuotaViolation(metric, limit, value, window_of(limit, metric)))
    return tuple(found)
