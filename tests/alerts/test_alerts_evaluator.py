"""The evaluator's state machine on synthetic series, one evaluation every 15 s (the issue's cadence)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from monitor.alerts import DEGRADED_MODE, HISTORY_SIZE, Action, Evaluator, Rule, State, Transition, default_rules
from monitor.signals import Counts, Series
from tests.support.constants import FLASH, PRO

OK, PENDING, FIRING, RECOVERING, PROBING = State.OK, State.PENDING, State.FIRING, State.RECOVERING, State.PROBING

Step = tuple[float, int] | None  # (503 ratio, requests to the primary in the window), or None: no data


def degraded_rule(**changes: Any) -> Rule:
    """The default rule: > 0.30 for 300 s, >= 20 requests, < 0.10 for 600 s to leave, probe after 600 s."""
    (rule,) = (r for r in default_rules(PRO, FLASH) if r.name == DEGRADED_MODE)
    return replace(rule, **changes)


def counts(ratio: float, volume: int) -> Counts:
    bad = round(ratio * volume)  # integer counts: 0.3 is exactly 30/100, never 30.000000000000004/100
    # Flash traffic must not count: the rule selects the primary model only.
    return {
        Series(PRO, "503", "overloaded"): bad,
        Series(PRO, "200", "ok"): volume - bad,
        Series(FLASH, "503", "x"): 99,
    }


def steps(*phases: tuple[Step, int]) -> list[Step]:
    """(step, how many evaluations) phases, flattened."""
    return [step for step, n in phases for _ in range(n)]


class Run:
    """Drives one Evaluator through steps every `every` seconds, recording the state after each evaluation."""

    def __init__(self, rule: Rule | None = None, start: float = 0.0, every: float = 15.0) -> None:
        self.rule = rule or degraded_rule()
        self.evaluator = Evaluator([self.rule])
        self.now, self.every = start, every
        self.states: dict[float, State] = {}
        self.degraded: list[bool] = []
        self.transitions: list[Transition] = []

    def feed(self, sequence: Sequence[Step]) -> Run:
        for step in sequence:
            data = None if step is None else counts(*step)
            self.transitions += self.evaluator.evaluate(self.now, {self.rule.window_s: data})
            status = self.evaluator.state(self.rule.name)
            self.states[self.now] = status.state
            self.degraded.append(self.evaluator.degraded)
            self.now += self.every  # accumulated like a scheduler's clock, float noise included
        return self


HIGH, DIP, LOW, MID = (0.5, 100), (0.1, 100), (0.05, 100), (0.2, 100)
QUIET, SILENT = (0.9, 10), (0.0, 0)  # below min_volume; no traffic at all
FIRED = (HIGH, 21)  # pending at 0, firing at 300


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        pytest.param(
            steps((HIGH, 25)), {0: PENDING, 285: PENDING, 300: FIRING, 360: FIRING}, id="fires exactly at hold"
        ),
        pytest.param(steps(((0.3, 100), 25)), {0: OK, 300: OK, 360: OK}, id="ratio equal to threshold is not above"),
        pytest.param(
            steps((HIGH, 11), (DIP, 1), (HIGH, 25)),
            {150: PENDING, 165: OK, 180: PENDING, 300: PENDING, 465: PENDING, 480: FIRING},
            id="a single dip resets pending",
        ),
        pytest.param(
            steps((HIGH, 7), ((0.0, 10), 7), (HIGH, 10)),
            {90: PENDING, 105: PENDING, 195: PENDING, 285: PENDING, 300: FIRING},
            id="low volume in the middle neither resets nor completes",
        ),
        pytest.param(
            steps((HIGH, 20), (QUIET, 2), (HIGH, 1)),
            {285: PENDING, 300: PENDING, 315: PENDING, 330: FIRING},
            id="low volume at the hold does not complete it",
        ),
        pytest.param(
            steps((HIGH, 20), (None, 2), (HIGH, 1)),
            {285: PENDING, 300: PENDING, 315: PENDING, 330: FIRING},
            id="no data holds too",
        ),
        pytest.param(
            steps(FIRED, (MID, 20), (LOW, 41)),
            {315: FIRING, 600: FIRING, 615: RECOVERING, 1200: RECOVERING, 1215: OK},
            id="hysteresis: 0.2 keeps firing, 0.05 for 600 s recovers exactly at hold",
        ),
        pytest.param(
            steps(FIRED, (LOW, 10), ((0.1, 100), 1), (LOW, 41)),
            {315: RECOVERING, 450: RECOVERING, 465: FIRING, 480: RECOVERING, 1065: RECOVERING, 1080: OK},
            id="a ratio at the recovery threshold resets recovery",
        ),
        pytest.param(
            steps(FIRED, (LOW, 10), (QUIET, 30), (LOW, 1)),
            {315: RECOVERING, 450: RECOVERING, 900: RECOVERING, 915: OK},
            id="low volume neither resets nor completes recovery",
        ),
    ],
)
def test_state_table(sequence: list[Step], expected: dict[float, State]) -> None:
    run = Run().feed(sequence)
    assert {t: run.states[t] for t in expected} == expected


def test_the_firing_transition_carries_its_figures() -> None:
    run = Run().feed(steps((HIGH, 21)))
    pending, firing = run.transitions
    assert (pending.from_state, pending.to_state, pending.at) == (OK, PENDING, 0)
    assert firing == Transition(
        rule=DEGRADED_MODE,
        from_state=PENDING,
        to_state=FIRING,
        at=300,
        ratio=0.5,
        numerator=50,
        denominator=100,
        window_s=60,
        threshold=0.3,
        reason=firing.reason,
    )
    assert "0.500" in firing.reason and "300s" in firing.reason
    assert firing.degraded_changed and not pending.degraded_changed
    assert run.evaluator.history == (pending, firing)


def test_degraded_since_spans_firing_and_recovering() -> None:
    run = Run().feed(steps(FIRED, (LOW, 1), (HIGH, 1)))  # firing 300, recovering 315, firing again 330
    status = run.evaluator.state(DEGRADED_MODE)
    assert (status.state, status.since, status.degraded_since) == (FIRING, 330, 300)
    assert [t.degraded_changed for t in run.transitions] == [False, True, False, False]
    run.feed(steps((LOW, 41)))
    assert run.evaluator.state(DEGRADED_MODE).degraded_since is None


def test_fires_at_hold_despite_float_noise_in_the_clock() -> None:
    run = Run(start=1000.1).feed(steps((HIGH, 21)))
    times = list(run.states)
    assert times[20] - times[0] < 300  # the accumulated clock really is a hair short of the hold
    assert [run.states[t] for t in times[19:21]] == [PENDING, FIRING]


def test_status_says_insufficient_data_and_no_data() -> None:
    run = Run().feed(steps((HIGH, 1), (QUIET, 1)))
    status = run.evaluator.state(DEGRADED_MODE)
    assert (status.state, status.insufficient_data, status.no_data) == (PENDING, True, False)
    assert (status.numerator, status.denominator, status.ratio, status.evaluated_at) == (9, 10, 0.9, 15)
    run.feed([None])
    status = run.evaluator.state(DEGRADED_MODE)
    assert (status.insufficient_data, status.no_data, status.ratio) == (True, True, None)
    run.feed([HIGH])
    status = run.evaluator.state(DEGRADED_MODE)
    assert (status.insufficient_data, status.no_data, status.since) == (False, False, 0)


@pytest.mark.parametrize(
    ("start", "alternating"),
    [
        pytest.param((), [(0.35, 100), LOW], id="from ok: never fires"),
        pytest.param((FIRED,), [(0.35, 100), LOW], id="from firing: never recovers"),
        pytest.param((FIRED,), [(0.35, 100), MID], id="from firing, between thresholds"),
    ],
)
def test_flapping_input_does_not_flap_the_flag(start: tuple[tuple[Step, int], ...], alternating: list[Step]) -> None:
    run = Run().feed(steps(*start))
    before = len(run.degraded)
    run.feed(alternating * 80)  # 40 minutes
    flag = set(run.degraded[before:])
    assert len(flag) == 1  # the degraded flag never changes
    seen = set(list(run.states.values())[before:])
    assert not {OK, FIRING} <= seen  # never oscillates between ok and firing
    assert flag == ({True} if start else {False})


def test_probes_after_no_traffic_and_a_failed_probe_fires_at_once() -> None:
    run = Run().feed(steps(FIRED, (SILENT, 41)))  # silent from 315: 315 + 600 = 915
    assert (run.states[900], run.states[915]) == (FIRING, PROBING)
    probe = run.transitions[-1]
    assert (probe.from_state, probe.to_state, probe.at) == (FIRING, PROBING, 915)
    assert (probe.ratio, probe.denominator) == (None, 0)
    assert run.evaluator.state(DEGRADED_MODE).degraded is False  # the flag is released
    assert run.evaluator.degraded is False
    run.feed([SILENT, QUIET, HIGH])  # probing holds on low volume, then the probe fails: firing with no hold
    assert (run.states[930], run.states[945], run.states[960]) == (PROBING, PROBING, FIRING)
    assert run.transitions[-1].reason.startswith("probe failed")
    assert run.evaluator.state(DEGRADED_MODE).degraded_since == 960


def test_a_successful_probe_recovers_after_the_recovery_hold() -> None:
    run = Run().feed(steps(FIRED, (SILENT, 41)))  # probing at 915
    run.feed(steps((LOW, 10), (MID, 1), (LOW, 41)))  # 930..1065 healthy, 1080 in between, healthy from 1095
    assert run.states[1080] == PROBING  # between the thresholds: still probing, probe timer restarted
    assert (run.states[1680], run.states[1695]) == (PROBING, OK)
    assert run.transitions[-1].reason.startswith("probe succeeded")


@pytest.mark.parametrize(
    ("sequence", "state_at_2000"),
    [
        # A small canary (under min_volume) can never decide recovery: it must lead to a probe, not a stuck flag.
        pytest.param(steps(FIRED, ((0.0, 5), 130)), PROBING, id="canary traffic under min_volume probes"),
        pytest.param(steps(FIRED, ((0.0, 25), 130)), OK, id="canary traffic above min_volume recovers"),
        pytest.param(steps(FIRED, (None, 130)), FIRING, id="a source outage is not zero traffic"),
        pytest.param(steps(FIRED, (LOW, 1), (SILENT, 130)), PROBING, id="recovering probes too"),
    ],
)
def test_probing_needs_too_little_traffic_to_decide(sequence: list[Step], state_at_2000: State) -> None:
    assert Run().feed(sequence).states[2000 - 2000 % 15] == state_at_2000


def test_probing_can_be_disabled() -> None:
    run = Run(degraded_rule(probe_after_s=None)).feed(steps(FIRED, (SILENT, 500)))
    assert set(list(run.states.values())[21:]) == {FIRING}


def test_zero_holds_move_in_one_evaluation() -> None:
    run = Run(degraded_rule(hold_s=0, recovery_hold_s=0)).feed([HIGH, MID, LOW])
    assert list(run.states.values()) == [FIRING, FIRING, OK]
    assert [(t.from_state, t.to_state) for t in run.transitions] == [(OK, FIRING), (FIRING, OK)]


def test_restored_firing_does_not_re_emit_and_recovers_normally() -> None:
    run = Run(start=10_000)
    run.evaluator.restore(DEGRADED_MODE, "firing", since=9_000)
    status = run.evaluator.state(DEGRADED_MODE)
    assert (status.state, status.since, status.degraded_since, status.degraded) == (FIRING, 9_000, 9_000, True)
    run.feed(steps((HIGH, 30)))
    assert run.transitions == [] and run.evaluator.history == ()
    assert run.evaluator.degraded
    run.feed(steps((LOW, 41)))
    assert [(t.from_state, t.to_state) for t in run.transitions] == [(FIRING, RECOVERING), (RECOVERING, OK)]


def test_restored_timers_continue_from_since() -> None:
    run = Run(start=585)
    run.evaluator.restore(DEGRADED_MODE, State.RECOVERING, since=0, degraded_since=-300)
    assert run.evaluator.state(DEGRADED_MODE).degraded_since == -300
    run.feed([LOW, LOW])
    assert (run.states[585], run.states[600]) == (RECOVERING, OK)
    pending = Run(start=285)
    pending.evaluator.restore(DEGRADED_MODE, "pending", since=0)
    pending.feed([HIGH, HIGH])
    assert (pending.states[285], pending.states[300]) == (PENDING, FIRING)


def test_restore_rejects_unknown_rules_and_states() -> None:
    evaluator = Evaluator([degraded_rule()])
    with pytest.raises(KeyError, match="nope"):
        evaluator.restore("nope", "firing", 0)
    with pytest.raises(ValueError, match="'on fire'"):
        evaluator.restore(DEGRADED_MODE, "on fire", 0)
    with pytest.raises(KeyError):
        evaluator.state("nope")


def test_history_keeps_the_last_200_transitions() -> None:
    run = Run().feed([HIGH, DIP] * 150)  # ok <-> pending at every evaluation: 300 transitions
    assert len(run.transitions) == 300
    assert HISTORY_SIZE == 200
    assert run.evaluator.history == tuple(run.transitions[-200:])


def test_each_rule_reads_its_own_window_and_only_set_flag_rules_degrade() -> None:
    loud = degraded_rule(hold_s=0)
    quiet = degraded_rule(name="notify-only", window_s=300, hold_s=0, actions=frozenset({Action.NOTIFY}))
    evaluator = Evaluator([loud, quiet])
    assert evaluator.windows == (60, 300)
    evaluator.evaluate(0, {60: counts(0.0, 100), 300: counts(0.5, 100)})
    assert evaluator.state("notify-only").degraded and not evaluator.state(DEGRADED_MODE).degraded
    assert evaluator.degraded is False
    evaluator.evaluate(15, {60: counts(0.5, 100), 300: counts(0.5, 100)})
    assert evaluator.degraded is True
    assert {name: s.state for name, s in evaluator.statuses().items()} == {DEGRADED_MODE: FIRING, "notify-only": FIRING}


def test_a_missing_window_is_an_error_and_changes_nothing() -> None:
    evaluator = Evaluator([degraded_rule(hold_s=0), degraded_rule(name="long", window_s=300, hold_s=0)])
    with pytest.raises(ValueError, match=r"no entry for window\(s\) \[300\]"):
        evaluator.evaluate(0, {60: counts(0.5, 100)})
    assert evaluator.state(DEGRADED_MODE).state is OK
    assert evaluator.state(DEGRADED_MODE).evaluated_at is None


def test_disabled_rules_are_not_evaluated_and_names_are_unique() -> None:
    evaluator = Evaluator(default_rules(PRO, FLASH))
    assert [r.name for r in evaluator.rules] == [DEGRADED_MODE]
    with pytest.raises(ValueError, match=r"^rules\.degraded-mode: defined twice"):
        Evaluator([degraded_rule(), degraded_rule()])


def test_state_strings_are_the_metric_contract() -> None:
    assert [str(s) for s in State] == ["ok", "pending", "firing", "recovering", "probing"]
    assert {s for s in State if s.degraded} == {FIRING, RECOVERING}
