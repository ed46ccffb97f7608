"""A fleet on a real Prometheus (Debian's, unpacked into .tools/ by `make test`): three app replicas, each its own
process with `instrument()` and the real SDK calling its own simulator, scraped every second; three sidecars with
the PromQL source, as in deploy/kubernetes. One decision for the fleet: with a storm on the primary the three flags
turn on together, and with a storm on one replica only the fleet-wide ratio decides, not that replica's.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.simulator import SimulatorServer
from tests.support import tools
from tests.support.constants import PRO, ROOT
from tests.support.http import free_port
from tests.support.wait import wait_for

REPLICAS = 3
RATE = 15.0  # calls per second per replica, two in three to the primary: ~30 primary calls a second in the fleet
SCRAPE_S = 1.0  # Prometheus' scrape interval
EVAL_S = 0.5  # the sidecars' evaluation interval
WINDOW_S, HOLD_S = 6.0, 4.0  # the degraded-mode rule, shortened from 1m and 5m
THRESHOLD = 0.30  # the rule's default
FLEET_STORM = 0.45
# A steady storm of share s pulls a window's ratio over the threshold once threshold/s of the window is storm; then
# the hold; then Prometheus' lag: the last scrape (one interval) and the 503 series, new at the storm, whose first
# sample increase() cannot count (one more); then the sidecars' lag: they ask for the instant on the evaluation grid
# half to one and a half intervals back (monitor.sources.promql), at a tick up to one interval later.
FILL_S = WINDOW_S * THRESHOLD / FLEET_STORM
BOUND_S = FILL_S + HOLD_S + 2 * SCRAPE_S + 2.5 * EVAL_S
JITTER_S = 0.2  # scheduling on a shared 2-core machine, between a tick's due time and its flag write


def ratio_expr(by: str = "") -> str:
    """The 503 ratio of the primary over the rule's window, as PromQL: the fleet's, or per `by` label."""
    calls, storms = (
        f'sum{by}(increase(nbmon_requests_total{{model="{PRO}"{code}}}[{WINDOW_S:g}s]))' for code in ("", ',code="503"')
    )
    return f"({storms} or {calls} * 0) / {calls}"  # a replica with no 503 series is at 0, not missing


@dataclass
class Fleet:
    prometheus: str  # the query API's base URL
    simulators: list[SimulatorServer]  # one per replica: a storm can hit one replica only
    targets: list[str]  # each replica's /metrics


def query(fleet: Fleet, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{fleet.prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def ratio_range(fleet: Fleet, expr: str, start: float, end: float, step: float = 0.1) -> list[tuple[float, float]]:
    """(unix time, value) of `expr` every `step` seconds, evaluated afterwards on what Prometheus stored."""
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    body = httpx.get(f"{fleet.prometheus}/api/v1/query_range", params=params, timeout=10).json()
    assert body["status"] == "success", body
    series = body["data"]["result"]
    return [(float(t), float(v)) for t, v in series[0]["values"]] if series else []


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    simulators = [SimulatorServer(profile="fixed:ok").start() for _ in range(REPLICAS)]
    replicas: list[subprocess.Popen[str]] = []
    prometheus: subprocess.Popen[bytes] | None = None
    try:
        for simulator in simulators:
            command = [sys.executable, "-m", "tests.fleet.promql_replica", simulator.url, str(RATE)]
            replicas.append(
                subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            )
        targets: list[str] = []
        for replica in replicas:
            assert replica.stdout is not None
            served = replica.stdout.readline().strip()  # its /metrics port, once instrumented and serving
            assert served.isdigit(), f"a replica exited before serving /metrics: {replica.poll()}"
            targets.append(f"127.0.0.1:{served}")
        config = {
            "global": {"scrape_interval": f"{SCRAPE_S:g}s"},
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": targets}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        with (tmp_path / "prometheus.log").open("wb") as log:
            prometheus = subprocess.Popen(
                [
                    tools.prometheus(),
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=log,
            )
        found = Fleet(f"http://127.0.0.1:{port}", simulators, [f"http://{t}/metrics" for t in targets])

        def calm_window() -> bool:
            assert prometheus is not None and prometheus.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{found.prometheus}/-/ready", timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
            # A full window of calm traffic from every replica: the storm then starts from 0%.
            counts = query(found, f'count_over_time(nbmon_requests_total{{model="{PRO}"}}[{WINDOW_S:g}s])')
            return len(counts) == REPLICAS and all(float(c["value"][1]) >= WINDOW_S / SCRAPE_S - 1 for c in counts)

        wait_for(calm_window, timeout=30, interval=0.2, what="a calm window of the three replicas in Prometheus")
        yield found
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=10)
        for replica in replicas:
            replica.terminate()
            replica.wait(timeout=10)
            if replica.stdin:
                replica.stdin.close()
            if replica.stdout:
                replica.stdout.close()
        for simulator in simulators:
            simulator.stop()


@pytest.fixture
def sidecars() -> Iterator[list[Daemon]]:
    """The daemons a test starts; all stopped at the end."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def sidecar(tmp_path: Path, started: list[Daemon], name: str, source: dict[str, Any]) -> Daemon:
    config = from_mapping(
        {
            "listen": {"port": 0},
            "source": source,
            "evaluation": {"interval": f"{EVAL_S:g}s"},
            "state": {"path": str(tmp_path / f"{name}.json")},
            "rules": {"degraded-mode": {"window_s": WINDOW_S, "hold_s": HOLD_S, "probe_after_s": "off"}},
        }
    )
    daemon = Daemon(config)
    daemon.start()
    started.append(daemon)
    return daemon


