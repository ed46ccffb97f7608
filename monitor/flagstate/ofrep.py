"""OFREP request handling, without a server: the daemon's HTTP server routes requests here.

- `POST /ofrep/v1/evaluate/flags/{key}`: 200 `{key, value, reason, variant, metadata}`; 400 `PARSE_ERROR` /
  `INVALID_CONTEXT`; 404 `FLAG_NOT_FOUND`.
- `POST /ofrep/v1/evaluate/flags` (bulk): 200 `{"flags": [...]}` with a strong `ETag`; 304 when `If-None-Match`
  matches.

`dispatch` is the one OFREP router: the daemon's HTTP server sends every `/ofrep/...` request to it. Paths follow
RFC 3986: percent-encoded unreserved characters equal their plain form (`degraded%2Dmode` is `degraded-mode`);
`/flags/` is the single-flag endpoint with an empty key (404 FLAG_NOT_FOUND), not the bulk one, since the
OpenAPI's `{key}` is a required path parameter.

Reason is always `STATIC`: the value does not depend on the evaluation context. A manual override is also
`STATIC`, told apart by `metadata.source == "override"` (OFREP's reasons have no better fit).
The request context is validated but not required: a missing body, `{}` and a context without
`targetingKey` are accepted (flagd's docs post no body; OFREPProvider posts `{}` or `{"context": {}}`).
"""

from __future__ import annotations

import hashlib
import json
import re
from itertools import accumulate
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from monitor.flagstate.flags import FLAG_KEYS, Models, ResolvedFlag, resolve_flags
from monitor.flagstate.state import Decision
from monitor.wire import OFREP_FLAGS_PATH

REASON = "STATIC"
MAX_JSON_DEPTH = 64  # far above any real request; keeps json.loads (and code reading the result) off deep recursion
_JSON = "application/json"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # read as signed bytes: +1 open, -1 close


class OfrepResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None  # None: send no body (304)

    def content(self) -> bytes:
        """The body as bytes to send (empty for 304)."""
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":"), allow_nan=False).encode()


class _RequestError(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def evaluate_flag(key: str, body: bytes | None, decision: Decision, models: Models) -> OfrepResponse:
    """Single-flag evaluation."""
    try:
        _parse_request(body)
    except _RequestError as error:
        return _json(400, {"key": key, "errorCode": error.code, "errorDetails": error.details})
    for flag in resolve_flags(decision, models):
        if flag.key == key:
            return _json(200, _success(flag))
    return _json(
        404,
        {"key": key, "errorCode": "FLAG_NOT_FOUND", "errorDetails": f"flag {key!r} not found; served: {FLAG_KEYS}"},
    )


def evaluate_bulk(body: bytes | None, if_none_match: str | None, decision: Decision, models: Models) -> OfrepResponse:
    """Bulk evaluation: every flag, with an ETag so polling clients get 304 until the decision changes."""
    try:
        _parse_request(body)
    except _RequestError as error:
        return _json(400, {"errorCode": error.code, "errorDetails": error.details})
    payload = {"flags": [_success(flag) for flag in resolve_flags(decision, models)]}
    tag = _etag(payload)
    if if_none_match is not None and _matches(if_none_match, tag):
        return OfrepResponse(304, {"ETag": tag}, None)
    return _json(200, payload, {"ETag": tag})


def dispatch(
    method: str, path: str, body: bytes | None, if_none_match: str | None, decision: Decision, models: Models
) -> OfrepResponse | None:
    """Route one HTTP request; None when `path` is not an OFREP evaluation path (so the caller tries others)."""
    route = _ESCAPE.sub(_decode_unreserved, urlsplit(path).path)
    if route == OFREP_FLAGS_PATH:
        handler = "bulk"
    elif route.startswith(f"{OFREP_FLAGS_PATH}/"):
        handler = "flag"
    else:
        return None
    if method.upper() != "POST":
        return _json(405, {"errorDetails": f"{method} not allowed, use POST"}, {"Allow": "POST"})
    if handler == "bulk":
        return evaluate_bulk(body, if_none_match, decision, models)
    return evaluate_flag(unquote(route[len(OFREP_FLAGS_PATH) + 1 :]), body, decision, models)


def json_nesting_error(body: bytes, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why `body` must not reach json.loads (brackets nested deeper than `limit`), else None.

    In C, linear: a count for the usual small body; otherwise strings are cut out, each bracket becomes +1/-1
    and the deepest running sum is the nesting (about 25 ms for the worst 1 MiB body).
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return None
    steps = _JSON_STRING.sub(b"", body).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    if steps and max(accumulate(memoryview(steps).cast("b"))) > limit:
        return f"nested deeper than {limit} levels"
    return None


def bulk_etag(decision: Decision, models: Models) -> str:
    """The ETag the bulk endpoint sends for `decision` (e.g. to compare without a request)."""
    return _etag({"flags": [_success(flag) for flag in resolve_flags(decision, models)]})


def _success(flag: ResolvedFlag) -> dict[str, Any]:
    return {
        "key": flag.key,
        "value": flag.value,
        "reason": REASON,
        "variant": flag.variant,  # always set: OFREPProvider 0.3.0 reads it without a default
        "metadata": dict(flag.metadata),
    }


def _parse_request(body: bytes | None) -> None:
    if body is None or not body.strip():
        return  # no body is a request without context
    nesting = json_nesting_error(body)
    if nesting is not None:
        raise _RequestError("PARSE_ERROR", f"request body is not valid JSON: {nesting}")
    try:
        request = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; RecursionError cannot pass the nesting check.
    except (ValueError, RecursionError, _RequestError) as error:
        raise _RequestError("PARSE_ERROR", f"request body is not valid JSON: {error}") from error
    if not isinstance(request, dict):
        raise _RequestError("PARSE_ERROR", f"request body must be a JSON object, got {type(request).__name__}")
    if "context" not in request:
        return
    context = request["context"]
    if not isinstance(context, dict):
        raise _RequestError("INVALID_CONTEXT", f"context must be a JSON object, got {type(context).__name__}")
    if "targetingKey" in context and not isinstance(context["targetingKey"], str):
        raise _RequestError("INVALID_CONTEXT", "context.targetingKey must be a string")


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else match[0]


def _reject_constant(name: str) -> Any:
    raise _RequestError("PARSE_ERROR", f"{name} is not valid JSON")


def _etag(payload: dict[str, Any]) -> str:
    # Strong: byte-identical bodies for equal content, since the serialisation below is canonical.
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f'"{digest[:32]}"'


def _matches(if_none_match: str, tag: str) -> bool:
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    candidates = [candidate.strip() for candidate in if_none_match.split(",")]
    return any(candidate == "*" or candidate.removeprefix("W/") == tag for candidate in candidates)


def _json(status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> OfrepResponse:
    return OfrepResponse(status, {"Content-Type": _JSON, **(extra or {})}, body)
