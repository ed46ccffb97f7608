"""The shared rendering and classification helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.notify import render
from monitor.notify.base import Delivery, Result
from monitor.testing.notify import sample_notification

NOW = datetime(2025, 11, 27, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("Thu, 27 Nov 2025 14:00:30 GMT", 30.0),
        ("Thu, 27 Nov 2025 13:00:00 GMT", 0.0),  # in the past: now
        ("-3", None),  # garbage: our own backoff applies
        ("soon", None),
        ("", None),
        (None, None),
        ("inf", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert render.retry_after_s(value, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "result"),
    [
        *((status, Result.SENT) for status in (200, 202, 204)),
        *((status, Result.PERMANENT) for status in (301, 400, 404, 410)),
        *((status, Result.RETRY) for status in (429, 500, 599)),
    ],
)
def test_status_classes(status: int, result: Result) -> None:
    assert render.delivery_for_status(status, "", None, ()).result is result


def test_detail_is_short_single_line_and_redacted() -> None:
    delivery = render.delivery_for_status(503, "down\n\n  for s3cr3t " + "x" * 500, "2", ("s3cr3t",))
    assert delivery.retry_after_s == 2.0
    assert delivery.detail.startswith("HTTP 503 down for [REDACTED] x") and "\n" not in delivery.detail
    assert len(delivery.detail) < 240


def test_figures_in_words() -> None:
    fields = render.figure_fields(sample_notification(figures={"ratio": 0.125, "numerator": 5, "denominator": 40}))
    assert fields == [("Ratio", "12.5% (5/40)")]
    extra = render.figure_fields(sample_notification(figures={"window_s": 90, "threshold": 0.3, "min_volume": 20}))
    assert extra == [("Window", "90s"), ("Threshold", "30.0%"), ("min_volume", "20")]


@pytest.mark.parametrize(("seconds", "text"), [(60, "1m"), (300, "5m"), (90, "90s"), (3600, "1h"), (0.5, "0.5s")])
def test_duration(seconds: float, text: str) -> None:
    assert render.duration(seconds) == text


def test_naive_times_are_utc() -> None:
    assert render.utc_text(datetime(2025, 11, 27, 14, 5)) == "2025-11-27 14:05:00 UTC"


def test_failures_never_carry_secrets() -> None:
    error = OSError("cannot reach https://hooks.example/T/B/s3cr3t")
    assert render.transport_failure(error, ("https://hooks.example/T/B/s3cr3t",)) == Delivery(
        Result.RETRY, detail="transport error: OSError: cannot reach [REDACTED]"
    )
    assert "s3cr3t" not in render.render_failure(ValueError("s3cr3t"), ("s3cr3t",)).detail
