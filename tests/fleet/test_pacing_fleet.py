"""Issue #18's pacing proof: 3 processes x 4 threads against one simulator enforcing 30 requests per rolling
minute. With the Redis-shared pacer: no 429 at all, and the window is used in full (throughput within 5% of
30/min). The same load without the pacer: 429s, counted by the simulator.

Throughput over a rolling window is measured as Google counts it: the i-th success and the (i - 30)-th must be a
window apart (else a 429), and full use means they are not much more than that. 30 / (their mean distance) is
the sustained rate, whatever the burst at the start.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from monitor.simulator import SimulatorServer
from tests.support.constants import PRO, ROOT
from tests.support.redis import RedisServer

RPM, PROCESSES, THREADS = 30, 3, 4


def run_fleet(sim: SimulatorServer, redis_url: str | None, seconds: float, tmp: Path) -> list[dict[str, Any]]:
    until = time.time() + seconds
    outs = [tmp / f"worker-{i}-{'paced' if redis_url else 'bare'}.json" for i in range(PROCESSES)]
    command = [sys.executable, "-m", "tests.fleet.pacing_worker", "--sim", sim.url, "--until", repr(until)]
    command += ["--rpm", str(RPM), "--replicas", str(PROCESSES), "--threads", str(THREADS)]
    if redis_url:
        command += ["--redis", redis_url]
    workers = [subprocess.Popen([*command, "--out", str(out)], cwd=ROOT) for out in outs]
    try:
        for worker in workers:
            assert worker.wait(timeout=seconds + 60) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    return [json.loads(out.read_text()) for out in outs]


def sustained_rpm(done: list[float]) -> float:
    gaps = [done[i] - done[i - RPM] for i in range(RPM, len(done))]
    assert gaps, f"only {len(done)} successes: the run never reached a second window"
    return RPM * 60 / statistics.mean(gaps)


def test_three_processes_of_four_threads_stay_under_30_rpm_and_use_it_all(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    with SimulatorServer(rpm_limits={PRO: RPM}, rpm_window_s=60.0, latency=0.05) as sim:
        started = time.monotonic()
        paced = run_fleet(sim, redis_server.url, 90.0, tmp_path)
        paced_s = time.monotonic() - started
        paced_stats = sim.stats()
        done = sorted(t for worker in paced for t in worker["ok_at"])
        rate = sustained_rpm(done)
        print(
            f"paced: {len(done)} ok in {paced_s:.1f}s, 429s {paced_stats['rpm_rejected']}, sustained {rate:.2f}/min, "
            f"outcomes {[w['outcomes'] for w in paced]}, waited {[w['waited_s'] for w in paced]}"
        )
        assert paced_stats["rpm_rejected"] == {}
        assert paced_stats["by_status"].get("429", 0) == 0
        assert all(w["degraded"] == 0 for w in paced)
        assert abs(rate - RPM) <= 0.05 * RPM
        assert len(done) >= 2 * RPM  # two full windows were used

        sim.reset()  # the same load, no pacer: the window overflows at once
        bare = run_fleet(sim, None, 8.0, tmp_path)
        bare_stats = sim.stats()
        print(f"bare: 429s {bare_stats['rpm_rejected']}, outcomes {[w['outcomes'] for w in bare]}")
        assert bare_stats["rpm_rejected"].get(PRO, 0) > 0
        assert bare_stats["by_status"]["429"] == bare_stats["rpm_rejected"][PRO]