def promql_sidecars(tmp_path: Path, started: list[Daemon], fleet: Fleet) -> list[Daemon]:
    daemons = [
        sidecar(tmp_path, started, f"promql-{i}", {"kind": "promql", "promql_url": fleet.prometheus})
        for i in range(REPLICAS)
    ]

    def deciding() -> bool:  # every sidecar has read the fleet's calm ratio
        statuses = [d.rule_statuses()["degraded-mode"] for d in daemons]
        return all(s.ratio == 0 and not s.insufficient_data for s in statuses)

    wait_for(deciding, timeout=10, what="the sidecars' first evaluations with data")
    return daemons


def flag(daemon: Daemon) -> bool:
    """The flag as the app reads it: OFREP over HTTP."""
    response = httpx.post(f"{daemon.url}/ofrep/v1/evaluate/flags/degraded-mode", json={"context": {}}, timeout=5)
    value = response.json()["value"]
    assert isinstance(value, bool)
    return value


def storm(simulator: SimulatorServer, share: float) -> None:
    simulator.set_profile({"kind": "mix", "weights": {}, "models": {"pro": {"overloaded": share}}})


def test_a_storm_on_the_primary_turns_the_three_flags_on_together(
    fleet: Fleet, sidecars: list[Daemon], tmp_path: Path
) -> None:
    daemons = promql_sidecars(tmp_path, sidecars, fleet)
    started = datetime.now(UTC)
    for simulator in fleet.simulators:
        storm(simulator, FLEET_STORM)
    wait_for(
        lambda: all(d.store.state.degraded for d in daemons), timeout=BOUND_S + 10, interval=0.1, what="three flags"
    )
    flips = [(d.store.state.since - started).total_seconds() for d in daemons]
    t0, ended = started.timestamp(), time.time()
    # When the fleet's ratio first went over the threshold, to 0.1 s, from what Prometheus stored (evaluated now:
    # a scrape still in flight when a sidecar asked may count here, so this is the sidecars' view to a sample).
    crossing = next(t for t, v in ratio_range(fleet, ratio_expr(), t0, ended) if v > THRESHOLD) - t0
    spread = max(flips) - min(flips)
    figures = {tuple(t["ratio"] for t in d.state()["transitions"]) for d in daemons}
    scrape = max(float(r["value"][1]) for r in query(fleet, "max_over_time(scrape_duration_seconds[1m])"))
    print(
        f"\nstorm {FLEET_STORM:.0%} on {PRO}, {REPLICAS} replicas: fleet ratio over {THRESHOLD:.0%} at"
        f" +{crossing:.2f}s, flags on {min(flips) - crossing:.2f}-{max(flips) - crossing:.2f}s later;"
        f" flags on at {', '.join(f'+{f:.2f}s' for f in sorted(flips))};"
        f" spread {spread:.3f}s (bound {EVAL_S:g}s + {JITTER_S:g}s jitter); delay {max(flips):.2f}s"
        f" (bound {BOUND_S:.2f}s = {FILL_S:g} fill + {HOLD_S:g} hold + 2 x {SCRAPE_S:g} scrape + 2.5 x {EVAL_S:g}"
        f" evaluation); transitions' ratios per sidecar {sorted(figures)}; slowest scrape {scrape * 1000:.0f} ms"
    )
    assert all(flag(d) for d in daemons)
    assert spread <= EVAL_S + JITTER_S
    assert max(flips) <= BOUND_S
    # The hold ran from when the fleet was over the threshold (the grid instant may be half a step early), and no
    # longer than it takes the grid to reach that moment, plus a scrape for the sawtooth dipping back once.
    late = HOLD_S + SCRAPE_S + 2.5 * EVAL_S + JITTER_S
    assert all(HOLD_S - EVAL_S <= flip - crossing <= late for flip in flips), (crossing, flips)
    assert len(figures) == 1, figures  # one fleet-wide ratio: the same figures in every sidecar's transitions


