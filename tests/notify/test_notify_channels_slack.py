"""SlackNotifier over real HTTP against FakeSlack: the message, the status mapping, one attempt, no secret leaks."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.webhook import WebhookClient
from structlog.testing import capture_logs

from monitor.notify.base import Delivery, Event, Result
from monitor.notify.slack import SlackNotifier
from monitor.testing.notify import FakeSlack, sample_notification


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def _texts(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, joined: what a reader of the channel sees."""
    out: list[str] = []
    for block in blocks:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(item["text"] for item in block.get("fields", []) + block.get("elements", []))
    return "\n".join(out)


def test_message_has_what_happened_figures_model_since_override_links_and_fallback(slack: FakeSlack) -> None:
    delivery = SlackNotifier("oncall", slack.url).send(sample_notification())

    assert delivery == Delivery(Result.SENT, detail="HTTP 200 ok")
    (body,) = slack.accepted
    header = body["blocks"][0]
    assert header["type"] == "header"
    assert "entered degraded mode" in header["text"]["text"] and "Firing" in header["text"]["text"]
    shown = _texts(body["blocks"])
    for expected in (
        "`degraded-mode`",  # rule
        "42.0% (126/300)",  # ratio and counts
        "*Window*\n1m",
        "*Threshold*\n30.0%",
        "`gemini-3-pro-image`",  # model
        "<!date^1764252300^",  # since 14:05 UTC, in each reader's time zone ...
        "|2025-11-27 14:05:00 UTC>",  # ... with a UTC fallback
        '```nbmon flag set off --reason "..." --for 30m```',  # override command, copyable
        "<https://grafana.example.com/d/nbmon|Dashboard>",
        "<https://wiki.example.com/nbmon|Runbook>",
    ):
        assert expected in shown, expected
    text = body["text"]  # the fallback for notifications and old clients
    for expected in (
        "[FIRING]",
        "entered degraded mode",
        "rule degraded-mode",
        "Ratio 42.0% (126/300)",
        "Model: gemini-3-pro-image",
        "Since: 2025-11-27 14:05:00 UTC",
        'Override: nbmon flag set off --reason "..." --for 30m',
        "Dashboard: https://grafana.example.com/d/nbmon",
        "Runbook: https://wiki.example.com/nbmon",
    ):
        assert expected in text, expected


def test_resolved_message_says_so(slack: FakeSlack) -> None:
    SlackNotifier("oncall", slack.url).send(sample_notification(Event.RESOLVED))
    (body,) = slack.accepted
    assert "Resolved" in body["blocks"][0]["text"]["text"] and "left degraded mode" in body["text"]
    assert body["text"].startswith("[RESOLVED]")


def test_links_come_from_the_constructor_unless_the_notification_has_its_own(slack: FakeSlack) -> None:
    notifier = SlackNotifier(
        "oncall", slack.url, dashboard_url="https://dash.example/default", runbook_url="https://runbook.example/rb"
    )
    notifier.send(sample_notification(links={}))
    notifier.send(sample_notification(links={"dashboard": "https://dash.example/specific", "x": "javascript:alert(1)"}))
    first, second = (body["text"] for body in slack.accepted)
    assert "Dashboard: https://dash.example/default" in first and "Runbook: https://runbook.example/rb" in first
    assert "Dashboard: https://dash.example/specific" in second and "dash.example/default" not in second
    assert "Runbook: https://runbook.example/rb" in second  # the default fills what the notification lacks
    assert "javascript:" not in second  # only http(s) links are rendered


def test_mrkdwn_is_escaped_and_block_kit_limits_are_kept(slack: FakeSlack) -> None:
    long = sample_notification(title="T" * 400, summary="ratio <b> & more " + "x" * 5000)
    assert SlackNotifier("oncall", slack.url).send(long).result is Result.SENT
    (body,) = slack.accepted
    assert len(body["blocks"][0]["text"]["text"]) <= 150
    section = body["blocks"][1]["text"]["text"]
    assert section.startswith("ratio &lt;b&gt; &amp; more") and len(section) <= 3000
    assert len(body["text"]) <= 3000


def test_429_retries_after_what_slack_asked_with_one_attempt_and_no_sleep(slack: FakeSlack) -> None:
    slack.reply_next(429, retry_after=7)
    started = time.monotonic()
    delivery = SlackNotifier("oncall", slack.url).send(sample_notification())
    assert time.monotonic() - started < 2  # slack-sdk's rate-limit handler would have slept 7 s here
    assert delivery == Delivery(Result.RETRY, retry_after_s=7.0, detail="HTTP 429 rate_limited")
    assert len(slack.received) == 1 and slack.accepted == []


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_retries(slack: FakeSlack, status: int) -> None:
    slack.reply_next(status)
    delivery = SlackNotifier("oncall", slack.url).send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.retry_after_s is None
    assert delivery.detail.startswith(f"HTTP {status}")
    assert len(slack.received) == 1


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, "invalid_payload"), (403, "action_prohibited"), (404, "channel_not_found"), (410, "channel_is_archived")],
)
def test_slack_refusals_are_permanent_and_say_why(slack: FakeSlack, status: int, body: str) -> None:
    slack.reply_next(status)
    assert SlackNotifier("oncall", slack.url).send(sample_notification()) == Delivery(
        Result.PERMANENT, detail=f"HTTP {status} {body}"
    )


