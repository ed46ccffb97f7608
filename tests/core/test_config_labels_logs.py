"""Configuration validation, bounded labels and secret redaction."""

from __future__ import annotations

import io
import json
import logging
import random
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog

from monitor import labels, logs
from monitor.logs import REDACTED, UtcTimestamper, configure_logging, redact_text


def test_bounded_label_caps_unknown_values() -> None:
    label = labels.BoundedLabel(["known"], cap=2)
    assert [label(v) for v in ["known", "a", "b", "c", "a", None]] == ["known", "a", "b", "other", "a", "other"]
    assert label("has space") == "other"
    assert label("x" * 65) == "other"


@pytest.mark.parametrize(
    ("raw", "bare"),
    [
        ("gemini-3-pro-image", "gemini-3-pro-image"),
        ("models/gemini-3-pro-image", "gemini-3-pro-image"),
        ("publishers/google/models/gemini-nano-banana-2.1", "gemini-nano-banana-2.1"),
        ("projects/p/locations/global/publishers/google/models/gemini-nano-banana-2.1", "gemini-nano-banana-2.1"),
        ("google/gemini-nano-banana-2.1", "gemini-nano-banana-2.1"),
        ("tunedModels/123", "tunedModels/123"),
        ("", None),
        (None, None),
    ],
)
def test_model_id_forms(raw: str | None, bare: str | None) -> None:
    assert labels.model_id(raw) == bare


@pytest.mark.parametrize(
    "text",
    [
        "GET https://generativelanguage.googleapis.com/v1beta/models/m:generateContent?key=AIzaSECRETSECRET&alt=sse",
        "headers={'x-goog-api-key': 'sk-SECRET-123'}",
        "Authorization: Bearer ya29.SECRET",
        "Authorization: Basic dXNlcjpSECRET",
        "headers={'authorization': 'Token SECRET'}",
        "key AIzaSyA1234567890abcdefghijklmnopqrstuv leaked",
    ],
)
def test_secrets_are_redacted(text: str) -> None:
    redacted = redact_text(text)
    assert "SECRET" not in redacted
    assert "AIzaSyA1234567890abcdefghijklmnopqrstuv" not in redacted
    assert REDACTED in redacted


def test_configured_logging_redacts_every_value() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        structlog.get_logger("t").warning(
            "call",
            url="http://h/x?key=SECRET1",
            api_key="SECRET2",
            nested={"authorization": "SECRET3", "api-key": "SECRET4"},
            apiKey="SECRET5",
            X_Goog_Api_Key="SECRET6",
        )
    finally:
        structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert "SECRET" not in stream.getvalue()
    assert line["event"] == "call" and line["level"] == "warning"
    assert line["api_key"] == REDACTED


HIDDEN = "hunter2x9"  # holds none of the words the fast line check looks for: only the field's shape can trip it


class _Opaque:
    def __repr__(self) -> str:
        return f"<conn GET /v1?key={HIDDEN}>"


@pytest.mark.parametrize("capture_stdlib", [False, True])
@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.parametrize(
    "fields",
    [
        {"Se_Cret": HIDDEN},
        {"ROUTING-KEY": HIDDEN},
        {"Web_Hook_Url": HIDDEN},
        {"pass-word": HIDDEN},
        {"TOKEN": HIDDEN},
        {"nested": [{"Authorization": HIDDEN}]},
        {"detail": f"GET /v1?key={HIDDEN}"},
        {"detail": "AIzaSyA1234567890abcdefghijklmnopqr" + HIDDEN},
        {"error": ValueError(f"GET /v1?key={HIDDEN} failed")},
        {"conn": _Opaque()},
        {"big": 2**70, "api_key": HIDDEN},  # orjson refuses the int: the json fallback path
    ],
)
def test_the_fast_line_check_never_lets_a_secret_through(
    fmt: str, capture_stdlib: bool, fields: dict[str, object]
) -> None:
    # The renderer only redacts when the rendered line trips a cheap check: every secret shape must trip it.
    stream = io.StringIO()
    configure_logging(fmt, stream=stream, capture_stdlib=capture_stdlib)
    try:
        structlog.get_logger("t").info("call", **fields)
    finally:
        _reset_logging()
    assert stream.getvalue().strip()
    assert HIDDEN not in stream.getvalue()


