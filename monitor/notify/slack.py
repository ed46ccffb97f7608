"""Slack incoming webhooks: a Block Kit message with a plain-text fallback, ONE attempt per `send`.

Built on slack-sdk (`slack_sdk.webhook.WebhookClient` for the POST, `slack_sdk.models.blocks` for the message)
rather than hand-written HTTP: Slack's own client keeps up with the webhook protocol, and it talks to a local
URL as happily as to hooks.slack.com, so the tests run it for real against `monitor.testing.notify.FakeSlack`.

Two of its defaults are switched off on purpose:
- retry handlers: `slack_sdk.http_retry` handlers sleep inside the call (its default list retries connection
  errors), which would block the outbox worker and hide retries from `nbmon_notifications_total`. The outbox
  owns retries, so the client gets `retry_handlers=[]` and this module maps each answer to a `Delivery`.
- its logger: WebhookClient logs the full webhook URL at DEBUG and error text at ERROR through stdlib logging.
  The URL is a secret, so the client gets a private logger that emits nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from http.client import HTTPException
from typing import Any, Final, cast

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.webhook import WebhookClient

from monitor._safety import report_internal_error
from monitor.notify import render
from monitor.notify.base import Delivery, Event, Notification

# Block Kit limits (api.slack.com/reference/block-kit/blocks): header 150, section text 3000, field 2000.
_HEADER_CHARS: Final = 150
_SECTION_CHARS: Final = 3000
_FIELD_CHARS: Final = 2000
_MAX_FIELDS: Final = 10
_TEXT_CHARS: Final = 3000  # the fallback shows in push notifications: short is better than complete

_ICON: Final = {Event.FIRING: ":rotating_light:", Event.RESOLVED: ":white_check_mark:"}


def _quiet_logger() -> logging.Logger:
    """A logger outside the logging tree that drops everything (level above CRITICAL, disabled)."""
    logger = logging.Logger("nbmon.notify.slack_sdk", level=logging.CRITICAL + 1)
    logger.disabled = True
    return logger


def _escape(text: str) -> str:
    """Slack mrkdwn control characters (api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_date(moment: datetime) -> str:
    """Rendered in each reader's time zone by Slack; the fallback after `|` is UTC."""
    utc = render.as_utc(moment)
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{render.utc_text(utc)}>"


class SlackNotifier:
    """Posts to one Slack incoming webhook. The webhook URL is a secret: it is never in details, logs or repr."""

    def __init__(
        self,
        name: str,
        webhook_url: str,
        *,
        client: WebhookClient | None = None,
        timeout_s: float = 10.0,
        dashboard_url: str | None = None,
        runbook_url: str | None = None,
    ) -> None:
        # Errors say what is wrong, never the value: the value is the secret.
        if not webhook_url.startswith(("https://", "http://")):
            raise ValueError(f"Slack channel {name!r}: the webhook URL must be an http(s) URL")
        if timeout_s <= 0:
            raise ValueError(f"Slack channel {name!r}: timeout_s must be > 0")
        if client is None:
            # urllib takes float seconds; slack-sdk merely annotates `timeout` as int.
            client = WebhookClient(webhook_url, timeout=cast(int, timeout_s), retry_handlers=[])
        elif client.url != webhook_url:
            raise ValueError(f"Slack channel {name!r}: the client is bound to a different webhook URL")
        elif client.retry_handlers:
            raise ValueError(f"Slack channel {name!r}: the client must have no retry handlers (the outbox retries)")
        client.logger = _quiet_logger()  # also on a supplied client: its default logger would log the URL
        self.name = name
        self._client = client
        self._secrets = (webhook_url,)
        self._dashboard_url = dashboard_url
        self._runbook_url = runbook_url

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r}, webhook_url={render.REDACTED!r})"

    def close(self) -> None:
        """Nothing to release (urllib opens a connection per request); here for symmetry with the others."""

    # -- message -------------------------------------------------------------------------------------------------

    def render(self, notification: Notification) -> dict[str, Any]:
        """The JSON body: `text` (the fallback shown in notifications) and `blocks` (what the channel shows)."""
        n = notification
        links = render.links_for(n, self._dashboard_url, self._runbook_url)
        header = f"{_ICON[n.event]} {render.event_word(n).capitalize()}: {n.title}"
        fields = [("Rule", f"`{_escape(n.rule)}`")]
        fields += [(label, _escape(value)) for label, value in render.figure_fields(n)]
        if n.model:
            fields.append(("Model", f"`{_escape(n.model)}`"))
        if n.since is not None:
            fields.append(("Since", _slack_date(n.since)))
        fields.append(("Severity", _escape(f"{n.severity} · {n.environment}")))
        blocks: list[Block] = [
            HeaderBlock(text=PlainTextObject(text=render.truncate(header, _HEADER_CHARS), emoji=True)),
            SectionBlock(
                text=MarkdownTextObject(text=render.truncate(_escape(n.summary) or " ", _SECTION_CHARS)),
                fields=[
                    MarkdownTextObject(text=render.truncate(f"*{label}*\n{value}", _FIELD_CHARS))
                    for label, value in fields[:_MAX_FIELDS]
                ],
            ),
        ]
        if n.override_command:
            # A code block, so the command can be copied as is (no smart quotes, no mrkdwn).
            override = f"*Override the flag*\n```{_escape(n.override_command)}```"
            blocks.append(SectionBlock(text=MarkdownTextObject(text=render.truncate(override, _SECTION_CHARS))))
        if links:
            # Plain mrkdwn links rather than URL buttons: buttons need an interactivity endpoint to not warn.
            context = " · ".join(f"<{_escape(url)}|{_escape(text)}>" for text, url in links)
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=render.truncate(context, _SECTION_CHARS))]))
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"nbmon · {render.utc_text(n.at)}")]))
        text = render.truncate(render.plain_text(n, links), _TEXT_CHARS)
        # to_dict() validates against Block Kit's limits now, inside render, not later inside the HTTP call.
        return {"text": text, "blocks": [block.to_dict() for block in blocks]}

    # -- delivery ------------------------------------------------------------------------------------------------

    def send(self, notification: Notification) -> Delivery:
        """One POST. 200 sent; 429 (Retry-After) and 5xx and network errors retry; other 4xx are permanent."""
        try:
            body = self.render(notification)
        except Exception as error:  # noqa: BLE001 - never raise into the outbox worker
            report_internal_error("notify.slack.render", error, None)
            return render.render_failure(error, self._secrets)
        try:
            response = self._client.send_dict(body)
        except (OSError, HTTPException) as error:  # URLError, timeouts, resets, TLS: all OSError or HTTPException
            return render.transport_failure(error, self._secrets)
        except Exception as error:  # noqa: BLE001 - unexpected, so loud in tests; retrying is bounded by the outbox
            report_internal_error("notify.slack.send", error, None)
            return render.transport_failure(error, self._secrets)
        headers = {str(k): str(v) for k, v in response.headers.items()}
        return render.delivery_for_status(
            response.status_code, response.body or "", render.header(headers, "Retry-After"), self._secrets
        )
