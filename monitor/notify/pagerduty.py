"""PagerDuty Events API v2: trigger on FIRING, resolve on RESOLVED, one stable dedup_key; ONE attempt per `send`.

Plain httpx, not a PagerDuty client library. PagerDuty's own `pagerduty` package (the successor of pdpyras,
`EventsApiV2Client`) is maintained, but its `ApiClient.request` retries inside the call with `time.sleep`
(429 without limit, network errors three times, 5xx per its `retry` table), raises on most failures and
returns only the dedup_key, so the status and Retry-After our outbox needs are gone. It is also an
`httpx.Client` subclass, so it cannot share an injected client. The protocol is one JSON POST with three
answers to tell apart, which is less code than working around those choices.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import httpx

from monitor._safety import report_internal_error
from monitor.notify import render
from monitor.notify.base import Delivery, Event, Notification

EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"
_SUMMARY_CHARS: Final = 1024  # payload.summary limit
_DEDUP_KEY_CHARS: Final = 255  # dedup_key limit
# Our rule severities are critical | warning | info; PagerDuty also has error. Anything unknown pages as
# critical: a typo in a config must not quietly downgrade a page.
_SEVERITY: Final = {"critical": "critical", "error": "error", "warning": "warning", "info": "info"}


def dedup_key_for(key: str) -> str:
    """The notification's key, made to fit 255 chars deterministically so trigger and resolve still match."""
    if len(key) <= _DEDUP_KEY_CHARS:
        return key
    return f"{key[:190]}~{hashlib.sha256(key.encode()).hexdigest()}"


class PagerDutyNotifier:
    """Sends Events API v2 events with one routing key. The key is a secret: never in details, logs or repr."""

    def __init__(
        self,
        name: str,
        routing_key: str,
        *,
        events_url: str = EVENTS_URL,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        source: str = "nbmon",
        dashboard_url: str | None = None,
        runbook_url: str | None = None,
        severity: str | None = None,
    ) -> None:
        if not routing_key.strip():
            raise ValueError(f"PagerDuty channel {name!r}: the routing key is empty")
        if not events_url.startswith(("https://", "http://")):
            raise ValueError(f"PagerDuty channel {name!r}: events_url must be an http(s) URL")
        if timeout_s <= 0:
            raise ValueError(f"PagerDuty channel {name!r}: timeout_s must be > 0")
        if severity is not None and severity not in _SEVERITY:
            raise ValueError(f"PagerDuty channel {name!r}: severity must be one of {', '.join(_SEVERITY)}")
        self.name = name
        self._routing_key = routing_key
        self._events_url = events_url
        self._owns_client = client is None
        # No redirects: a 3xx from the Events API is a misconfiguration, and following it would resend the key.
        self._client = client if client is not None else httpx.Client(follow_redirects=False)
        self._timeout = timeout_s
        self._source = source
        self._severity = severity  # None: the notification's own severity, mapped
        self._dashboard_url = dashboard_url
        self._runbook_url = runbook_url
        self._secrets = (routing_key,)

    def __repr__(self) -> str:
        return f"PagerDutyNotifier(name={self.name!r}, routing_key={render.REDACTED!r}, url={self._events_url!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    # -- event ---------------------------------------------------------------------------------------------------

    def render(self, notification: Notification) -> dict[str, Any]:
        """The Events API v2 body, routing key included (so never log it)."""
        n = notification
        event: dict[str, Any] = {"routing_key": self._routing_key, "dedup_key": dedup_key_for(n.dedup_key)}
        if n.event is Event.RESOLVED:
            event["event_action"] = "resolve"  # acts on the open alert with this dedup_key; payload is ignored
            return event
        links = render.links_for(n, self._dashboard_url, self._runbook_url)
        details: dict[str, Any] = {
            "rule": n.rule,
            "summary": n.summary,
            "model": n.model,
            "environment": n.environment,
            "since": render.as_utc(n.since).isoformat() if n.since is not None else None,
            "figures": dict(n.figures),
            **{label.lower(): value for label, value in render.figure_fields(n)},  # the same, in words
            "override_command": n.override_command,
            "notification_id": n.id,
        }
        event["event_action"] = "trigger"
        event["payload"] = {
            "summary": render.truncate(f"{n.title}: {n.summary}", _SUMMARY_CHARS),
            "source": self._source,
            "severity": self._severity or _SEVERITY.get(n.severity.lower(), "critical"),
            "timestamp": render.as_utc(n.at).isoformat(),
            "component": n.model or "gemini-image",
            "group": n.environment,
            "class": n.rule,
            "custom_details": {k: v for k, v in details.items() if v is not None},
        }
        event["client"] = "nbmon"
        if links:
            event["links"] = [{"href": url, "text": text} for text, url in links]
            event["client_url"] = links[0][1]
        return event

    # -- delivery ------------------------------------------------------------------------------------------------

    def send(self, notification: Notification) -> Delivery:
        """One POST. 202 sent; 400 permanent; 429, 5xx and network errors retry (with Retry-After when given)."""
        try:
            body = self.render(notification)
        except Exception as error:  # noqa: BLE001 - never raise into the outbox worker
            report_internal_error("notify.pagerduty.render", error, None)
            return render.render_failure(error, self._secrets)
        try:
            response = self._client.post(self._events_url, json=body, timeout=self._timeout)
        except httpx.TransportError as error:  # connect, timeout, read, protocol errors
            return render.transport_failure(error, self._secrets)
        except Exception as error:  # noqa: BLE001 - unexpected, so loud in tests; retrying is bounded by the outbox
            report_internal_error("notify.pagerduty.send", error, None)
            return render.transport_failure(error, self._secrets)
        return render.delivery_for_status(
            response.status_code, response.text, response.headers.get("Retry-After"), self._secrets
        )