def test_every_secret_word_trips_the_line_check() -> None:
    """The renderer's unrolled check must trip on every needle and secret name, in any case and with
    separators: a line that trips it is redacted and rendered a second time."""
    renders: list[str] = []

    def render(_logger: object, _method: str, event: Any) -> str:
        renders.append(event["line"])
        return str(event["line"])

    renderer = logs.RedactingRenderer(render, consumes_event=False)
    words = [*logs._LINE_NEEDLES, *logs._SECRET_NAMES, "X-Goog-Api-Key", "Web_Hook-URL", "AIzaSy", "Pass_Word"]
    for word in words:
        for shaped in (word, word.upper(), word.title(), f'{{"{word}":1}}'):
            renders.clear()
            renderer(None, "info", {"line": shaped})
            assert len(renders) == 2, shaped
    renders.clear()
    renderer(None, "info", {"line": '{"model":"gemini-3-pro-image","error_class":"ok"}'})
    assert len(renders) == 1


@pytest.mark.parametrize("capture_stdlib", [False, True])
def test_tracebacks_and_stdlib_records_are_redacted(capture_stdlib: bool) -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream, capture_stdlib=capture_stdlib)
    try:
        try:
            raise RuntimeError(f"GET https://h/v1?key={HIDDEN}")
        except RuntimeError:
            structlog.get_logger("t").exception("failed")
        if capture_stdlib:
            logging.getLogger("apscheduler").warning("GET https://h/v1?key=%s failed", HIDDEN)
    finally:
        _reset_logging()
    assert "RuntimeError" in stream.getvalue()
    assert HIDDEN not in stream.getvalue()


def test_dataclass_fields_kept_out_of_repr_stay_out_of_json_logs() -> None:
    from monitor.daemon.config import DaemonConfig

    token = "z" * 24
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        structlog.get_logger("t").info("config", config=DaemonConfig(admin_token=token))
    finally:
        _reset_logging()
    assert "DaemonConfig" in stream.getvalue()
    assert token not in stream.getvalue()


def _reset_logging() -> None:
    structlog.reset_defaults()
    logging.getLogger().handlers.clear()


def test_a_line_without_secrets_is_rendered_once_and_unchanged() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        structlog.get_logger("t").info("genai.generation", model="gemini-3-pro-image", big=2**70, t=(1, 2))
    finally:
        structlog.reset_defaults()
    line = json.loads(stream.getvalue())
    assert (line["model"], line["big"], line["t"]) == ("gemini-3-pro-image", 2**70, [1, 2])
    assert stream.getvalue().count("\n") == 1


@pytest.mark.parametrize(
    "now",
    [1795766400.0, 1795766400.5, 1795766422.123456, 1795766459.9999996, 0.000001, 1795766399.999999],
    ids=["whole-second", "half", "micro", "rounds-up-into-next-second", "epoch", "before-midnight"],
)
def test_timestamps_are_what_datetime_writes(now: float) -> None:
    stamp = UtcTimestamper(clock=lambda: now)({}, "info", {})["timestamp"]
    assert stamp == datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_timestamps_match_datetime_over_many_clock_values() -> None:
    """Real clock values carry sub-microsecond bits: rounding must be datetime's, not an approximation."""
    rng = random.Random(5)
    values = [1795766400 + rng.uniform(-1e8, 1e8) for _ in range(20_000)] + [-0.5, -1.25, -1e-7, 1e-7]
    stamper = UtcTimestamper(clock=iter(values).__next__)
    stamps = [stamper({}, "info", {})["timestamp"] for _ in values]
    expected = [datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for now in values]
    assert [(v, s) for v, s, e in zip(values, stamps, expected, strict=True) if s != e] == []


