"""Fleet mode: the daemon decides from a Prometheus-compatible query API (a fake one, over real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from tests.support.constants import PRO
from tests.support.http import LoopbackServer, Reply, Request


class FakePrometheus:
    """Answers `sum by (model, code, error_class) (increase(nbmon_requests_total[W]))` from a settable share."""

    def __init__(self) -> None:
        self.share_503, self.down = 0.0, False
        self.queries: list[str] = []
        self.server = LoopbackServer(self._respond)
        self.url = self.server.url

    def _respond(self, request: Request) -> Reply:
        self.queries.append(request.query.get("query", [""])[0])
        if self.down:
            return Reply(503)
        total = 1000.0
        vector = [
            {
                "metric": {"model": PRO, "code": "503", "error_class": "overloaded"},
                "value": [0, str(total * self.share_503)],
            },
            {
                "metric": {"model": PRO, "code": "200", "error_class": "ok"},
                "value": [0, str(total * (1 - self.share_503))],
            },
        ]
        return Reply.json({"status": "success", "data": {"resultType": "vector", "result": vector}})

    def stop(self) -> None:
        self.server.close()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    yield fake
    fake.stop()


def test_fleet_ratio_from_promql(tmp_path: Path, prometheus: FakePrometheus) -> None:
    clock = [0.0]
    config = from_mapping(
        {
            "source": {"kind": "promql", "promql_url": prometheus.url},
            "state": {"path": str(tmp_path / "s.json")},
            "rules": {"degraded-mode": {"hold_s": "30s", "recovery_hold_s": "30s"}},
        }
    )
    daemon = Daemon(config, monotonic=lambda: clock[0])
    try:
        daemon.evaluate()
        assert "increase(nbmon_requests_total[1m])" in prometheus.queries[-1]
        prometheus.share_503 = 0.5
        for _ in range(4):
            clock[0] += 15
            daemon.evaluate()
        assert daemon.store.effective().value is True
        assert daemon.ready()[0]
        prometheus.down = True  # the query API fails: no data, the state holds
        clock[0] += 15
        daemon.evaluate()
        assert daemon.store.effective().value is True
        assert daemon.evaluator.state("degraded-mode").no_data
        prometheus.down, prometheus.share_503 = False, 0.0
        for _ in range(4):
            clock[0] += 15
            daemon.evaluate()
        assert daemon.store.effective().value is False
    finally:
        daemon.stop()
