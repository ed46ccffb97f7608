"""Holds complete on the tick they are due, whatever the scheduling jitter (issue #15, point 10)."""

from __future__ import annotations

from pathlib import Path

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.signals import Reading, Series
from tests.support.constants import PRO

OK, FAIL = Series(PRO, "200", "ok"), Series(PRO, "503", "overloaded")


class Storm:
    """An app doing 20 requests per second, half of them 503 from t = 0.5 s."""

    name = "storm"

    def __init__(self) -> None:
        self.now = 0.0
        self.values = {OK: 0.0, FAIL: 0.0}
        self._last = 0.0

    def read(self) -> Reading:
        elapsed, self._last = self.now - self._last, self.now
        share = 0.5 if self.now >= 0.5 else 0.0
        self.values[FAIL] += 20 * elapsed * share
        self.values[OK] += 20 * elapsed * (1 - share)
        return Reading(at=self.now, values=dict(self.values))


def fired_at(tmp_path: Path, jitter: list[float], *, scheduled: bool) -> float:
    """Ticks due every second; each evaluation's thread gets the lock `jitter[i]` seconds late."""
    storm = Storm()
    config = from_mapping(
        {
            "state": {"path": str(tmp_path / f"state-{scheduled}.json")},
            "source": {"interval": "1s"},
            "evaluation": {"interval": "1s"},
            "rules": {"degraded-mode": {"window_s": "2s", "hold_s": "4s", "min_volume": 5}},
        }
    )
    daemon = Daemon(config, source=storm, monotonic=lambda: storm.now)
    for tick in range(len(jitter)):
        storm.now = float(tick)
        daemon.read_source()
        storm.now = tick + jitter[tick]  # the evaluation runs a little after its due time
        transitions = daemon.evaluate_tick() if scheduled else daemon.evaluate()
        if any(t.to_state.value == "firing" for t in transitions):
            return float(tick)
    raise AssertionError("never fired")


def test_a_late_first_evaluation_no_longer_delays_the_hold_by_a_tick(tmp_path: Path) -> None:
    # Pending is entered at the tick due at 1 s, which ran 12 ms late; the tick due at 5 s runs on time.
    jitter = [0.0, 0.012, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert fired_at(tmp_path, jitter, scheduled=False) == 6.0  # read from the clock: 3.988 s < 4 s, a tick late
    assert fired_at(tmp_path, jitter, scheduled=True) == 5.0  # at the due time: exactly when the hold is reached


def test_jitter_in_every_tick_still_fires_on_the_due_tick(tmp_path: Path) -> None:
    jitter = [0.004, 0.019, 0.011, 0.002, 0.017, 0.0, 0.009, 0.013, 0.001, 0.008]
    assert fired_at(tmp_path, jitter, scheduled=True) == 5.0
