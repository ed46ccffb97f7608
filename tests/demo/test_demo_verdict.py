"""The demo's exit criteria: every way the loop can fail to close is reported, in words."""

from __future__ import annotations

from dataclasses import replace

from monitor.demo.observe import ModeChange, Received
from monitor.demo.verdict import Evidence, problems

STORM = (10.0, 40.0)
DELIVERED = (
    Received(21.0, "slack", "[FIRING] gemini-3-pro-image entered degraded mode (degraded-mode)"),
    Received(21.0, "pagerduty", "trigger nbmon/demo/degraded-mode: gemini-3-pro-image entered ..."),
    Received(55.0, "slack", "[RESOLVED] gemini-3-pro-image left degraded mode (degraded-mode)"),
    Received(55.0, "pagerduty", "resolve nbmon/demo/degraded-mode"),
)
CLOSED = Evidence(
    storm=STORM,
    mode_changes=(ModeChange(20.0, True, "firing", "ratio 0.4"), ModeChange(54.0, False, "ok", "ratio 0.0")),
    degraded_at_end=False,
    rule_state_at_end="ok",
    peak_ratio=0.48,
    min_volume=6,
    flash_routed=300.0,
    pro_after_recovery=120,
    received=DELIVERED,
    internal_errors={},
)


def clock(t: float) -> str:
    return f"t{t:g}"


def test_a_closed_loop_has_no_problems() -> None:
    assert problems(CLOSED, clock) == []


def test_a_recovery_through_a_passed_probe_counts() -> None:
    changes = (
        ModeChange(20.0, True, "firing", ""),
        ModeChange(45.0, False, "probing", ""),
        ModeChange(48.0, False, "ok", "probe succeeded"),
    )
    assert problems(replace(CLOSED, mode_changes=changes), clock) == []


def test_a_storm_under_the_threshold_never_engages() -> None:
    evidence = replace(CLOSED, mode_changes=(), peak_ratio=0.14, received=(), flash_routed=0.0)
    assert problems(evidence, clock) == [
        "degraded mode never engaged: the Pro 503 ratio peaked at 14%, below the 30% threshold"
    ]


def test_a_ratio_above_the_threshold_that_did_not_hold() -> None:
    (problem,) = problems(replace(CLOSED, mode_changes=(), peak_ratio=0.35), clock)
    assert "peaked at 35% but did not stay above the 30% threshold for the hold" in problem


def test_no_volume_says_so() -> None:
    (problem,) = problems(replace(CLOSED, mode_changes=(), peak_ratio=None), clock)
    assert "never saw 6 Pro requests in a window" in problem


def test_engaging_before_the_storm_is_a_false_alarm() -> None:
    early = (ModeChange(5.0, True, "firing", ""), ModeChange(54.0, False, "ok", ""))
    assert problems(replace(CLOSED, mode_changes=early), clock) == [
        "degraded mode engaged at t5, before the storm began at t10"
    ]


def test_still_degraded_at_the_end() -> None:
    stuck = replace(CLOSED, mode_changes=CLOSED.mode_changes[:1], degraded_at_end=True, rule_state_at_end="firing")
    assert "degraded mode did not recover by the end of the day (rule firing)" in problems(stuck, clock)


def test_the_app_must_follow_the_flag_both_ways() -> None:
    found = problems(replace(CLOSED, flash_routed=0.0, pro_after_recovery=0), clock)
    assert "the app never routed a call to Flash: the OFREP flag did not reach it" in found
    assert "the app did not go back to Pro after the recovery" in found


def test_missing_notifications_are_named() -> None:
    found = problems(replace(CLOSED, received=DELIVERED[:2]), clock)
    assert found == [
        "Slack never received the 'left degraded mode' message",
        "PagerDuty never received the resolve",
    ]


def test_swallowed_telemetry_errors_fail_the_day() -> None:
    (problem,) = problems(replace(CLOSED, internal_errors={"shim.record": 2.0}), clock)
    assert "nbmon swallowed internal errors in its own telemetry (shim.record 2)" in problem