def test_other_4xx_is_permanent(slack: FakeSlack) -> None:
    slack.reply_next(422, body="no_text")
    assert SlackNotifier("oncall", slack.url).send(sample_notification()).result is Result.PERMANENT


def test_a_revoked_hook_is_permanent(slack: FakeSlack) -> None:
    """Unscripted: the fake answers a path that is not its hook like Slack does, 404 no_service."""
    delivery = SlackNotifier("oncall", slack.base_url + "/services/T0/B0/revoked").send(sample_notification())
    assert delivery == Delivery(Result.PERMANENT, detail="HTTP 404 no_service")


def test_connection_refused_retries() -> None:
    with FakeSlack() as fake:
        url = fake.url
    delivery = SlackNotifier("oncall", url).send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.detail.startswith("transport error: URLError")
    assert url not in delivery.detail


def test_a_silent_receiver_times_out_and_retries() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/services/T/B/secret-token"
        started = time.monotonic()
        delivery = SlackNotifier("oncall", url, timeout_s=0.3).send(sample_notification())
    assert time.monotonic() - started < 3
    assert delivery.result is Result.RETRY and delivery.detail.startswith("transport error")
    assert "secret-token" not in delivery.detail


def test_the_webhook_url_never_leaks(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # slack-sdk's own logger would print the URL at DEBUG
    token = slack.url.rsplit("/", 1)[1]
    notifier = SlackNotifier("oncall", slack.url)
    slack.reply_next(429, retry_after=1)
    slack.reply_next(500)
    slack.reply_next(404, body=f"no hook at {slack.url}")  # even when the receiver echoes it
    with capture_logs() as structured:
        details = [notifier.send(sample_notification()).detail for _ in range(4)]
    with FakeSlack() as gone:
        dead = SlackNotifier("dead", gone.url)
    details.append(dead.send(sample_notification()).detail)
    assert [d.split(" ", 2)[:2] for d in details[:4]] == [
        ["HTTP", "429"],
        ["HTTP", "500"],
        ["HTTP", "404"],
        ["HTTP", "200"],
    ]
    assert "[REDACTED]" in details[2]
    for text in [*details, repr(notifier), repr(dead), str(notifier), caplog.text, repr(structured)]:
        assert token not in text and gone.url.rsplit("/", 1)[1] not in text


def test_constructor_checks_do_not_echo_the_url() -> None:
    with pytest.raises(ValueError, match="http\\(s\\) URL") as bad:
        SlackNotifier("oncall", "hooks.slack.com/services/T/B/secret-token")
    assert "secret-token" not in str(bad.value)


def test_a_supplied_client_must_not_retry_and_must_match_the_url(slack: FakeSlack) -> None:
    with pytest.raises(ValueError, match="retry handlers"):
        SlackNotifier("oncall", slack.url, client=WebhookClient(slack.url))  # its defaults retry connection errors
    with pytest.raises(ValueError, match="different webhook URL") as other:
        SlackNotifier("oncall", slack.url, client=WebhookClient(slack.url + "x", retry_handlers=[]))
    assert slack.url not in str(other.value)
    notifier = SlackNotifier("oncall", slack.url, client=WebhookClient(slack.url, retry_handlers=[]))
    assert notifier.send(sample_notification()).result is Result.SENT


def test_a_notification_that_cannot_be_rendered_is_permanent_and_reported(
    slack: FakeSlack, fail_on_swallowed_telemetry_errors: Any
) -> None:
    broken = replace(sample_notification(), figures={"ratio": "high"})  # type: ignore[dict-item]
    delivery = SlackNotifier("oncall", slack.url).send(broken)
    assert delivery.result is Result.PERMANENT and delivery.detail.startswith("could not build the request")
    assert slack.received == []
    assert [component for component, _ in fail_on_swallowed_telemetry_errors.errors] == ["notify.slack.render"]
    fail_on_swallowed_telemetry_errors.errors.clear()  # expected here; the suite fails on any other


def test_an_episode_through_429_and_500_posts_one_entered_and_one_recovered_message(slack: FakeSlack) -> None:
    """What the outbox does with RETRY, done by hand: failed attempts leave nothing in the channel."""
    notifier = SlackNotifier("oncall", slack.url)
    slack.reply_next(429, retry_after=1)
    slack.reply_next(500)
    for event in (Event.FIRING, Event.RESOLVED):
        note = sample_notification(event)
        while (delivery := notifier.send(note)).result is Result.RETRY:
            pass
        assert delivery.result is Result.SENT
    assert len(slack.received) == 4
    assert [body["text"].split(" ", 1)[0] for body in slack.accepted] == ["[FIRING]", "[RESOLVED]"]
