"""Shared by the channels: the words of a notification, and what an HTTP answer means for delivery.

Kept free of I/O so each channel's `send` stays a thin "render, POST once, classify" function.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from monitor.notify.base import Delivery, Event, Notification, Result
from monitor.taxonomy.rpc_details import retry_after_header

REDACTED: Final = "[REDACTED]"
_DETAIL_BODY_CHARS: Final = 200  # enough for Slack's / PagerDuty's error bodies, bounded for logs
_LINK_ORDER: Final = ("dashboard", "runbook")
_FIGURE_KEYS: Final = frozenset({"ratio", "numerator", "denominator", "window_s", "threshold"})


# --- text -------------------------------------------------------------------------------------------------------


def event_word(notification: Notification) -> str:
    return "FIRING" if notification.event is Event.FIRING else "RESOLVED"


def as_utc(moment: datetime) -> datetime:
    """Notifications carry UTC; a naive datetime is taken as UTC rather than as local time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_text(moment: datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def duration(seconds: float) -> str:
    """60 -> "1m", 90 -> "90s", 3600 -> "1h": how the rules' windows are written in the config."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def figure_fields(notification: Notification) -> list[tuple[str, str]]:
    """(label, value) pairs for the figures: ratio with its counts, window, threshold, then any extra figure."""
    figures = notification.figures
    fields: list[tuple[str, str]] = []
    if "ratio" in figures:
        counts = ""
        if "numerator" in figures and "denominator" in figures:
            counts = f" ({figures['numerator']:g}/{figures['denominator']:g})"
        fields.append(("Ratio", percent(figures["ratio"]) + counts))
    if "window_s" in figures:
        fields.append(("Window", duration(figures["window_s"])))
    if "threshold" in figures:
        fields.append(("Threshold", percent(figures["threshold"])))
    fields.extend((key, f"{value:g}") for key, value in sorted(figures.items()) if key not in _FIGURE_KEYS)
    return fields


def links_for(
    notification: Notification, dashboard_url: str | None = None, runbook_url: str | None = None
) -> list[tuple[str, str]]:
    """(text, url) pairs: the notification's own links win over the channel's configured defaults.

    Only http(s) URLs survive, so a bad config value never becomes a `javascript:` link or a broken payload.
    """
    merged: dict[str, str] = {}
    if dashboard_url:
        merged["dashboard"] = dashboard_url
    if runbook_url:
        merged["runbook"] = runbook_url
    merged.update(notification.links)
    ordered = [k for k in _LINK_ORDER if k in merged] + sorted(k for k in merged if k not in _LINK_ORDER)
    return [(key.capitalize(), merged[key]) for key in ordered if merged[key].startswith(("https://", "http://"))]


def plain_text(notification: Notification, links: list[tuple[str, str]]) -> str:
    """The one-paragraph version: Slack's notification fallback, and readable anywhere."""
    n = notification
    parts = [f"[{event_word(n)}] {n.title} (rule {n.rule}, {n.severity}, {n.environment})", n.summary]
    figures = ", ".join(f"{label} {value}" for label, value in figure_fields(n))
    if figures:
        parts.append(figures)
    if n.model:
        parts.append(f"Model: {n.model}")
    if n.since is not None:
        parts.append(f"Since: {utc_text(n.since)}")
    if n.override_command:
        parts.append(f"Override: {n.override_command}")
    parts.extend(f"{text}: {url}" for text, url in links)
    return "\n".join(parts)


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- delivery results ---------------------------------------------------------------------------------------------


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Remove every secret (URL, key, header value) from text that will reach a log line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def retry_after_s(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds (delay-seconds or an HTTP-date); the taxonomy's reader, one implementation."""
    return retry_after_header(value, now)


def delivery_for_status(status: int, body: str, retry_after: str | None, secrets: tuple[str, ...]) -> Delivery:
    """429 and 5xx may pass; any other non-success (4xx, and 3xx: we never follow redirects) cannot."""
    detail = f"HTTP {status}"
    snippet = " ".join(body.split())[:_DETAIL_BODY_CHARS]
    if snippet:
        detail = f"{detail} {redact(snippet, secrets)}"
    if 200 <= status < 300:
        return Delivery(Result.SENT, detail=detail)
    if status == 429 or status >= 500:
        return Delivery(Result.RETRY, retry_after_s=retry_after_s(retry_after), detail=detail)
    return Delivery(Result.PERMANENT, detail=detail)


def transport_failure(error: BaseException, secrets: tuple[str, ...]) -> Delivery:
    """Connection refused, DNS, TLS, timeouts: the receiver may be back soon."""
    return Delivery(Result.RETRY, detail=redact(f"transport error: {type(error).__name__}: {error}", secrets))


def render_failure(error: BaseException, secrets: tuple[str, ...]) -> Delivery:
    """A notification we cannot turn into a request will not get better by retrying."""
    return Delivery(Result.PERMANENT, detail=redact(f"could not build the request: {type(error).__name__}", secrets))


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup for plain dicts (urllib's error headers arrive as one)."""
    lowered = name.lower()
    return next((v for k, v in headers.items() if k.lower() == lowered), None)
