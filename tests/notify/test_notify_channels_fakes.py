"""The fakes themselves speak the real protocols: what they accept, refuse, script and remember."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from monitor.testing.notify import FakePagerDuty, FakeReceiver, FakeSlack, Reply, pagerduty_errors

KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
TRIGGER: dict[str, Any] = {
    "routing_key": KEY,
    "event_action": "trigger",
    "dedup_key": "k",
    "payload": {"summary": "s", "source": "nbmon", "severity": "critical"},
}


def test_fake_slack_accepts_text_or_blocks_and_refuses_the_rest() -> None:
    with FakeSlack() as slack:
        ok_text = httpx.post(slack.url, json={"text": "hi"})
        ok_blocks = httpx.post(slack.url, json={"blocks": [{"type": "divider"}]})
        empty = httpx.post(slack.url, json={"username": "x"})
        garbage = httpx.post(slack.url, content=b"not json")
        elsewhere = httpx.post(slack.base_url + "/services/T/B/other", json={"text": "hi"})
    assert (ok_text.status_code, ok_text.text, ok_blocks.status_code) == (200, "ok", 200)
    assert (empty.status_code, empty.text) == (400, "invalid_payload")
    assert (garbage.status_code, garbage.text) == (400, "invalid_payload")
    assert (elsewhere.status_code, elsewhere.text) == (404, "no_service")
    assert slack.received == [
        {"text": "hi"},
        {"blocks": [{"type": "divider"}]},
        {"username": "x"},
        None,
        {"text": "hi"},
    ]
    assert slack.accepted == [{"text": "hi"}, {"blocks": [{"type": "divider"}]}]


def test_scripted_replies_come_first_in_order_then_the_real_answers() -> None:
    with FakeSlack(script=[Reply(429, "rate_limited", {"Retry-After": "1"})]) as slack:
        slack.reply_next(500)
        answers = [httpx.post(slack.url, json={"text": str(i)}) for i in range(3)]
    assert [(r.status_code, r.text) for r in answers] == [(429, "rate_limited"), (500, "rollup_error"), (200, "ok")]
    assert answers[0].headers["Retry-After"] == "1"
    assert slack.accepted == [{"text": "2"}]


def test_fake_pagerduty_answers_like_events_v2_and_models_dedup() -> None:
    with FakePagerDuty() as pd:
        first = httpx.post(pd.url, json=TRIGGER)
        again = httpx.post(pd.url, json=TRIGGER)
        ack = httpx.post(pd.url, json={**TRIGGER, "event_action": "acknowledge", "payload": None})
        resolve = httpx.post(pd.url, json={"routing_key": KEY, "event_action": "resolve", "dedup_key": "k"})
        late = httpx.post(pd.url, json={"routing_key": KEY, "event_action": "resolve", "dedup_key": "unknown"})
        keyless = httpx.post(pd.url, json={k: v for k, v in TRIGGER.items() if k != "dedup_key"})
    assert [r.status_code for r in (first, again, ack, resolve, late, keyless)] == [202] * 6
    assert first.json() == {"status": "success", "message": "Event processed", "dedup_key": "k"}
    (incident,) = pd.incidents["k"]
    assert (incident.status, incident.triggers, len(incident.events)) == ("resolved", 2, 4)
    assert "unknown" not in pd.incidents  # a resolve for nothing open is dropped
    generated = keyless.json()["dedup_key"]  # PagerDuty makes one up when none is given
    assert len(generated) == 32 and [i.dedup_key for i in pd.open_incidents()] == [generated]


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({**TRIGGER, "routing_key": None}, "'routing_key' is missing or blank"),
        ({**TRIGGER, "routing_key": "short"}, "Length of 'routing_key' is incorrect"),
        ({**TRIGGER, "event_action": "open"}, "'event_action' is missing or invalid"),
        ({**TRIGGER, "payload": {"source": "nbmon", "severity": "critical"}}, "'payload.summary' is missing"),
        ({**TRIGGER, "payload": {"summary": "x" * 1025, "source": "n", "severity": "info"}}, "longer than 1024"),
        ({**TRIGGER, "payload": {"summary": "s", "severity": "critical"}}, "'payload.source' is missing"),
        ({**TRIGGER, "payload": {"summary": "s", "source": "n", "severity": "sev1"}}, "'payload.severity' is invalid"),
        ({**TRIGGER, "payload": None}, "'payload' is missing"),
        ({"routing_key": KEY, "event_action": "resolve"}, "'dedup_key' is missing or blank"),
        ({**TRIGGER, "dedup_key": "k" * 256}, "1 to 255 characters"),
        ({**TRIGGER, "links": [{"text": "no href"}]}, "'links' must be"),
    ],
)
def test_fake_pagerduty_refuses_invalid_events_with_400(event: dict[str, Any], error: str) -> None:
    assert any(error in e for e in pagerduty_errors(event)), pagerduty_errors(event)
    with FakePagerDuty() as pd:
        answer = httpx.post(pd.url, json=event)
    assert answer.status_code == 400 and pd.incidents == {} and pd.accepted == []
    body = answer.json()
    assert (body["status"], body["message"]) == ("invalid event", "Event object is invalid")
    assert any(error in e for e in body["errors"])


def test_a_valid_trigger_has_no_errors() -> None:
    assert pagerduty_errors(TRIGGER) == []


def test_stop_releases_the_port_and_is_idempotent() -> None:
    receiver = FakeReceiver()
    port = receiver.server_address[1]
    assert httpx.post(receiver.url, json={}).json() == {"ok": True}
    receiver.stop()
    receiver.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
