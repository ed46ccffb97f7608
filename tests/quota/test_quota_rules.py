"""Quota rules on the evaluator's semantics: firing exactly at the hold, hysteresis, no data, dynamic and blocked
limits, the projection rule, one incident per quota, and the notifications built from transitions."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.alerts import Severity, State
from monitor.config import ConfigError
from monitor.notify.base import Event
from monitor.notify.render import plain_text
from monitor.quota.model import QuotaReading, Window, limit_status
from monitor.quota.rules import (
    QUOTA_CRITICAL,
    QUOTA_PROJECTED,
    QUOTA_WARNING,
    QuotaRuleEngine,
    QuotaTransition,
    default_quota_rules,
    quota_notification,
    quota_rules_from_mapping,
)

GEMINI = "generativelanguage.googleapis.com"
PER_MINUTE = f"{GEMINI}/generate_requests_per_model"
PER_DAY = f"{GEMINI}/generate_requests_per_model_per_day"
OK, PENDING, FIRING, RECOVERING = State.OK, State.PENDING, State.FIRING, State.RECOVERING
AT = datetime(2026, 3, 8, 19, 0, tzinfo=UTC)


def reading(
    ratio: float | None = None, *, usage: float | None = None, limit: float | None = 100, **changes: Any
) -> QuotaReading:
    used = usage if usage is not None else (ratio or 0.0) * (limit or 100)
    base = QuotaReading(
        "proj-a",
        GEMINI,
        "global",
        PER_MINUTE,
        "GenerateRequestsPerMinutePerProjectPerModel",
        Window.MINUTE,
        used,
        limit,
        limit_status(limit),
    )
    return replace(base, **changes)


def day_reading(projected: bool, usage: float = 1100) -> QuotaReading:
    return replace(
        reading(usage=usage, limit=2000),
        quota_metric=PER_DAY,
        limit_name="GenerateRequestsPerDayPerProjectPerModel",
        window=Window.DAY,
        seconds_until_reset=43200.0,
        projected_usage_at_reset=2300.0 if projected else 1500.0,
        projected_exhaustion=projected,
    )


class Run:
    """One engine fed a reading (or nothing) every `every` seconds; records the rule states after each step."""

    def __init__(self, every: float = 60.0) -> None:
        self.engine = QuotaRuleEngine()
        self.now, self.every = 1000.0, every
        self.transitions: list[QuotaTransition] = []

    def feed(self, *steps: QuotaReading | None) -> list[QuotaTransition]:
        moved: list[QuotaTransition] = []
        for step in steps:
            moved += self.engine.evaluate(self.now, [] if step is None else [step])
            self.now += self.every
        self.transitions += moved
        return moved

    def state(self, rule: str = QUOTA_WARNING, key: Any = None) -> State:
        return self.engine.state(rule, key or reading().key)


def test_warning_fires_exactly_when_the_hold_is_reached() -> None:
    run = Run(every=15.0)  # 15 s steps accumulate float noise; the 120 s hold must still fire on the 9th step
    states = []
    for _ in range(9):
        run.feed(reading(0.85))
        states.append(run.state())
    assert states == [PENDING] * 8 + [FIRING]
    (fired,) = [t for t in run.transitions if t.to_state is FIRING]
    assert (fired.rule, fired.severity, fired.ratio, fired.usage, fired.limit) == (
        QUOTA_WARNING,
        Severity.WARNING,
        0.85,
        85,
        100,
    )
    assert fired.event is Event.FIRING and "for 120s" in fired.reason


def test_hysteresis_and_recovery_hold() -> None:
    run = Run()
    run.feed(reading(0.85), reading(0.85), reading(0.85))
    assert run.state() is FIRING
    assert run.feed(reading(0.78), reading(0.80)) == []  # between 0.75 and 0.80: still firing
    assert [t.to_state for t in run.feed(reading(0.70))] == [RECOVERING]
    assert [t.to_state for t in run.feed(reading(0.76))] == [FIRING]  # recovery reset, no new notification
    assert run.transitions[-1].event is None
    run.feed(reading(0.70))  # recovering again, timed from here
    assert run.feed(reading(0.7), reading(0.7), reading(0.7), reading(0.7)) == []  # 240 s: not yet
    (resolved,) = run.feed(reading(0.7))  # 300 s
    assert (resolved.to_state, resolved.event) == (OK, Event.RESOLVED)


def test_pending_resets_at_or_below_the_threshold() -> None:
    run = Run()
    run.feed(reading(0.85), reading(0.80))
    assert run.state() is OK and [t.to_state for t in run.transitions] == [PENDING, OK]
    assert all(t.event is None for t in run.transitions)


def test_no_data_holds_the_state_and_the_timer_keeps_running() -> None:
    run = Run()
    run.feed(reading(0.85), None, None)
    assert run.state() is PENDING
    (fired,) = run.feed(reading(0.85))  # 180 s after pending began: fires on the first value
    assert fired.to_state is FIRING


def test_dynamic_limits_never_fire() -> None:
    run = Run()
    run.feed(*[reading(usage=10_000, limit=None)] * 10)
    assert run.transitions == [] and run.engine.degraded() == []


def test_blocked_limits_fire_only_while_in_demand() -> None:
    run = Run()
    idle = reading(usage=0, limit=0)
    run.feed(*[idle] * 5)
    assert run.transitions == []  # an unused preview model on a free tier never pages
    demand = replace(idle, exceeded=True)
    run.feed(demand, demand, demand)
    notified = [t for t in run.transitions if t.event is not None]
    assert [(t.rule, t.event, t.ratio) for t in notified] == [(QUOTA_CRITICAL, Event.FIRING, math.inf)]
    notification = quota_notification(notified[0], at=AT)
    assert notification is not None and "limit of 0 (blocked)" in notification.title
    assert "ratio" not in notification.figures and notification.figures["denominator"] == 0


def test_one_incident_per_quota_whatever_the_rules_do() -> None:
    run = Run()
    run.feed(reading(0.97), reading(0.97), reading(0.97))  # warning and critical fire at the same evaluation
    notified = [t for t in run.transitions if t.event is not None]
    assert [(t.rule, t.event) for t in notified] == [(QUOTA_CRITICAL, Event.FIRING)]
    run.feed(*[reading(0.85)] * 6)  # critical recovers; warning still firing: the incident stays open
    assert run.state(QUOTA_CRITICAL) is OK and run.state(QUOTA_WARNING) is FIRING
    assert [t.event for t in run.transitions if t.event is not None] == [Event.FIRING]
    run.feed(*[reading(0.5)] * 6)
    resolved = [t for t in run.transitions if t.event is Event.RESOLVED]
    assert [(t.rule, t.severity) for t in resolved] == [(QUOTA_WARNING, Severity.WARNING)]


def test_escalation_from_warning_to_critical_notifies_again() -> None:
    run = Run()
    run.feed(*[reading(0.85)] * 3)
    run.feed(*[reading(0.97)] * 3)
    assert [(t.rule, t.event) for t in run.transitions if t.event] == [
        (QUOTA_WARNING, Event.FIRING),
        (QUOTA_CRITICAL, Event.FIRING),
    ]
    firing = [n for t in run.transitions if (n := quota_notification(t, at=AT, environment="staging"))]
    assert {n.dedup_key for n in firing} == {
        "nbmon/staging/quota/proj-a/generativelanguage.googleapis.com/generate_requests_per_model/"
        "GenerateRequestsPerMinutePerProjectPerModel"
    }
    assert [n.severity for n in firing] == ["warning", "critical"]


def test_projected_exhaustion_fires_after_its_hold() -> None:
    run = Run()
    run.feed(*[day_reading(projected=True)] * 6)  # hold 300 s: pending at 0, firing at 300
    (fired,) = [t for t in run.transitions if t.to_state is FIRING]
    assert (fired.rule, fired.at - 1000.0) == (QUOTA_PROJECTED, 300.0)
    notification = quota_notification(fired, at=AT, links={"runbook": "https://wiki.example.com/quota"})
    assert notification is not None and notification.event is Event.FIRING
    assert "projected to run out before the reset" in notification.title
    assert notification.figures == {
        "numerator": 1100,
        "denominator": 2000,
        "ratio": 0.55,
        "window_s": 86400,
        "seconds_until_reset": 43200,
        "projected_usage_at_reset": 2300,
    }
    text = plain_text(notification, [("Runbook", "https://wiki.example.com/quota")])
    assert "Resets in 12.0h" in text and "Window 24h" in text and "Threshold" not in text
    run.feed(*[day_reading(projected=False)] * 11)  # recovery hold 600 s
    assert run.state(QUOTA_PROJECTED, day_reading(True).key) is OK
    assert [t.event for t in run.transitions if t.event] == [Event.FIRING, Event.RESOLVED]


def test_transitions_without_an_event_build_no_notification() -> None:
    run = Run()
    (pending,) = run.feed(reading(0.85))
    assert pending.event is None and quota_notification(pending, at=AT) is None


def test_utilization_notification_words_and_figures() -> None:
    run = Run()
    run.feed(*[reading(0.85)] * 3)
    (fired,) = [t for t in run.transitions if t.event]
    n = quota_notification(fired, at=AT)
    assert n is not None
    assert n.title == (
        "Quota generate_requests_per_model (GenerateRequestsPerMinutePerProjectPerModel) in proj-a "
        "at 85% of its per-minute limit"
    )
    assert n.figures == {"numerator": 85, "threshold": 0.8, "denominator": 100, "ratio": 0.85, "window_s": 60}
    assert n.rule == QUOTA_WARNING and n.model is None and n.to_dict()["event"] == "firing"


def test_rules_from_config() -> None:
    rules = {
        r.name: r
        for r in quota_rules_from_mapping(
            {
                QUOTA_WARNING: {"threshold": 0.7, "recovery_threshold": 0.6, "hold": "5m", "severity": "info"},
                QUOTA_PROJECTED: {"enabled": False},
            }
        )
    }
    warning = rules[QUOTA_WARNING]
    assert (warning.threshold, warning.recovery_threshold, warning.hold_s, warning.severity) == (
        0.7,
        0.6,
        300,
        Severity.INFO,
    )
    assert rules[QUOTA_CRITICAL] == {r.name: r for r in default_quota_rules()}[QUOTA_CRITICAL]
    assert QUOTA_PROJECTED not in {r.name for r in QuotaRuleEngine(rules.values()).rules}


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"quota-nope": {}}, "quota.rules.quota-nope"),
        ({QUOTA_WARNING: {"colour": "red"}}, f"quota.rules.{QUOTA_WARNING}.colour"),
        ({QUOTA_WARNING: {"recovery_threshold": 0.9}}, f"quota.rules.{QUOTA_WARNING}.recovery_threshold"),
        ({QUOTA_WARNING: {"severity": "page"}}, f"quota.rules.{QUOTA_WARNING}.severity"),
        ({QUOTA_WARNING: {"hold": "soon"}}, f"quota.rules.{QUOTA_WARNING}.hold"),
        ({QUOTA_WARNING: {"threshold": "high"}}, f"quota.rules.{QUOTA_WARNING}.threshold"),
    ],
)
def test_bad_rule_config_names_its_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        quota_rules_from_mapping(overrides)
    assert caught.value.key == key
