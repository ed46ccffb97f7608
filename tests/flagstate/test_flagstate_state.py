"""FlagState: transitions, overrides and their expiry, history bounds, snapshot round trip (pure, no I/O)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.flagstate import HISTORY_LIMIT, FlagState, Override, decision_to_dict, parse_state, state_to_dict

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FIGURES = {"ratio": 0.42, "numerator": 42, "denominator": 100, "window_s": 60, "threshold": 0.3}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def degraded_state() -> FlagState:
    return FlagState.initial(T0).apply_transition(True, "degraded-mode", "503 ratio 0.42 > 0.30 for 5m", FIGURES, at(5))


def test_initial_state_is_not_degraded() -> None:
    decision = FlagState.initial(T0).effective(at(1))
    assert decision.value is False
    assert decision.since == T0
    assert decision.rule == "initial"
    assert decision.source == "rule"
    assert decision.override is None


def test_transition_sets_since_rule_figures_and_history() -> None:
    state = degraded_state()
    decision = state.effective(at(6))
    assert (decision.value, decision.since, decision.rule, decision.source) == (True, at(5), "degraded-mode", "rule")
    assert decision.reason == "503 ratio 0.42 > 0.30 for 5m"
    assert dict(decision.figures) == FIGURES
    assert decision.evaluated is True
    [entry] = state.history
    assert (entry.at, entry.from_, entry.to, entry.rule, entry.source) == (at(5), False, True, "degraded-mode", "rule")
    assert dict(entry.figures) == FIGURES


def test_same_value_is_not_a_transition_and_keeps_since() -> None:
    state = degraded_state()
    again = state.apply_transition(True, "alertmanager", "firing", {"ratio": 0.9}, at(7))
    assert again is state
    assert again.since == at(5)
    assert len(again.history) == 1


def test_recovery_is_a_second_transition() -> None:
    state = degraded_state().apply_transition(
        False, "degraded-mode", "ratio 0.05 < 0.10 for 10m", {"ratio": 0.05}, at(20)
    )
    assert state.effective(at(21)).value is False
    assert state.since == at(20)
    assert [(e.from_, e.to) for e in state.history] == [(False, True), (True, False)]


def test_time_and_figures_are_normalised_to_utc_and_read_only() -> None:
    plus_two = timezone(timedelta(hours=2))
    state = FlagState.initial(T0).apply_transition(
        True, "r", "why", {"ratio": 1}, datetime(2026, 1, 15, 14, 0, tzinfo=plus_two)
    )
    assert state.since == T0 and state.since.tzinfo == UTC
    with pytest.raises(TypeError):
        state.figures["ratio"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("figures", "error"),
    [
        ({"ratio": "0.4"}, TypeError),
        ({"ratio": True}, TypeError),
        ({1: 0.4}, TypeError),
    ],
)
def test_non_numeric_figures_are_refused_without_a_change(
    figures: dict[object, object], error: type[Exception]
) -> None:
    state = FlagState.initial(T0)
    with pytest.raises(error, match="figures"):
        state.apply_transition(True, "r", "why", figures, at(1))  # type: ignore[arg-type]
    assert state.degraded is False


def test_unavailable_figures_are_left_out_but_never_block_the_transition() -> None:
    # The evaluator reports ratio None when the window had no traffic; NaN/inf cannot go to JSON.
    figures = {"ratio": None, "numerator": 0, "denominator": 0, "nan": math.nan, "inf": math.inf}
    state = FlagState.initial(T0).apply_transition(True, "degraded-mode", "probe", figures, at(1))
    assert state.degraded is True
    assert dict(state.figures) == {"numerator": 0, "denominator": 0}
    assert parse_state(json.loads(json.dumps(state_to_dict(state), allow_nan=False))) == state


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FlagState.initial(T0).apply_transition(True, "r", "why", {}, datetime(2026, 1, 15, 12, 0))


def test_override_wins_until_it_expires() -> None:
    state = degraded_state().set_override(False, "Pro is fine, 503s are a client bug", at(60), at(10), set_by="alice")
    during = state.effective(at(30))
    assert (during.value, during.source, during.rule, during.since) == (False, "override", "override", at(10))
    assert during.evaluated is True  # the rules still say degraded
    assert during.override == Override(False, "Pro is fine, 503s are a client bug", at(60), "alice", at(10))
    assert during.reason == "Pro is fine, 503s are a client bug"
    # Expiry is respected by effective() even before anything removes the override: at expires_at it is over.
    after = state.effective(at(60))
    assert (after.value, after.source, after.since) == (True, "rule", at(5))
    assert state.effective(at(59.99)).source == "override"


def test_override_history_records_effective_values() -> None:
    state = degraded_state().set_override(False, "maintenance", at(60), at(10), set_by="alice")
    entry = state.history[-1]
    assert (entry.at, entry.from_, entry.to, entry.rule, entry.source) == (at(10), True, False, "override", "override")
    assert "alice" in entry.reason and "maintenance" in entry.reason


def test_expire_override_only_after_expiry() -> None:
    state = degraded_state().set_override(False, "maintenance", at(60), at(10))
    assert state.expire_override(at(59)) is state
    expired = state.expire_override(at(75))
    assert expired.override is None
    entry = expired.history[-1]
    # Recorded at the expiry instant, not when the tick noticed it.
    assert (entry.at, entry.from_, entry.to, entry.reason) == (at(60), False, True, "override expired")


def test_clear_override() -> None:
    state = FlagState.initial(T0).set_override(True, "drill", at(60), at(10), set_by="bob")
    assert state.effective(at(11)).value is True
    cleared = state.clear_override(at(20), by="carol")
    assert cleared.override is None
    assert cleared.effective(at(21)).value is False
    assert cleared.history[-1].reason == "override cleared by carol"
    assert (cleared.history[-1].from_, cleared.history[-1].to) == (True, False)
    assert cleared.clear_override(at(30)) is cleared  # nothing to clear


def test_rules_keep_evaluating_under_an_override() -> None:
    state = FlagState.initial(T0).set_override(False, "keep Pro", at(60), at(1))
    state = state.apply_transition(True, "degraded-mode", "ratio high", FIGURES, at(5))
    assert state.effective(at(6)).value is False
    assert state.effective(at(6)).evaluated is True
    assert state.effective(at(61)).value is True
    assert state.effective(at(61)).since == at(5)


@pytest.mark.parametrize(
    ("value", "reason", "expires", "now", "message"),
    [
        (True, "", at(60), at(1), "reason"),
        (True, "   ", at(60), at(1), "reason"),
        (True, "x", at(1), at(1), "not after"),
        (True, "x", at(0), at(1), "not after"),
        (True, "x", datetime(2026, 2, 1), at(1), "timezone-aware"),
    ],
)
def test_bad_overrides_are_refused(value: bool, reason: str, expires: datetime, now: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlagState.initial(T0).set_override(value, reason, expires, now)


def test_history_is_bounded_and_keeps_the_latest() -> None:
    state = FlagState.initial(T0)
    total = HISTORY_LIMIT + 250
    for i in range(total):
        state = state.apply_transition(i % 2 == 0, "degraded-mode", f"t{i}", {"n": i}, at(i))
    assert HISTORY_LIMIT == 200
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[-1].reason == f"t{total - 1}"
    assert state.history[0].reason == f"t{total - HISTORY_LIMIT}"
    # The bound survives the snapshot.
    assert len(parse_state(state_to_dict(state)).history) == HISTORY_LIMIT


def test_snapshot_is_json_and_round_trips() -> None:
    state = degraded_state().set_override(False, "maintenance", at(60), at(10), set_by="alice")
    state = state.apply_transition(False, "degraded-mode", "recovered", {"ratio": 0.01}, at(20))
    snapshot = state_to_dict(state)
    text = json.dumps(snapshot, allow_nan=False)
    assert snapshot["since"] == "2026-01-15T12:20:00Z"
    assert snapshot["override"] == {
        "value": False,
        "reason": "maintenance",
        "expires_at": "2026-01-15T13:00:00Z",
        "set_by": "alice",
        "set_at": "2026-01-15T12:10:00Z",
    }
    assert snapshot["history"][0] == {
        "at": "2026-01-15T12:05:00Z",
        "from": False,
        "to": True,
        "rule": "degraded-mode",
        "reason": "503 ratio 0.42 > 0.30 for 5m",
        "figures": FIGURES,
        "source": "rule",
    }
    restored = parse_state(json.loads(text))
    assert restored == state
    assert restored.effective(at(30)) == state.effective(at(30))
    assert state_to_dict(restored) == snapshot


def test_decision_to_dict() -> None:
    decision = degraded_state().effective(at(6))
    assert decision_to_dict(decision) == {
        "value": True,
        "reason": "503 ratio 0.42 > 0.30 for 5m",
        "since": "2026-01-15T12:05:00Z",
        "rule": "degraded-mode",
        "source": "rule",
        "figures": FIGURES,
        "evaluated": True,
        "override": None,
    }


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda s: s.pop("degraded"), "state.degraded"),
        (lambda s: s.update(degraded="yes"), "state.degraded"),
        (lambda s: s.update(version=2), "version"),
        (lambda s: s.update(since="yesterday"), "state.since"),
        (lambda s: s.update(since="2026-01-15T12:00:00"), "no timezone"),
        (lambda s: s.update(figures={"ratio": "high"}), "state.figures.ratio"),
        (lambda s: s["history"][0].pop("at"), "history[0].at"),
        (lambda s: s["history"][0].update(source="cron"), "history[0].source"),
        (lambda s: s.update(override={"value": True}), "override.reason"),
        (lambda s: s.update(history={}), "history"),
    ],
)
def test_parse_state_names_the_bad_key(mutate: object, where: str) -> None:
    snapshot = state_to_dict(degraded_state())
    mutate(snapshot)  # type: ignore[operator]
    with pytest.raises(ValueError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_state(snapshot)


def test_parse_state_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="expected a JSON object"):
        parse_state([])
