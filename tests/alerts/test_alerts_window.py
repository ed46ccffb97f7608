"""CounterWindow: increases over a window from cumulative readings, Prometheus-style, and coverage."""

from __future__ import annotations

import math

import pytest

from monitor.alerts import CounterWindow
from monitor.signals import Reading, Series

OK = Series("pro", "200", "ok")
BUSY = Series("pro", "503", "overloaded")


def window_of(*readings: tuple[float, dict[Series, float]], max_age_s: float = 3600.0) -> CounterWindow:
    window = CounterWindow(max_age_s)
    for at, values in readings:
        assert window.add(Reading(at=at, values=values))
    return window


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([0, 10, 25, 25, 40], 40, id="plain deltas"),
        pytest.param([100, 120, 5, 10, 12], 20 + 5 + 5 + 2, id="reset counts the new value"),
        pytest.param([100, 120, 0, 0, 3], 20 + 3, id="reset to zero"),
        pytest.param([100, None, 150, 160, 170], 20, id="missing series resumes from its next value"),
        pytest.param([None, None, 7, 9, 12], 5, id="new series: first value is a baseline"),
        pytest.param([10, math.nan, 20, -1, 30], 0, id="garbage values count as missing"),
    ],
)
def test_increase_over_the_window(values: list[float | None], expected: float) -> None:
    readings = [(15.0 * i, {BUSY: v} if v is not None else {}) for i, v in enumerate(values)]
    window = window_of(*readings)
    assert window.counts(60, 60).get(BUSY, 0.0) == expected


def test_between_complete_readings_a_new_series_counts_from_zero() -> None:
    """An in-process registry is read whole: a series absent before was created since, at 0 (a burst of a new
    error class between two readings is not lost as a baseline). A scrape cannot know that."""
    window = CounterWindow(3600)
    assert window.add(Reading(at=0.0, values={OK: 3.0}, complete=True))
    assert window.add(Reading(at=15.0, values={OK: 4.0, BUSY: 8.0}, complete=True))
    assert window.counts(60, 15) == {OK: 1.0, BUSY: 8.0}
    scraped = window_of((0.0, {OK: 3.0}), (15.0, {OK: 4.0, BUSY: 8.0}))
    assert scraped.counts(60, 15) == {OK: 1.0}
    # After an incomplete reading (a scrape in between), absence says nothing: a baseline again.
    mixed = CounterWindow(3600)
    assert mixed.add(Reading(at=0.0, values={OK: 3.0}))
    assert mixed.add(Reading(at=15.0, values={OK: 4.0, BUSY: 8.0}, complete=True))
    assert mixed.counts(60, 15) == {OK: 1.0}


def test_only_readings_inside_the_window_count() -> None:
    window = window_of(*[(15.0 * i, {OK: 10.0 * i * i}) for i in range(9)])  # 0..120 s: 0, 10, 40, ... 640
    assert window.counts(30, 120) == {OK: 640.0 - 360.0}  # readings at 90, 105, 120
    assert window.counts(30, 60) == {OK: 160.0 - 40.0}  # a window ending before the newest reading
    assert window.counts(20, 120) == {OK: 640.0 - 490.0}  # [100, 120]: the 90 -> 105 step straddles the start


def test_straddling_step_is_left_out() -> None:
    window = window_of((0.0, {OK: 0.0}), (15.0, {OK: 15.0}), (30.0, {OK: 30.0}))
    assert window.counts(20, 30) == {OK: 15.0}  # only 15 -> 30; 0 -> 15 starts before t=10
    assert window.counts(30, 30) == {OK: 30.0}  # the window start is inclusive


def test_series_that_did_not_grow_are_absent() -> None:
    window = window_of((0.0, {OK: 5.0, BUSY: 2.0}), (15.0, {OK: 9.0, BUSY: 2.0}))
    assert window.counts(60, 15) == {OK: 4.0}


