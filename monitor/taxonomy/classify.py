"""Classify any outcome of a Gemini image-generation call. Pure: no I/O, never raises.

Inputs: an HTTP status plus raw body, a google-genai APIError, a transport exception, or a
successful response (SDK object, dict, or a ContentSummary of a stream).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.taxonomy import rpc_details
from monitor.taxonomy.causes import cause_of
from monitor.taxonomy.classes import ErrorClass, Outcome, QuotaWindow
from monitor.taxonomy.content import ContentSummary
from monitor.taxonomy.content import int_or_none as _int

if TYPE_CHECKING:
    from google.genai import errors as genai_errors

_SAFETY_REASONS = frozenset({"SAFETY", "IMAGE_SAFETY"})
_POLICY_REASONS = frozenset(
    {"PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "MODEL_ARMOR", "JAILBREAK"}
)
_RECITATION_REASONS = frozenset({"RECITATION", "IMAGE_RECITATION"})
_BLOCK_REASONS = _SAFETY_REASONS | _POLICY_REASONS | _RECITATION_REASONS
_STATUS_BY_CODE = {
    503: ErrorClass.OVERLOADED,
    500: ErrorClass.SERVER_ERROR,
    502: ErrorClass.BAD_GATEWAY,
    504: ErrorClass.DEADLINE_EXCEEDED,
    408: ErrorClass.DEADLINE_EXCEEDED,
    401: ErrorClass.PERMISSION_DENIED,
    403: ErrorClass.PERMISSION_DENIED,
    404: ErrorClass.NOT_FOUND,
}
_CLASS_BY_GRPC = {
    "UNAVAILABLE": ErrorClass.OVERLOADED,
    "INTERNAL": ErrorClass.SERVER_ERROR,
    "DEADLINE_EXCEEDED": ErrorClass.DEADLINE_EXCEEDED,
    "INVALID_ARGUMENT": ErrorClass.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": ErrorClass.FAILED_PRECONDITION,
    "PERMISSION_DENIED": ErrorClass.PERMISSION_DENIED,
    "UNAUTHENTICATED": ErrorClass.PERMISSION_DENIED,
    "NOT_FOUND": ErrorClass.NOT_FOUND,
}
_GRPC_STATUS = re.compile(r"[A-Z][A-Z_]{2,40}")
# Exception types by name along the MRO, so httpx, httpx2, aiohttp, requests and google-auth
# are all recognised without importing optional transports.
# CancelledError: asyncio.wait_for() and task timeouts cancel the call; the client stopped waiting.
_TIMEOUT_TYPES = frozenset(
    {"TimeoutException", "TimeoutError", "ServerTimeoutError", "Timeout", "ReadTimeout", "CancelledError"}
)
_NETWORK_TYPES = frozenset(
    {
        "NetworkError", "ConnectError", "RemoteProtocolError", "ProtocolError", "TransportError",
        "ClientConnectionError", "ClientOSError", "ServerDisconnectedError", "ClientPayloadError",
        "ConnectionError", "ChunkedEncodingError", "OSError",
    }
)  # fmt: skip


def classify_http(
    status: int,
    body: bytes | str | Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
    *,
    image_expected: bool = True,
    now: datetime | None = None,
) -> Outcome:
    """One HTTP attempt as seen on the wire. `now` resolves HTTP-date Retry-After headers."""
    parsed = _parse_json(body)
    header_delay = rpc_details.retry_after_header(_header(headers, "retry-after"), now)
    if status == 200:
        error = parsed.get("error") if isinstance(parsed, Mapping) else None
        if isinstance(error, Mapping):  # an error event inside a 200 stream
            return _classify_error(_int(error.get("code")) or 0, error, header_delay)
        summary = ContentSummary()
        if isinstance(parsed, Mapping):
            summary.add_response(parsed)
        return classify_content(summary, image_expected=image_expected, http_code=200)
    return _classify_error(status, rpc_details.error_object(parsed), header_delay)


def classify_api_error(error: genai_errors.APIError, *, now: datetime | None = None) -> Outcome:
    """A google-genai APIError; `details` holds the whole parsed body (gemini-api.md 3.1)."""
    body = rpc_details.error_object(getattr(error, "details", None))
    headers = getattr(getattr(error, "response", None), "headers", None)
    header_delay = rpc_details.retry_after_header(_header(headers, "retry-after"), now)
    code = _int(getattr(error, "code", None)) or 0
    status = getattr(error, "status", None)
    if body is not None and isinstance(status, str) and not isinstance(body.get("status"), str):
        body = {**body, "status": status}
    return _classify_error(code, body, header_delay)


def classify_exception(error: BaseException, *, now: datetime | None = None) -> Outcome:
    """Any exception a generate call can raise: API errors, transport errors, anything else."""
    # An APIError exists only once google-genai is imported: no import here, so the daemon never pays for it.
    errors_module = sys.modules.get("google.genai.errors")
    if errors_module is not None and isinstance(error, errors_module.APIError):
        return classify_api_error(error, now=now)
    names = {cls.__name__ for cls in type(error).__mro__}
    reason = type(error).__name__
    if names & _TIMEOUT_TYPES:
        return Outcome(ErrorClass.TIMEOUT, reason=reason)
    if names & _NETWORK_TYPES:
        return Outcome(ErrorClass.NETWORK_ERROR, reason=reason)
    return Outcome(ErrorClass.UNKNOWN, reason=reason)


def classify_response(response: object, *, image_expected: bool = True) -> Outcome:
    """A successful (HTTP 200) GenerateContentResponse, SDK object or dict."""
    summary = ContentSummary()
    summary.add_response(response)
    return classify_content(summary, image_expected=image_expected, http_code=200)


def classify_content(summary: ContentSummary, *, image_expected: bool = True, http_code: int | None = None) -> Outcome:
    """HTTP 200 content: a prompt block wins, then output blocks, then the image check."""
    if summary.block_reason is not None:
        cls = _block_class(summary.block_reason)
        return Outcome(cls, http_code=http_code, block_stage="input", reason=summary.block_reason)
    by_index = summary.finish_reasons
    # One candidate is the rule; the ordered list (a property and a comprehension) only for more.
    reasons = list(by_index.values()) if len(by_index) < 2 else summary.ordered_finish_reasons
    for reason in reasons:
        if reason in _BLOCK_REASONS:
            return Outcome(_block_class(reason), http_code=http_code, block_stage="output", reason=reason)
    first = reasons[0] if reasons else None
    if not image_expected or summary.final_images > 0:
        return _ok_outcome(http_code, first)
    # Asked for an image, got none: no_image, whatever the finish reason (an unknown one keeps its raw string).
    return Outcome(ErrorClass.NO_IMAGE, http_code=http_code, reason=first)


_ok_outcomes: dict[tuple[int | None, str | None], Outcome] = {}


def _ok_outcome(http_code: int | None, reason: str | None) -> Outcome:
    # Outcomes are frozen, so the few ok ones (200 with STOP, mostly) are built once and shared.
    key = (http_code, reason)
    outcome = _ok_outcomes.get(key)
    if outcome is None:
        outcome = Outcome(ErrorClass.OK, http_code=http_code, reason=reason)
        if len(_ok_outcomes) < 64:  # finish reasons come from the API: never grow without bound
            _ok_outcomes[key] = outcome
    return outcome


def _block_class(reason: str) -> ErrorClass:
    if reason in _SAFETY_REASONS:
        return ErrorClass.SAFETY_BLOCK
    if reason in _POLICY_REASONS:
        return ErrorClass.POLICY_BLOCK
    if reason in _RECITATION_REASONS:
        return ErrorClass.RECITATION
    return ErrorClass.UNKNOWN


def _classify_error(code: int, error: Mapping[str, Any] | None, header_delay: float | None) -> Outcome:
    raw_status = error.get("status") if error is not None else None
    grpc_status = raw_status if isinstance(raw_status, str) and _GRPC_STATUS.fullmatch(raw_status) else None
    message = error.get("message") if error is not None else None
    details = rpc_details.detail_list(error)
    quota = rpc_details.quota_violations(details)
    retry_after = _first_known(
        rpc_details.retry_info_delay(details), header_delay, rpc_details.retry_hint_in_message(message)
    )
    http_code = code or None
    found = cause_of(code, message, details) if code in (0, 400, 429, 503) else None
    if found is not None:
        cls = found[1]
    elif code == 429 or (code == 0 and grpc_status == "RESOURCE_EXHAUSTED"):
        cls = _classify_429(quota, retry_after, message)
    elif code == 400 and grpc_status == "FAILED_PRECONDITION":
        cls = ErrorClass.FAILED_PRECONDITION
    elif code == 400:
        cls = ErrorClass.INVALID_ARGUMENT
    elif code in _STATUS_BY_CODE:
        cls = _STATUS_BY_CODE[code]
    else:
        cls = _CLASS_BY_GRPC.get(grpc_status or "", ErrorClass.UNKNOWN)
    return Outcome(
        cls,
        http_code=http_code,
        grpc_status=grpc_status,
        retry_after_s=retry_after,
        quota=quota,
        reason=grpc_status,
        cause=found[0].value if found is not None else None,
    )


def _classify_429(quota: tuple[Any, ...], retry_after: float | None, message: object) -> ErrorClass:
    """A per-day violation wins over RetryInfo; a bare 429 is a rate limit (docs/metrics.md, error classes)."""
    windows = {v.window for v in quota}
    if QuotaWindow.DAY in windows:
        return ErrorClass.QUOTA_EXHAUSTED
    if QuotaWindow.MINUTE in windows or retry_after is not None:
        return ErrorClass.RATE_LIMITED
    if isinstance(message, str) and rpc_details.window_of(message) is QuotaWindow.DAY:
        return ErrorClass.QUOTA_EXHAUSTED
    return ErrorClass.RATE_LIMITED


def _first_known(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _parse_json(body: bytes | str | Mapping[str, Any] | None) -> object:
    if body is None or isinstance(body, Mapping):
        return body
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly nested JSON
        return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
        if value is None:
            value = next((v for k, v in headers.items() if k.lower() == name), None)
    except Exception:  # noqa: BLE001 - a foreign headers object must never break classification
        return None
    return value if isinstance(value, str) else None
