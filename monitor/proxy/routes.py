"""The Gemini Developer API as the proxy sees it: which paths it forwards, which it watches, which headers cross.

Every Gemini route starts with a version segment (`/v1beta/...`, `/v1/...`, `/upload/v1beta/files`), so the
proxy's own `/metrics`, `/healthz` and `/readyz` cannot clash with one. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

# /{version}/models/{model}:{method} and the tuned-model form; the model ID never contains "/" or ":".
_MODEL_ROUTE = re.compile(
    r"^/(?P<version>v\d+(?:alpha|beta)?\d*)/(?:models|tunedModels)/(?P<model>[^/:]+):(?P<method>\w+)$"
)
_FORWARDED = re.compile(r"^/(?:upload/)?v\d+(?:alpha|beta)?\d*(?:/|$)")
GENERATE_METHODS = frozenset({"generateContent", "streamGenerateContent"})
# Bounded `method` label values of the proxy's own metrics.
KNOWN_METHODS = frozenset(
    {*GENERATE_METHODS, "countTokens", "batchGenerateContent", "embedContent", "batchEmbedContents", "predict"}
)

# RFC 9110 section 7.6.1: hop-by-hop fields are the connection's, not the message's; `host` is the upstream's.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@dataclass(frozen=True, slots=True)
class GeminiRoute:
    """A forwarded path. `model` and `method` are set for /{version}/models/{model}:{method}."""

    path: str  # as the client sent it, percent-encoding kept
    model: str | None = None
    method: str | None = None

    @property
    def generates(self) -> bool:
        return self.method in GENERATE_METHODS

    @property
    def streams(self) -> bool:
        return self.method == "streamGenerateContent"

    @property
    def method_label(self) -> str:
        if self.method is None:
            return "other"
        return self.method if self.method in KNOWN_METHODS else "other"

    def with_model(self, model: str) -> str:
        """The path with another model: how a steered request reaches the fallback."""
        assert self.model is not None and self.method is not None
        head = self.path[: self.path.rindex("/") + 1]
        return f"{head}{model}:{self.method}"


def gemini_route(raw_path: str) -> GeminiRoute | None:
    """The route of a request path, or None when it is not a Gemini API path (then it is not forwarded)."""
    if not _FORWARDED.match(raw_path) or "/../" in raw_path or raw_path.endswith("/.."):
        return None
    match = _MODEL_ROUTE.match(unquote(raw_path))
    if match is None:
        return GeminiRoute(raw_path)
    return GeminiRoute(raw_path, match["model"], match["method"])


def forwarded_headers(headers: Iterable[tuple[str, str]], *, drop: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The end-to-end fields of a message, in order, repeated fields kept: minus hop-by-hop ones, those the
    `Connection` field names, `host`, and `drop` (lowercase names)."""
    items = list(headers)
    named = {
        token.strip().lower() for name, value in items if name.lower() == "connection" for token in value.split(",")
    }
    excluded = HOP_BY_HOP | named | {"host"} | set(drop)
    return [(name, value) for name, value in items if name.lower() not in excluded]


def server_timeout(headers: Mapping[str, str]) -> float | None:
    """The client's own timeout, as Google's SDKs send it (`X-Server-Timeout`, seconds), when there is one."""
    raw = headers.get("x-server-timeout")
    try:
        seconds = float(raw) if raw is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 < seconds < 86400 else None


_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def google_error(status: int, message: str) -> bytes:
    """A body shaped like Google's own errors, so every SDK raises its usual exception for it."""
    error = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
    return json.dumps({"error": error}).encode()
