"""A generic JSON webhook: Teams or Discord relays, a feature-flag service's API. ONE attempt per `send`.

The body is `notification.to_dict()` with `"nbmon_version": 1` added at the top level (flat rather than
nested, so relay templates address `title`, `summary`, `figures.ratio` directly; the version number tells a
receiver which shape it has). The URL and the headers (tokens, often) are secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import httpx

from monitor._safety import report_internal_error
from monitor.notify import render
from monitor.notify.base import Delivery, Notification

BODY_VERSION: Final = 1


class WebhookNotifier:
    """POSTs the notification as JSON. 2xx sent; 429, 5xx and network errors retry; any other answer is permanent."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"webhook channel {name!r}: the URL must be an http(s) URL")
        if timeout_s <= 0:
            raise ValueError(f"webhook channel {name!r}: timeout_s must be > 0")
        self.name = name
        self._url = url
        self._headers = dict(headers or {})
        self._owns_client = client is None
        # No redirects: following one would carry the headers (tokens) to wherever the receiver points.
        self._client = client if client is not None else httpx.Client(follow_redirects=False)
        self._timeout = timeout_s
        self._secrets = (url, *(value for value in self._headers.values() if value))

    def __repr__(self) -> str:
        return f"WebhookNotifier(name={self.name!r}, url={render.REDACTED!r}, headers={sorted(self._headers)!r})"

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def render(self, notification: Notification) -> dict[str, Any]:
        return {"nbmon_version": BODY_VERSION, **notification.to_dict()}

    def send(self, notification: Notification) -> Delivery:
        try:
            body = self.render(notification)
        except Exception as error:  # noqa: BLE001 - never raise into the outbox worker
            report_internal_error("notify.webhook.render", error, None)
            return render.render_failure(error, self._secrets)
        try:
            response = self._client.post(self._url, json=body, headers=self._headers, timeout=self._timeout)
        except httpx.TransportError as error:  # connect, timeout, read, protocol errors
            return render.transport_failure(error, self._secrets)
        except Exception as error:  # noqa: BLE001 - unexpected, so loud in tests; retrying is bounded by the outbox
            report_internal_error("notify.webhook.send", error, None)
            return render.transport_failure(error, self._secrets)
        return render.delivery_for_status(
            response.status_code, response.text, response.headers.get("Retry-After"), self._secrets
        )
