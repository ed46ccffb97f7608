"""structlog set-up: JSON in production, readable in a terminal, secrets redacted everywhere."""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.contextvars import merge_contextvars

REDACTED = "[REDACTED]"
# Field names compared after lowercasing and dropping "-" and "_": apiKey, API-KEY, api_key all match.
_SECRET_NAMES = frozenset(
    {"apikey", "key", "authorization", "xgoogapikey", "token", "webhookurl", "routingkey", "secret", "password"}
)
_SAFE_NAMES: set[str] = set()  # names already checked and found harmless (bounded below)


def _is_secret_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    if name in _SAFE_NAMES:
        return False
    secret = name.lower().replace("-", "").replace("_", "") in _SECRET_NAMES
    if not secret and len(_SAFE_NAMES) < 4096:
        _SAFE_NAMES.add(name)
    return secret


_SECRET_PATTERNS = (
    (re.compile(r"([?&]key=)[^&\s\"']+"), r"\1" + REDACTED),
    # user:password@ in a URL (a scrape target's basic auth), and a Slack webhook's secret path
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@\"']+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(hooks\.slack\.com/)[^\s\"',]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(x-goog-api-key[\"']?\s*[:=]\s*[\"']?)[^\"'\s,}]+"), r"\1" + REDACTED),
    # Any scheme (Bearer, Basic, Token, ...): everything up to the end of the value goes.
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)[^\"',}\n]+"), r"\1" + REDACTED),
    (re.compile(r"AIza[0-9A-Za-z_\-]{35}"), REDACTED),  # the shape of a Google API key
)


# Plain substring tests (C speed) decide whether the substitutions are needed at all; most strings
# fail all of them. Header names in odd mixed case ("kEy") are not caught by this fast path.
def _maybe_secret(text: str) -> bool:
    return (
        "key" in text or "Key" in text or "KEY" in text or "uthoriz" in text or "UTHORIZ" in text or "AIza" in text
        or "@" in text or "hooks.slack" in text or (bool(_known) and any(secret in text for secret in _known))
    )  # fmt: skip


# Secrets the process was configured with (webhook URLs, routing keys, tokens): redacted wherever they appear,
# also in lines of libraries (httpx logs URLs) that no pattern would recognise. Only the daemon registers any.
_known: frozenset[str] = frozenset()


def register_secret(value: str | None) -> None:
    """Redact this exact value from every log line from now on (values under 8 characters are ignored)."""
    global _known
    if value and len(value) >= 8:
        _known = _known | {value}


