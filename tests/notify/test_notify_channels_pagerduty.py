"""PagerDutyNotifier over real HTTP against FakePagerDuty: events, dedup, status mapping, the key kept secret."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from structlog.testing import capture_logs

from monitor.notify.base import Delivery, Event, Result
from monitor.notify.pagerduty import PagerDutyNotifier
from monitor.testing.notify import FakePagerDuty, sample_notification

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"  # 32 characters, as PagerDuty's integration keys
DEDUP = "nbmon/production/degraded-mode"


@pytest.fixture
def pd() -> Iterator[FakePagerDuty]:
    with FakePagerDuty() as fake:
        yield fake


def notifier(pd: FakePagerDuty, **kwargs: object) -> PagerDutyNotifier:
    return PagerDutyNotifier("pager", KEY, events_url=pd.url, **kwargs)  # type: ignore[arg-type]


def test_trigger_event_is_valid_and_carries_the_figures(pd: FakePagerDuty) -> None:
    delivery = notifier(pd).send(sample_notification())

    assert delivery.result is Result.SENT and delivery.detail.startswith("HTTP 202")
    assert f'"dedup_key": "{DEDUP}"' in delivery.detail  # PagerDuty's answer, for the log line
    (event,) = pd.accepted
    assert event["routing_key"] == KEY and event["event_action"] == "trigger" and event["dedup_key"] == DEDUP
    payload = event["payload"]
    assert payload["summary"].startswith("gemini-3-pro-image entered degraded mode (degraded-mode): ")
    assert "42.0%" in payload["summary"]
    assert payload["source"] == "nbmon" and payload["severity"] == "critical"
    assert payload["timestamp"] == "2025-11-27T14:10:00+00:00"
    assert (payload["component"], payload["group"], payload["class"]) == (
        "gemini-3-pro-image",
        "production",
        "degraded-mode",
    )
    details = payload["custom_details"]
    assert details["figures"] == {"ratio": 0.42, "numerator": 126, "denominator": 300, "window_s": 60, "threshold": 0.3}
    assert details["ratio"] == "42.0% (126/300)" and details["window"] == "1m" and details["threshold"] == "30.0%"
    assert details["since"] == "2025-11-27T14:05:00+00:00"
    assert details["override_command"] == 'nbmon flag set off --reason "..." --for 30m'
    assert event["links"] == [
        {"href": "https://grafana.example.com/d/nbmon", "text": "Dashboard"},
        {"href": "https://wiki.example.com/nbmon", "text": "Runbook"},
    ]
    assert event["client"] == "nbmon" and event["client_url"] == "https://grafana.example.com/d/nbmon"


def test_resolve_uses_the_same_dedup_key(pd: FakePagerDuty) -> None:
    n = notifier(pd)
    n.send(sample_notification())
    assert n.send(sample_notification(Event.RESOLVED)).result is Result.SENT
    trigger, resolve = pd.accepted
    assert resolve == {"routing_key": KEY, "event_action": "resolve", "dedup_key": DEDUP}
    assert trigger["dedup_key"] == resolve["dedup_key"]


def test_repeated_triggers_open_one_incident_which_the_resolve_closes(pd: FakePagerDuty) -> None:
    n = notifier(pd)
    n.send(sample_notification())
    n.send(sample_notification())  # e.g. re-sent after a restart: a new id, the same dedup_key
    assert [(i.status, i.triggers) for i in pd.open_incidents()] == [("triggered", 2)]
    n.send(sample_notification(Event.RESOLVED))
    assert list(pd.incidents) == [DEDUP]
    assert [(i.status, i.triggers) for i in pd.incidents[DEDUP]] == [("resolved", 2)]
    assert pd.open_incidents() == []
    n.send(sample_notification())  # a new episode after the resolve is a new incident, as in PagerDuty
    assert [i.status for i in pd.incidents[DEDUP]] == ["resolved", "triggered"]


def test_an_episode_through_429_and_500_still_makes_one_incident_opened_and_resolved(pd: FakePagerDuty) -> None:
    """What the outbox does with RETRY, done by hand: four requests, one incident."""
    n = notifier(pd)
    pd.reply_next(429, retry_after=1)
    pd.reply_next(500)
    for event in (Event.FIRING, Event.RESOLVED):
        note = sample_notification(event)
        results = [n.send(note).result]
        while results[-1] is Result.RETRY:
            results.append(n.send(note).result)
        assert results[-1] is Result.SENT
    assert len(pd.received) == 4
    assert [(i.status, i.triggers) for i in pd.incidents[DEDUP]] == [("resolved", 1)]


@pytest.mark.parametrize(("ours", "theirs"), [("critical", "critical"), ("warning", "warning"), ("info", "info")])
def test_severity_mapping(pd: FakePagerDuty, ours: str, theirs: str) -> None:
    notifier(pd).send(sample_notification(severity=ours))
    assert pd.accepted[0]["payload"]["severity"] == theirs


def test_unknown_severity_pages_as_critical_and_the_channel_can_override(pd: FakePagerDuty) -> None:
    notifier(pd).send(sample_notification(severity="sev1"))
    notifier(pd, severity="warning").send(sample_notification(severity="critical"))
    assert [e["payload"]["severity"] for e in pd.accepted] == ["critical", "warning"]
    with pytest.raises(ValueError, match="severity"):
        notifier(pd, severity="page")


def test_long_summaries_and_keys_still_make_valid_events(pd: FakePagerDuty) -> None:
    long_key = "nbmon/production/" + "k" * 300
    n = notifier(pd)
    assert n.send(sample_notification(summary="s" * 3000, dedup_key=long_key)).result is Result.SENT
    assert n.send(sample_notification(Event.RESOLVED, dedup_key=long_key)).result is Result.SENT
    trigger, resolve = pd.accepted
    assert len(trigger["payload"]["summary"]) == 1024
    assert trigger["dedup_key"] == resolve["dedup_key"] and len(trigger["dedup_key"]) <= 255
    assert [i.status for i in pd.incidents[trigger["dedup_key"]]] == ["resolved"]


def test_an_invalid_event_is_permanent_and_the_key_stays_out_of_the_detail(pd: FakePagerDuty) -> None:
    """Unscripted: the fake refuses a routing key of the wrong length with PagerDuty's 400 body."""
    short = "shortkey-0123"
    delivery = PagerDutyNotifier("pager", short, events_url=pd.url).send(sample_notification())
    assert delivery.result is Result.PERMANENT
    assert delivery.detail.startswith('HTTP 400 {"status": "invalid event", "message": "Event object is invalid"')
    assert short not in delivery.detail and pd.incidents == {}


