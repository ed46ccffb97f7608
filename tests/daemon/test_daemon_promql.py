"""Fleet mode: the daemon decides from a Prometheus-compatible query API (a fake one, over real HTTP)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping

PRO = "gemini-3-pro-image"


class FakePrometheus:
    """Answers `sum by (model, code, error_class) (increase(nbmon_requests_total[W]))` from a settable share."""

    def __init__(self) -> None:
        self.share_503, self.queries, self.down = 0.0, [], False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query).get("query", [""])[0]
                outer.queries.append(query)
                if outer.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                total = 1000.0
                vector = [
                    {
                        "metric": {"model": PRO, "code": "503", "error_class": "overloaded"},
                        "value": [0, str(total * outer.share_503)],
                    },
                    {
                        "metric": {"model": PRO, "code": "200", "error_class": "ok"},
                        "value": [0, str(total * (1 - outer.share_503))],
                    },
                ]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": vector}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