def redact_text(text: str) -> str:
    if not _maybe_secret(text):
        return text
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_name(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-named keys and mask API keys, ?key= and Authorization values."""
    changes: dict[str, Any] = {}
    for key, value in event_dict.items():
        if _is_secret_name(key):
            changes[key] = REDACTED
        elif isinstance(value, str):
            if _maybe_secret(value):
                changes[key] = redact_text(value)
        elif isinstance(value, dict | list | tuple):
            changes[key] = _redact_value(value)
    if changes:
        event_dict.update(changes)
    return event_dict


# A secret-named field or a secret-shaped value always leaves one of these in the rendered line once it is
# lowercased and stripped of "-" and "_" (every _SECRET_NAMES entry and every _SECRET_PATTERNS match holds one).
_LINE_NEEDLES = ("key", "authorization", "token", "webhookurl", "secret", "password", "aiza")


class UtcTimestamper:
    """structlog processor: `timestamp` as ISO 8601 UTC with microseconds, e.g. 2026-11-27T06:10:22.123456Z.

    What TimeStamper(fmt="iso", utc=True) writes (it drops ".000000" on a whole second; this keeps it),
    at a fifth of its cost: the date and time of day are formatted once per second.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second: tuple[float | None, str] = (None, "")  # one attribute: a thread never sees half an update

    def __call__(self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        # Rounded as datetime.fromtimestamp does: half-even on the fraction, carried into the second.
        fraction, second = math.modf(self._clock())
        micro = round(fraction * 1_000_000)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        elif micro < 0:
            second, micro = second - 1, micro + 1_000_000
        cached, prefix = self._second
        if second != cached:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event_dict["timestamp"] = f"{prefix}.{micro:06d}Z"
        return event_dict


_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}  # structlog's map_method_name


class StandardFields:
    """structlog processor: what merge_contextvars, add_log_level, UtcTimestamper and format_exc_info add, in turn.

    One processor rather than four: the shim logs right after the SDK has parsed a response, when every
    function it runs is cold in the CPU caches, and each one counts (measured: 1.5 points of the
    per-call overhead of a ~50 KB call).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._stamp = UtcTimestamper(clock)

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event_dict = merge_contextvars(logger, method, event_dict)
        event_dict["level"] = _LEVEL_OF_METHOD.get(method, method)
        event_dict = self._stamp(logger, method, event_dict)
        if "exc_info" in event_dict:  # format_exc_info pops it; without it, it does nothing
            event_dict = structlog.processors.format_exc_info(logger, method, event_dict)
        return event_dict


class RedactingRenderer:
    """Wraps a renderer: renders, and redacts then renders again only when the line could hold a secret.

    Nearly no line does; one scan of the rendered line costs a fraction of a walk over every field
    (measured: the per-field walk was a third of the shim's per-call log event).
    """

    def __init__(
        self, renderer: Callable[[Any, str, MutableMapping[str, Any]], Any], *, consumes_event: bool = True
    ) -> None:
        self._render = renderer
        # The console renderer pops keys from the dict it renders, so redaction needs a copy; JSON leaves it whole.
        self._copy_first = consumes_event

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        snapshot = dict(event_dict) if self._copy_first else event_dict
        line = self._render(logger, method, event_dict)
        # Any of _LINE_NEEDLES, unrolled: a generator costs more than the seven scans.
        text = line if isinstance(line, str) else str(line)
        f = text.lower().replace("-", "").replace("_", "")
        if not (
            "key" in f or "authorization" in f or "token" in f or "webhookurl" in f or "secret" in f
            or "password" in f or "aiza" in f or "@" in f or "hooks.slack" in f
            or (_known and any(secret in text for secret in _known))
        ):  # fmt: skip
            return line
        line = self._render(logger, method, redact_secrets(logger, method, snapshot))
        # Values the field walk does not open (exceptions, bytes, sets, objects) are rendered text by now.
        return redact_text(line) if isinstance(line, str) else line


def _json_default(obj: Any) -> Any:
    """structlog's JSONRenderer fallback: an object's own __structlog__(), else (any AttributeError) its repr."""
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


def _render_stdlib(event_dict: MutableMapping[str, Any]) -> str:
    # ensure_ascii=False: the secret check folds case on the real characters, not on \u escapes.
    return json.dumps(event_dict, default=_json_default, ensure_ascii=False)


def _orjson_renderer() -> Callable[[MutableMapping[str, Any]], str]:
    """orjson when installed (the daemon extra), else json: the base install stays pure Python."""
    try:
        import orjson
    except ModuleNotFoundError:
        return _render_stdlib
    options = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS

    def render(event_dict: MutableMapping[str, Any]) -> str:
        try:
            return orjson.dumps(event_dict, default=_json_default, option=options).decode()
        except TypeError:  # what orjson refuses (ints over 64 bits) json takes
            return _render_stdlib(event_dict)

    return render


_render = _orjson_renderer()


def render_json(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog renderer: one JSON object per line, with orjson when it is installed.

    orjson is several times faster than json on the per-call event. Dataclasses go to the fallback (repr) as
    they do with json: orjson's own encoding would print the fields that `repr=False` keeps out of logs (the
    daemon's admin token, channel secrets).
    """
    return _render(event_dict)


# Libraries that log every request (httpx's "HTTP Request: POST <url>", APScheduler's "Running job ...") at INFO:
# at WARNING unless the level asked for is DEBUG, so a day at the defaults is not 29,000 lines of them.
QUIET_LIBRARIES = (
    "apscheduler", "httpx", "httpx2", "httpcore", "urllib3", "google_genai", "slack_sdk", "aiohttp.access",
)  # fmt: skip


def configure_logging(
    fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None, *, capture_stdlib: bool = False
) -> None:
    """Configure structlog globally; fmt is "json", "console" or "auto" (console on a TTY).

    `capture_stdlib=True` (the daemon) also renders the standard library's log records (APScheduler's)
    the same way on the same stream; an app that owns its logging set-up leaves it False.
    """
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt not in ("json", "console"):
        raise ValueError(f"log format: {fmt!r} is not one of json, console, auto")
    renderer: Any = (
        RedactingRenderer(render_json, consumes_event=False)
        if fmt == "json"
        else RedactingRenderer(
            structlog.dev.ConsoleRenderer(
                colors=False,
                exception_formatter=structlog.dev.plain_traceback,  # rich's would print local variables
            )
        )
    )
    chain: list[Any] = [StandardFields()]
    threshold = logging.getLevelNamesMapping()[level.upper()]
    if not capture_stdlib:
        structlog.configure(
            processors=[*chain, renderer],
            wrapper_class=structlog.make_filtering_bound_logger(threshold),
            logger_factory=structlog.WriteLoggerFactory(file=stream),  # one write per line, no print()
            cache_logger_on_first_use=True,
        )
        return
    # One handler writes every line (ours and the standard library's) in one write under one lock:
    # two writers on one stream could interleave and break the JSON lines.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=chain,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(threshold)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(threshold, logging.WARNING) if threshold > logging.DEBUG else threshold)
    structlog.configure(
        processors=[*chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
