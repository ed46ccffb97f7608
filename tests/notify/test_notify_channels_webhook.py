"""WebhookNotifier over real HTTP against FakeReceiver: the body, the headers, the mapping, secrets kept."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from monitor.notify.base import Delivery, Notification, Result
from monitor.notify.webhook import WebhookNotifier
from monitor.testing import InternalErrorCollector
from monitor.testing.notify import FakeReceiver, sample_notification

TOKEN = "Bearer relay-token-0123456789"


@pytest.fixture
def receiver() -> Iterator[FakeReceiver]:
    with FakeReceiver() as fake:
        yield fake


def test_body_is_the_notification_with_a_version_and_headers_are_sent(receiver: FakeReceiver) -> None:
    note = sample_notification()
    notifier = WebhookNotifier("relay", receiver.url, headers={"Authorization": TOKEN, "X-Team": "images"})

    assert notifier.send(note) == Delivery(Result.SENT, detail='HTTP 200 {"ok": true}')

    (request,) = receiver.requests
    assert request.body == {"nbmon_version": 1, **note.to_dict()}
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["authorization"] == TOKEN and headers["x-team"] == "images"
    assert headers["content-type"] == "application/json"
    # A receiver can rebuild the notification from what it got.
    rebuilt = {k: v for k, v in request.body.items() if k != "nbmon_version"}
    assert Notification.from_dict(rebuilt) == note


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_sent(receiver: FakeReceiver, status: int) -> None:
    receiver.reply_next(status, body="")
    assert WebhookNotifier("relay", receiver.url).send(sample_notification()).result is Result.SENT


def test_429_retries_after_what_was_asked(receiver: FakeReceiver) -> None:
    receiver.reply_next(429, retry_after=12)
    delivery = WebhookNotifier("relay", receiver.url).send(sample_notification())
    assert (delivery.result, delivery.retry_after_s) == (Result.RETRY, 12.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retries(receiver: FakeReceiver, status: int) -> None:
    receiver.reply_next(status)
    assert WebhookNotifier("relay", receiver.url).send(sample_notification()).result is Result.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_other_4xx_are_permanent(receiver: FakeReceiver, status: int) -> None:
    receiver.reply_next(status)
    assert WebhookNotifier("relay", receiver.url).send(sample_notification()).result is Result.PERMANENT


def test_redirects_are_not_followed(receiver: FakeReceiver) -> None:
    """Following one would carry the token elsewhere; a moved endpoint is a config error."""
    receiver.reply_next(307, Location=receiver.base_url + "/elsewhere")
    delivery = WebhookNotifier("relay", receiver.url, headers={"Authorization": TOKEN}).send(sample_notification())
    assert delivery.result is Result.PERMANENT and len(receiver.requests) == 1


def test_connection_refused_retries() -> None:
    with FakeReceiver() as gone:
        url = gone.url
    delivery = WebhookNotifier("relay", url).send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.detail.startswith("transport error: ConnectError")


def test_url_and_header_values_never_leak(receiver: FakeReceiver) -> None:
    url = receiver.url + "?token=url-secret-42"
    notifier = WebhookNotifier("relay", url, headers={"Authorization": TOKEN})
    receiver.reply_next(401, body=f"bad credentials {TOKEN} for {url}")  # a receiver that echoes them
    detail = notifier.send(sample_notification()).detail
    assert detail.startswith("HTTP 401 bad credentials [REDACTED] for [REDACTED]")
    for text in (detail, repr(notifier), str(notifier)):
        assert "url-secret-42" not in text and "relay-token" not in text
    assert "Authorization" in repr(notifier)  # header names are fine, values are not


def test_constructor_refuses_a_non_http_url_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="http\\(s\\)") as bad:
        WebhookNotifier("relay", "ftp://relay.example/secret-path")
    assert "secret-path" not in str(bad.value)


def test_constructor_refuses_a_timeout_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match=r"^webhook channel 'relay': timeout_s must be > 0$"):
        WebhookNotifier("relay", "https://relay.example/hook", timeout_s=0)


def test_close_leaves_a_client_it_was_given_open(receiver: FakeReceiver) -> None:
    with httpx.Client() as shared:
        WebhookNotifier("relay", receiver.url, client=shared).close()
        assert not shared.is_closed
        assert WebhookNotifier("relay", receiver.url, client=shared).send(sample_notification()).result is Result.SENT


@pytest.mark.telemetry_faults
def test_a_send_after_close_is_an_internal_error_and_a_retry(
    receiver: FakeReceiver, fail_on_swallowed_telemetry_errors: InternalErrorCollector
) -> None:
    """Not a transport error: the outbox retries (bounded), and the guard counts it, loud in tests."""
    notifier = WebhookNotifier("relay", receiver.url + "?token=url-secret-42")
    notifier.close()
    delivery = notifier.send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.detail.startswith("transport error: RuntimeError: ")
    assert "url-secret-42" not in delivery.detail
    assert [component for component, _ in fail_on_swallowed_telemetry_errors.errors] == ["notify.webhook.send"]
    assert receiver.requests == []