def test_a_storm_on_one_replica_is_decided_by_the_fleet_ratio_not_the_replicas(
    fleet: Fleet, sidecars: list[Daemon], tmp_path: Path
) -> None:
    daemons = promql_sidecars(tmp_path, sidecars, fleet)
    # The contrast: a sidecar that reads only the stormy replica, as a per-pod `scrape` sidecar does.
    alone = sidecar(
        tmp_path, sidecars, "scrape", {"kind": "scrape", "targets": [fleet.targets[0]], "interval": f"{EVAL_S:g}s"}
    )
    wait_for(lambda: alone.rule_statuses()["degraded-mode"].ratio == 0, timeout=10, what="the scrape sidecar's data")
    started = datetime.now(UTC)
    storm(fleet.simulators[0], 0.60)  # 60% there, 0% on the other two: ~20% for the fleet
    wait_for(lambda: alone.store.state.degraded, timeout=BOUND_S + 10, interval=0.1, what="the replica's own flag")
    # Past the time the fleet sidecars would have taken had the fleet been over the threshold.
    remaining = BOUND_S - (datetime.now(UTC) - started).total_seconds()
    deadline = time.monotonic() + max(remaining, 0.0)
    seen: list[float] = []
    while time.monotonic() < deadline:
        assert not any(d.store.state.degraded for d in daemons)
        seen.extend(s.ratio for d in daemons if (s := d.rule_statuses()["degraded-mode"]).ratio is not None)
        time.sleep(0.1)
    ended = time.time()
    fleet_ratios = [v for _, v in ratio_range(fleet, ratio_expr(), started.timestamp(), ended)]
    replica_ratios = sorted(float(r["value"][1]) for r in query(fleet, ratio_expr(" by (instance) ")))
    flip = (alone.store.state.since - started).total_seconds()
    print(
        f"\nstorm 60% on one replica of {REPLICAS}: per replica {', '.join(f'{r:.0%}' for r in replica_ratios)};"
        f" the replica's own sidecar on at +{flip:.2f}s; fleet ratio"
        f" up to {max(fleet_ratios):.1%};"
        f" the fleet sidecars read {min(seen):.1%}-{max(seen):.1%} and stayed off for {BOUND_S:.1f}s"
    )
    assert flag(alone)
    assert not any(flag(d) for d in daemons)
    assert replica_ratios[-1] > THRESHOLD  # the stormy replica alone is over the threshold ...
    assert max(fleet_ratios) < THRESHOLD  # ... the fleet never was
    assert 0.1 < statistics.median(seen) < THRESHOLD