def test_429_retries_with_retry_after_when_given_and_never_sleeps(pd: FakePagerDuty) -> None:
    pd.reply_next(429, retry_after=30)
    pd.reply_next(429)
    started = time.monotonic()
    first, second = (notifier(pd).send(sample_notification()) for _ in range(2))
    assert time.monotonic() - started < 2
    assert (first.result, first.retry_after_s) == (Result.RETRY, 30.0)
    assert (second.result, second.retry_after_s) == (Result.RETRY, None)
    assert "throttle event" in first.detail
    assert len(pd.received) == 2 and pd.incidents == {}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_retries(pd: FakePagerDuty, status: int) -> None:
    pd.reply_next(status)
    delivery = notifier(pd).send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.detail.startswith(f"HTTP {status}")


@pytest.mark.parametrize("status", [401, 403, 404, 413])
def test_other_4xx_are_permanent(pd: FakePagerDuty, status: int) -> None:
    pd.reply_next(status, body="{}")
    assert notifier(pd).send(sample_notification()) == Delivery(Result.PERMANENT, detail=f"HTTP {status} {{}}")


def test_connection_refused_retries() -> None:
    with FakePagerDuty() as gone:
        url = gone.url
    delivery = PagerDutyNotifier("pager", KEY, events_url=url).send(sample_notification())
    assert delivery.result is Result.RETRY and delivery.detail.startswith("transport error: ConnectError")


def test_the_routing_key_never_leaks(pd: FakePagerDuty, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    n = notifier(pd)
    pd.reply_next(400, body=f'{{"status": "invalid event", "message": "unknown routing_key {KEY}"}}')
    pd.reply_next(429)
    with capture_logs() as structured:
        details = [n.send(sample_notification()).detail for _ in range(3)]
    assert [d.split(" ", 2)[1] for d in details] == ["400", "429", "202"]
    assert "[REDACTED]" in details[0]
    for text in [*details, repr(n), str(n), caplog.text, repr(structured)]:
        assert KEY not in text


def test_an_injected_client_is_used_and_left_open(pd: FakePagerDuty) -> None:
    seen: list[str] = []
    with httpx.Client(event_hooks={"request": [lambda request: seen.append(request.method)]}) as client:
        n = PagerDutyNotifier("pager", KEY, events_url=pd.url, client=client)
        assert n.send(sample_notification()).result is Result.SENT
        n.close()
        assert seen == ["POST"] and not client.is_closed


def test_constructor_refuses_bad_settings_without_echoing_the_key() -> None:
    with pytest.raises(ValueError, match="empty"):
        PagerDutyNotifier("pager", "  ")
    with pytest.raises(ValueError, match="http\\(s\\)") as bad:
        PagerDutyNotifier("pager", KEY, events_url="events.pagerduty.com")
    assert KEY not in str(bad.value)
