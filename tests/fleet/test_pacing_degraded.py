"""Redis dies mid-run: calls go on, paced per process at limit / replicas (after a window counted full: no burst
across the switch), and the metrics say so; back when it is."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.generator import ImageGenerator
from monitor.pacing import ConfiguredLimits, FallbackWindow, Pacer, PacingMetrics
from monitor.pacing.redis_window import RedisWindow
from monitor.simulator import SimulatorServer
from tests.support.constants import PRO
from tests.support.redis import RedisServer
from tests.support.shim import genai_client

WINDOW, LIMIT, REPLICAS = 1.0, 6, 3


def grants_in_one_window(pacer: Pacer) -> list[float]:
    """Send times granted from now until a window from now (acquire, sleep, repeat)."""
    start, sent = time.monotonic(), list[float]()
    while True:
        decision = pacer.acquire(PRO, max_wait_s=5)
        assert decision.admitted
        time.sleep(decision.wait_s)
        if time.monotonic() - start >= WINDOW:
            return sent
        sent.append(time.monotonic() - start)


def test_a_dead_redis_degrades_to_per_process_limits_and_recovers(
    redis_server: RedisServer, tmp_path: Path, registry: CollectorRegistry
) -> None:
    client = redis_server.client()
    metrics = PacingMetrics.for_registry(registry)
    window = FallbackWindow(RedisWindow(client), replicas=REPLICAS, metrics=metrics, retry_s=0.3)
    pacer = Pacer(ConfiguredLimits({PRO: {"rpm": LIMIT}}), window, window_s=WINDOW, margin_s=0, registry=registry)
    assert len(grants_in_one_window(pacer)) == LIMIT  # the shared window: the whole limit
    assert registry.get_sample_value("nbmon_pacing_degraded") == 0

    redis_server.kill()
    time.sleep(WINDOW)  # what the shared window held has left it (Google's may not have: this process cannot know)
    switch = time.monotonic()
    full = pacer.acquire(PRO, max_wait_s=0)  # the switch: the local window starts full, for one window
    assert not full.admitted and full.retry_after_s is not None
    assert full.retry_after_s <= WINDOW and full.retry_after_s >= WINDOW - (time.monotonic() - switch) - 0.01
    assert registry.get_sample_value("nbmon_pacing_degraded") == 1
    time.sleep(full.retry_after_s)
    assert len(grants_in_one_window(pacer)) == LIMIT // REPLICAS  # then per process, never blocked
    assert (registry.get_sample_value("nbmon_pacing_redis_errors_total") or 0) >= 1

    with SimulatorServer() as sim:  # the app's calls go on while Redis is down
        generator = ImageGenerator(
            genai_client(sim.url), primary_model=PRO, fallback=False, config=ShimConfig(), pacer=pacer
        )
        started = time.monotonic()
        assert generator.generate("a banana", deadline_s=30).served_model == PRO
        assert time.monotonic() - started < WINDOW + 1

    with RedisServer(tmp_path / "again", port=redis_server.port):  # the same address, a new Redis
        time.sleep(0.4)  # past retry_s: the next call asks Redis again
        assert pacer.acquire(PRO, max_wait_s=5).admitted
        assert registry.get_sample_value("nbmon_pacing_degraded") == 0
        assert not window.degraded
    client.close()


def test_after_retry_s_one_caller_probes_a_hanging_redis_and_the_others_pace_locally(
    registry: CollectorRegistry,
) -> None:
    import socket
    import threading

    from monitor.fleet.redis_client import connect
    from monitor.fleet.settings import FleetSettings

    hanging = socket.socket()  # accepts connections (the kernel's backlog), never answers: each command times out
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(64)
    timeout = 0.5
    client = connect(FleetSettings(redis_url=f"redis://127.0.0.1:{hanging.getsockname()[1]}/0", timeout_s=timeout))
    metrics = PacingMetrics.for_registry(registry)
    window = FallbackWindow(RedisWindow(client), replicas=1, metrics=metrics, retry_s=0.2)
    pacer = Pacer(ConfiguredLimits({PRO: {"rpm": 1000}}), window, window_s=0.2, margin_s=0, registry=registry)
    assert pacer.acquire(PRO).admitted  # the first failure: one timeout
    assert registry.get_sample_value("nbmon_pacing_redis_errors_total") == 1
    time.sleep(0.5)  # past retry_s (and the seeded window): the next callers may probe
    took: list[float] = []

    def caller() -> None:
        started = time.monotonic()
        assert pacer.acquire(PRO).admitted
        took.append(time.monotonic() - started)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.get_sample_value("nbmon_pacing_redis_errors_total") == 2  # exactly one probe paid the timeout
    assert sorted(took)[-2] < timeout / 2  # the others went on at once, on the local window
    client.close()
    hanging.close()
