"""Fault profiles, pure: proportions, determinism, the hourly curve, scenario phases and spec errors."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from monitor.simulator import BUILTIN_SCENARIOS, OUTCOMES, Draw, HourlyProfile, Profile, SimOutcome, parse_profile
from tests.support.constants import FLASH, PRO

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def run(profile: Profile, n: int, model: str = PRO, elapsed: float = 0.0, start: datetime = NOON) -> list[SimOutcome]:
    return [profile.pick(Draw(i, model, elapsed, start)) for i in range(n)]


def test_mix_proportions_are_within_statistical_bounds() -> None:
    counts = Counter(run(parse_profile("mix:overloaded=0.4,rate_limited=0.05"), 2000))
    # Binomial sd at n=2000: ~11 for p=0.4, ~4.9 for p=0.05; allow about four sd.
    assert 800 - 45 <= counts[SimOutcome.OVERLOADED] <= 800 + 45
    assert 100 - 20 <= counts[SimOutcome.RATE_LIMITED] <= 100 + 20
    assert counts[SimOutcome.OK] == 2000 - counts[SimOutcome.OVERLOADED] - counts[SimOutcome.RATE_LIMITED]


def test_same_seed_same_sequence_and_other_seed_differs() -> None:
    spec = {"kind": "mix", "weights": {"overloaded": 0.3, "server_error": 0.1}, "seed": 7}
    first = run(parse_profile(spec), 300)
    assert first == run(parse_profile(spec), 300)
    assert first != run(parse_profile({**spec, "seed": 8}), 300)


def test_seed_argument_is_the_default_for_specs_without_one() -> None:
    text = "mix:overloaded=0.5"
    assert run(parse_profile(text, seed=3), 200) == run(parse_profile(text + ",seed=3"), 200)
    assert parse_profile(text, seed=3).seed == 3
    assert parse_profile({"kind": "mix", "weights": {}, "seed": 5}, seed=3).seed == 5


def test_mix_per_model_weights() -> None:
    profile = parse_profile({"kind": "mix", "weights": {"overloaded": 1.0}, "models": {"flash": {"rate_limited": 1.0}}})
    assert set(run(profile, 20, model=FLASH)) == {SimOutcome.RATE_LIMITED}
    assert set(run(profile, 20, model=PRO)) == {SimOutcome.OVERLOADED}


def test_hourly_curve_peaks_at_noon_utc_and_is_quiet_at_3() -> None:
    hourly = HourlyProfile()
    assert hourly.share(12) == pytest.approx(0.45)
    assert hourly.share(3) == pytest.approx(0.08)
    assert all(hourly.share(h) <= 0.08 for h in range(6))
    assert all(0.24 <= hourly.share(h) <= 0.31 for h in range(15, 22))
    assert hourly.share(12, FLASH) == pytest.approx(0.45 * 0.15)


def test_hourly_draws_follow_the_wall_clock_hour() -> None:
    profile = parse_profile("hourly")
    at_noon = Counter(run(profile, 2000, start=NOON))[SimOutcome.OVERLOADED]
    at_three = Counter(run(profile, 2000, start=NOON.replace(hour=3)))[SimOutcome.OVERLOADED]
    assert 900 - 90 <= at_noon <= 900 + 90
    assert 160 - 50 <= at_three <= 160 + 50


def test_hourly_speed_sweeps_simulated_time() -> None:
    profile = HourlyProfile(speed=720, start_hour=3)  # one simulated hour every 5 seconds
    assert profile.hour_at(Draw(0, PRO, 0.0, NOON)) == pytest.approx(3)
    assert profile.hour_at(Draw(0, PRO, 45.0, NOON)) == pytest.approx(12)
    assert profile.hour_at(Draw(0, PRO, 5 * 24, NOON)) == pytest.approx(3)  # wraps after a simulated day
    text = parse_profile("hourly:peak=0.5,speed=720,start_hour=3")
    assert isinstance(text, HourlyProfile) and (text.peak, text.speed, text.start_hour) == (0.5, 720, 3)


def test_scenario_advances_by_request_count() -> None:
    profile = parse_profile(
        {
            "kind": "scenario",
            "phases": [
                {"outcome": "overloaded", "requests": 2},
                {"outcome": "rate_limited", "requests": 1},
                {"outcome": "ok"},
            ],
        }
    )
    assert [o.value for o in run(profile, 5)] == ["overloaded", "overloaded", "rate_limited", "ok", "ok"]


def test_scenario_advances_by_fake_clock_and_can_loop() -> None:
    profile = parse_profile(
        {
            "kind": "scenario",
            "phases": [{"outcome": "ok", "seconds": 10}, {"outcome": "overloaded", "seconds": 5}],
            "loop": True,
        }
    )
    times = [0, 9.9, 10, 14.9, 15, 24.9, 25, 31]  # a 15 s cycle: ok for 10 s, overloaded for 5 s
    picks = [profile.pick(Draw(i, PRO, t, NOON)).value for i, t in enumerate(times)]
    assert picks == ["ok", "ok", "overloaded", "overloaded", "ok", "ok", "overloaded", "ok"]
    profile.reset()
    assert profile.pick(Draw(0, PRO, 0, NOON)) is SimOutcome.OK


def test_builtin_scenarios() -> None:
    assert set(BUILTIN_SCENARIOS) == {
        "outage",
        "rate_limit_burst",
        "daily_quota",
        "blocks",
        "flaky_gateway",
        "stream_errors",
        "slow",
    }
    blocks = run(parse_profile("scenario:blocks"), 7)
    assert [o.value for o in blocks] == [
        "safety_block", "prompt_block", "policy_block", "recitation", "no_image", "no_image_stop", "safety_block"
    ]  # fmt: skip
    quota = run(parse_profile("scenario:daily_quota"), 40)
    assert set(quota[:25]) == {SimOutcome.OK} and set(quota[25:]) == {SimOutcome.QUOTA_EXHAUSTED}
    outage = parse_profile("scenario:outage")
    assert [outage.pick(Draw(i, PRO, t, NOON)) for i, t in enumerate([1, 30, 500])] == [
        SimOutcome.OK, SimOutcome.OVERLOADED, SimOutcome.OK
    ]  # fmt: skip


def test_fixed_and_sequence() -> None:
    assert set(run(parse_profile("fixed:safety_block"), 5)) == {SimOutcome.SAFETY_BLOCK}
    sequence = parse_profile("sequence:overloaded,overloaded,ok,then=rate_limited")
    assert [o.value for o in run(sequence, 5)] == ["overloaded", "overloaded", "ok", "rate_limited", "rate_limited"]


@pytest.mark.parametrize(
    "text",
    [
        "fixed:ok",
        "sequence:overloaded,ok",
        "mix:overloaded=0.4,rate_limited=0.05",
        "hourly:peak=0.5,speed=720",
        "scenario:outage",
    ],
)
def test_spec_roundtrip(text: str) -> None:
    profile = parse_profile(text)
    again = parse_profile(profile.spec())
    assert again.spec() == profile.spec()
    assert run(again, 50, elapsed=25) == run(parse_profile(text), 50, elapsed=25)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mix:overloaded=1.5", "profile.weights.overloaded: must be between 0 and 1"),
        ("mix:overloaded=-0.1", "profile.weights.overloaded: must be between 0 and 1"),
        ("mix:overloaded=0.7,rate_limited=0.4", "profile.weights: weights sum to 1.1, must be at most 1"),
        ("mix:meltdown=0.1", "profile.weights.meltdown: unknown outcome 'meltdown'; valid outcomes: ok, overloaded"),
        ("mix:overloaded=lots", "profile.weights.overloaded: must be a number"),
        ("fixed:meltdown", "profile.outcome: unknown outcome 'meltdown'"),
        ("sequence:ok,nope", "profile.outcomes[1]: unknown outcome 'nope'"),
        ("scenario:nope", "profile.name: unknown scenario 'nope'; built-in scenarios: outage"),
        ("hourly:peak=2", "profile.peak: must be between 0 and 1"),
        ("hourly:peak=0.1,offpeak=0.2", "profile.offpeak: must not exceed profile.peak"),
        ("chaos", "profile.kind: must be one of fixed, sequence, mix, hourly, scenario"),
        ({"kind": "fixed", "outcome": "ok", "colour": "red"}, "profile.colour: unknown key"),
        ({"kind": "mix", "weights": {}, "seed": -1}, "profile.seed: must be an integer >= 0"),
        ({"kind": "scenario", "phases": []}, "profile.phases: must be a non-empty list"),
        (
            {"kind": "scenario", "phases": [{"outcome": "ok"}, {"outcome": "overloaded"}]},
            "profile.phases[0]: needs 'requests' or 'seconds'",
        ),
        ({"kind": "scenario", "phases": [{"outcome": "ok", "weights": {}}]}, "profile.phases[0]: needs exactly one"),
        (
            {"kind": "scenario", "phases": [{"outcome": "ok", "requests": 0}]},
            "profile.phases[0].requests: must be an integer >= 1",
        ),
        (
            {"kind": "scenario", "phases": [{"outcome": "ok", "requests": 1}], "loop": True, "name": 3},
            "profile.name: must be a string",
        ),
        ('{"kind": ', "profile: invalid JSON"),
    ],
)
def test_bad_specs_name_the_key_at_fault(spec: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_profile(spec)
    assert str(caught.value).startswith(message)


def test_outcome_names_are_stable() -> None:
    assert OUTCOMES[:3] == ("ok", "overloaded", "server_error")
    assert {"reset", "slow", "stream_error", "thought_only", "unknown_finish", "quota_exhausted"} <= set(OUTCOMES)
