"""The [notify] configuration and the choice of what to tell people on each transition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.alerts import State, Transition, default_rules
from monitor.config import ConfigError
from monitor.notify.base import Event
from monitor.notify.config import notify_config_from_mapping
from monitor.notify.events import build, event_for

ENV = {"SLACK_URL": "https://hooks.slack.example/services/T/B/SECRET", "PD_KEY": "R0UT1NGKEY"}


def test_channels_routes_and_secrets_from_env_and_files(tmp_path: Path) -> None:
    key_file = tmp_path / "pd"
    key_file.write_text("FILEKEY\n")
    config = notify_config_from_mapping(
        {
            "environment": "staging",
            "channels": {
                "oncall": {"kind": "slack", "webhook_url_env": "SLACK_URL"},
                "pager": {"kind": "pagerduty", "routing_key_file": str(key_file), "severity": "critical"},
            },
            "routes": [
                {"rules": ["degraded-mode"], "severities": ["critical"], "channels": ["oncall", "pager"]},
                {"severities": ["warning"], "channels": ["oncall"]},
            ],
        },
        ENV,
    )
    assert [c.secret for c in config.channels] == [ENV["SLACK_URL"], "FILEKEY"]
    assert "SECRET" not in repr(config) and "FILEKEY" not in repr(config)
    assert config.channels_for("degraded-mode", "critical") == ["oncall", "pager"]
    assert config.channels_for("quota-exhaustion", "warning") == ["oncall"]
    assert config.channels_for("quota-exhaustion", "critical") == []


def test_without_routes_every_channel_gets_everything() -> None:
    config = notify_config_from_mapping({"channels": {"a": {"kind": "slack", "webhook_url_env": "SLACK_URL"}}}, ENV)
    assert config.channels_for("anything", "info") == ["a"]


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"channels": {"a": {"kind": "sms"}}}, "notify.channels.a.kind"),
        ({"channels": {"a": {"kind": "slack", "webhook_url": "https://x"}}}, "notify.channels.a.webhook_url"),
        ({"channels": {"a": {"kind": "slack", "webhook_url_env": "MISSING"}}}, "notify.channels.a.webhook_url_env"),
        ({"channels": {"a": {"kind": "slack"}}}, "notify.channels.a"),
        ({"channels": {"a": {"kind": "pagerduty", "routing_key_file": "/nope"}}}, "notify.channels.a.routing_key_file"),
        ({"channels": {"a": {"kind": "slack", "webhook_url_env": "PD_KEY"}}}, "notify.channels.a.webhook_url_env"),
        ({"routes": [{"channels": ["ghost"]}]}, "notify.routes[0].channels"),
        ({"routes": [{"channels": []}]}, "notify.routes[0].channels"),
        ({"colour": 1}, "notify.colour"),
    ],
)
def test_bad_notify_config_names_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        notify_config_from_mapping(data, ENV)
    assert caught.value.key == key
    assert "SECRET" not in str(caught.value) and "R0UT1NG" not in str(caught.value)


def transition(was: State, now: State, ratio: float | None = 0.42) -> Transition:
    return Transition("degraded-mode", was, now, 100.0, ratio, 126, 300, 60.0, 0.30, "503 ratio above 0.30 for 5m")


@pytest.mark.parametrize(
    ("was", "now", "flag_rule", "event"),
    [
        (State.PENDING, State.FIRING, True, Event.FIRING),
        (State.FIRING, State.RECOVERING, True, None),
        (State.RECOVERING, State.FIRING, True, None),
        (State.RECOVERING, State.OK, True, Event.RESOLVED),
        (State.FIRING, State.PROBING, True, None),  # the flag is released, the episode goes on
        (State.PROBING, State.FIRING, True, None),  # a failed probe: still the same incident
        (State.PROBING, State.OK, True, Event.RESOLVED),
        (State.OK, State.PENDING, True, None),
        (State.PENDING, State.FIRING, False, Event.FIRING),
        (State.RECOVERING, State.OK, False, Event.RESOLVED),
        (State.FIRING, State.RECOVERING, False, None),
    ],
)
def test_when_to_notify(was: State, now: State, flag_rule: bool, event: Event | None) -> None:
    assert event_for(transition(was, now), flag_rule) is event


def test_the_notification_carries_the_figures() -> None:
    rule = default_rules("gemini-3-pro-image", "gemini-nano-banana-2.1")[0]
    at = datetime(2026, 11, 27, 14, 5, tzinfo=UTC)
    note = build(
        transition(State.PENDING, State.FIRING),
        rule,
        flag_rule=True,
        model="gemini-3-pro-image",
        environment="prod",
        at=at,
        since=at,
        links={"runbook": "https://wiki/rb"},
    )
    assert note is not None
    assert note.event is Event.FIRING and note.severity == "critical"
    assert note.dedup_key == "nbmon/prod/degraded-mode"
    assert "42.0%" in note.summary and "126 of 300" in note.summary and "1m" in note.summary
    assert note.override_command is not None and "nbmon flag set off" in note.override_command
    assert note.figures["ratio"] == 0.42
    again = build(
        transition(State.RECOVERING, State.OK),
        rule,
        flag_rule=True,
        model="m",
        environment="prod",
        at=at,
        since=at,
        links={},
    )
    assert again is not None and again.dedup_key == note.dedup_key and again.event is Event.RESOLVED