def test_failed_readings_are_skipped_and_the_gap_is_bridged() -> None:
    window = CounterWindow(600)
    assert window.add(Reading(at=0.0, values={OK: 0.0}))
    assert not window.add(Reading(at=15.0, values={OK: 999.0}, ok=False, error="connection refused"))
    assert not window.add(Reading(at=30.0, ok=False, error="garbage"))
    assert window.add(Reading(at=45.0, values={OK: 30.0}))
    assert window.counts(60, 45) == {OK: 30.0}
    assert window.coverage(60, 45) == 45.0
    assert window.last_ok_at == 45.0


def test_out_of_order_and_duplicate_readings_are_ignored() -> None:
    window = window_of((0.0, {OK: 0.0}), (15.0, {OK: 10.0}))
    assert not window.add(Reading(at=15.0, values={OK: 50.0}))
    assert not window.add(Reading(at=5.0, values={OK: 1.0}))
    assert window.add(Reading(at=30.0, values={OK: 12.0}))
    assert window.counts(60, 30) == {OK: 12.0}


def test_old_readings_are_pruned() -> None:
    window = window_of(*[(15.0 * i, {OK: float(i)}) for i in range(41)], max_age_s=60.0)  # 0..600 s
    assert len(window) == 5  # 540, 555, 570, 585, 600
    # a window longer than max_age only sees what is kept, and coverage says so
    assert window.counts(600, 600) == {OK: 4.0}
    assert window.coverage(600, 600) == 60.0


@pytest.mark.parametrize(
    ("times", "window_s", "now", "expected"),
    [
        pytest.param([], 60, 100, 0.0, id="no readings"),
        pytest.param([100.0], 60, 100, 0.0, id="one reading spans nothing"),
        pytest.param([0.0, 15.0, 30.0, 45.0, 60.0], 60, 60, 60.0, id="full"),
        pytest.param([30.0, 45.0, 60.0], 60, 60, 30.0, id="started late"),
        pytest.param([0.0, 15.0, 30.0], 60, 200, 0.0, id="stale: all readings before the window"),
        pytest.param([0.0, 15.0, 30.0], 60, 75, 15.0, id="partly stale"),
    ],
)
def test_coverage(times: list[float], window_s: float, now: float, expected: float) -> None:
    window = window_of(*[(at, {OK: 1.0}) for at in times])
    assert window.coverage(window_s, now) == expected


def test_coverage_tells_no_data_from_zero_traffic() -> None:
    quiet = window_of(*[(15.0 * i, {OK: 7.0}) for i in range(5)])
    empty = CounterWindow(600)
    assert quiet.counts(60, 60) == empty.counts(60, 60) == {}
    assert quiet.coverage(60, 60) == 60.0
    assert empty.coverage(60, 60) == 0.0


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
def test_bad_windows_are_rejected(bad: float) -> None:
    window = CounterWindow(600)
    with pytest.raises(ValueError, match="window_s"):
        window.counts(bad, 0)
    with pytest.raises(ValueError, match="window_s"):
        window.coverage(bad, 0)
    with pytest.raises(ValueError, match="max_age_s"):
        CounterWindow(bad)


def test_thousand_series_every_fifteen_seconds() -> None:
    """Size sanity (not a timing assertion): 1,000 series, one hour of readings, four windows."""
    series = [Series(f"model-{i % 10}", str(200 + i % 100), f"class-{i // 100}") for i in range(1000)]
    window = CounterWindow(max_age_s=900)
    for k in range(241):  # 0..3600 s
        window.add(Reading(at=15.0 * k, values={s: float(k * (n % 3)) for n, s in enumerate(series)}))
    assert len(window) == 61
    for window_s in (60, 300, 600, 900):
        counts = window.counts(window_s, 3600)
        steps = int(window_s // 15)
        assert len(counts) == 666  # the 334 series with n % 3 == 0 never grow
        assert counts[series[1]] == steps * 1.0
        assert counts[series[2]] == steps * 2.0
        assert window.coverage(window_s, 3600) == window_s