def test_timestamps_move_with_the_clock_across_seconds() -> None:
    times = iter([100.25, 100.75, 101.5, 3700.0])
    stamper = UtcTimestamper(clock=lambda: next(times))
    stamps = [stamper({}, "info", {})["timestamp"] for _ in range(4)]
    assert stamps == [
        "1970-01-01T00:01:40.250000Z",
        "1970-01-01T00:01:40.750000Z",
        "1970-01-01T00:01:41.500000Z",
        "1970-01-01T01:01:40.000000Z",
    ]


def test_timestamps_from_many_threads_are_all_consistent() -> None:
    """Threads racing over second boundaries never pair one second's prefix with another's clock value."""
    clock = threading.local()
    stamper = UtcTimestamper(clock=lambda: clock.now)
    wrong: list[tuple[float, str]] = []

    def work(offset: float) -> None:
        for i in range(2000):
            clock.now = 1795766400 + (i % 7) + offset
            stamp = stamper({}, "info", {})["timestamp"]
            if stamp != datetime.fromtimestamp(clock.now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"):
                wrong.append((clock.now, stamp))

    threads = [threading.Thread(target=work, args=(k / 10,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_json_lines_carry_the_timestamp() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    try:
        structlog.get_logger("t").info("x")
    finally:
        structlog.reset_defaults()
    stamp = json.loads(stream.getvalue())["timestamp"]
    written = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60


class _WithStructlogForm:
    def __structlog__(self) -> str:
        return "own form"


class _Plain:
    def __repr__(self) -> str:
        return "<plain>"


def _emit_reference_events(log: Any) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        log.info("plain", n=1, ratio=0.5, flag=True, none=None, items=[1, "a"], nested={"b": 2})
        log.warn("deprecated alias")  # noqa: G010 - the alias is part of what is compared
        log.warning("objects", own=_WithStructlogForm(), plain=_Plain(), big=2**70)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        log.error("given", exc_info=RuntimeError("given error"))
        log.info("bound", request_id="explicit wins")
    finally:
        structlog.contextvars.clear_contextvars()


def test_json_lines_match_structlogs_own_processors() -> None:
    """StandardFields + render_json write what structlog's standard chain and JSONRenderer write
    (timestamps aside: structlog's clock cannot be set)."""
    ours, theirs = io.StringIO(), io.StringIO()
    configure_logging("json", stream=ours)
    try:
        _emit_reference_events(structlog.get_logger("t"))
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.WriteLoggerFactory(file=theirs),
        )
        _emit_reference_events(structlog.get_logger("t"))
    finally:
        _reset_logging()

    def lines(stream: io.StringIO) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
        for line in parsed:
            assert line.pop("timestamp")
        return parsed

    expected = lines(theirs)
    assert len(expected) == 6 and "ValueError: boom" in expected[3]["exception"]
    assert lines(ours) == expected


@pytest.mark.parametrize("method", ["debug", "info", "warning", "warn", "error", "exception", "critical", "msg"])
def test_levels_are_what_add_log_level_writes(method: str) -> None:
    ours = logs.StandardFields()(None, method, {})
    assert ours["level"] == structlog.processors.add_log_level(None, method, {})["level"]


class _BrokenForm:
    def __structlog__(self) -> str:
        raise AttributeError("inside")

    def __repr__(self) -> str:
        return "<broken form>"


def test_a_structlog_form_that_raises_attribute_error_falls_back_to_repr() -> None:
    assert json.loads(logs.render_json(None, "info", {"x": _BrokenForm()})) == {"x": "<broken form>"}


def test_without_orjson_the_stdlib_renderer_writes_the_same_event() -> None:
    # The base install has no orjson (it comes with the daemon extra): json writes the same object.
    event = {"event": "genai.generation", "n": 2**70, "ratio": 0.5, "model": "gemini-3-pro-image", "x": _BrokenForm()}
    assert json.loads(logs._render_stdlib(event)) == json.loads(logs.render_json(None, "info", event))
    assert json.loads(logs._render_stdlib(event))["n"] == 2**70


def test_bad_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format"):
        configure_logging("xml")
