"""The demo's scripted day and its compressed timings: the same rule logic as production, seconds for minutes."""

from __future__ import annotations

import itertools

import pytest

from monitor.alerts import rules_from_mapping
from monitor.demo.script import DEFAULT_DAY_SECONDS, FLASH, PRO, Schedule, Timing, phases
from monitor.simulator import MixProfile, SimOutcome, parse_profile


def test_the_day_runs_from_six_to_ten_without_gaps() -> None:
    day = phases(0.45)
    assert [p.key for p in day] == ["morning", "storm", "recovery", "rate_limits", "safety", "evening"]
    assert sum(p.share for p in day) == pytest.approx(1.0)
    assert (day[0].start_hour, day[-1].end_hour) == (6.0, 22.0)
    assert all(a.end_hour == b.start_hour for a, b in itertools.pairwise(day))


def test_the_storm_hits_pro_and_spares_flash() -> None:
    storm = next(p for p in phases(0.45) if p.key == "storm")
    profile = parse_profile(storm.profile(seed=3))  # the simulator's own validation of the spec
    assert isinstance(profile, MixProfile)
    assert profile.weights_for(PRO)[SimOutcome.OVERLOADED] == 0.45
    assert profile.weights_for(FLASH).get(SimOutcome.OVERLOADED, 0.0) <= 0.02
    assert profile.seed == 3


@pytest.mark.parametrize("share", [0.0, 0.1, 0.45, 1.0])
def test_every_phase_is_a_valid_simulator_profile(share: float) -> None:
    for phase in phases(share):
        parse_profile(phase.profile(seed=1))


def test_schedule_maps_real_seconds_onto_the_clock() -> None:
    schedule = Schedule(110.0, phases(0.45))
    assert schedule.clock_at(0.0) == "06:00"
    assert schedule.clock_at(110.0) == "22:00"
    assert schedule.clock_at(1e6) == "22:00"  # after the end the clock stops
    start, end = schedule.span("storm")
    assert (schedule.clock_at(start), schedule.clock_at(end)) == ("10:00", "13:00")
    assert schedule.phases[schedule.index_at(start)].key == "storm"
    assert schedule.phases[schedule.index_at(start - 0.01)].key == "morning"
    assert end - start == pytest.approx(0.28 * 110.0)


def test_default_timing_is_production_in_seconds_instead_of_minutes() -> None:
    timing = Timing.for_day(DEFAULT_DAY_SECONDS)
    assert (timing.interval_s, timing.window_s, timing.hold_s, timing.recovery_hold_s) == (1.0, 5.0, 4.0, 6.0)
    assert (timing.probe_after_s, timing.min_volume, timing.retry_delay_s) == (10.0, 6, 2.0)
    # The daemon's own rule parser accepts the table; only the times differ from the built-in rule.
    (rule,) = rules_from_mapping({"degraded-mode": timing.rule()})
    (builtin,) = rules_from_mapping({})
    assert (rule.threshold, rule.recovery_threshold) == (builtin.threshold, builtin.recovery_threshold)
    assert (rule.numerator, rule.denominator, rule.actions) == (builtin.numerator, builtin.denominator, builtin.actions)
    assert (rule.window_s, rule.hold_s, rule.recovery_hold_s) == (5.0, 4.0, 6.0)


@pytest.mark.parametrize("day", [20.0, 30.0, 60.0, 110.0, 600.0])
def test_short_days_keep_windows_that_span_several_scrapes(day: float) -> None:
    timing = Timing.for_day(day)
    assert 0.5 <= timing.interval_s <= 1.0
    assert timing.window_s >= 4 * timing.interval_s - 1e-9
    assert timing.hold_s >= 2 * timing.interval_s - 1e-9
    assert timing.probe_after_s >= 2 * timing.window_s - 1e-9
    assert timing.min_volume >= 4
    assert timing.retry_delay_s >= 0.5
    storm_seconds = 0.28 * day
    assert timing.window_s + timing.hold_s + 2 * timing.interval_s < storm_seconds  # it can engage in the storm
