"""A real Prometheus (Debian's 2.42, unpacked by `make test`) scrapes a short simulator-driven run of the
instrumented SDK and the daemon; then every PromQL expression in every rule and dashboard panel is run
against it through its HTTP API: all must parse, and the core ones must return data."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import yaml
from google import genai
from google.genai import types
from prometheus_client import CollectorRegistry, start_http_server
from structlog.testing import LogCapture

import monitor
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.simulator import SimulatorServer
from tests.support import tools
from tests.support.constants import FLASH, PRO, ROOT
from tests.support.http import free_port


def expressions() -> list[tuple[str, str]]:
    """(where, expr) for every rule in alerts/ and every panel target in dashboards/."""
    found: list[tuple[str, str]] = []
    for path in sorted((ROOT / "alerts").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((f"{path.name}:{rule.get('alert') or rule.get('record')}", rule["expr"]))
    for path in sorted((ROOT / "dashboards").glob("*.json")):

        def walk(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            for panel in panels:
                yield panel
                yield from walk(panel.get("panels", []))

        for panel in walk(json.loads(path.read_text()).get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    # What Grafana substitutes before sending: its interval and the project variable.
                    expr = target["expr"].replace("$__rate_interval", "1m").replace("$project", ".*")
                    found.append((f"{path.name}:{panel.get('title')}", expr))
    return found


@pytest.fixture
def run_scraped(tmp_path: Path) -> Iterator[str]:
    """Simulator -> instrumented SDK (app /metrics) + daemon (/metrics), both scraped by a real Prometheus."""
    registry = CollectorRegistry()
    monitor.uninstrument()
    monitor.instrument(registry=registry, logger=structlog.wrap_logger(None, processors=[LogCapture()]))
    app_server, app_thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    app_target = f"127.0.0.1:{app_server.server_port}"
    config = from_mapping(
        {
            "listen": {"port": 0},
            "source": {"targets": [f"http://{app_target}/metrics"], "interval": "0.5s"},
            "evaluation": {"interval": "0.5s"},
            "state": {"path": str(tmp_path / "s.json")},
        }
    )
    daemon = Daemon(config)
    daemon.start()
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in sorted((ROOT / "alerts").glob("*.rules.yml"))],
                "scrape_configs": [
                    {"job_name": "app", "static_configs": [{"targets": [app_target]}]},
                    {"job_name": "nbmon", "static_configs": [{"targets": [daemon.url.removeprefix("http://")]}]},
                ],
            }
        )
    )
    prometheus = subprocess.Popen(
        [
            tools.prometheus(),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with SimulatorServer(profile="mix:overloaded=0.4,rate_limited=0.05,safety_block=0.05") as sim:
            client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sim.url))
            config_ = types.GenerateContentConfig(response_modalities=["IMAGE"])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:  # load while Prometheus scrapes every second
                for model in (PRO, PRO, FLASH):
                    with contextlib.suppress(Exception):  # the errors are the signal
                        client.models.generate_content(model=model, contents="x", config=config_)
            client.close()
        yield url
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=10)
        daemon.stop()
        app_server.shutdown()
        app_server.server_close()
        app_thread.join(timeout=5)
        monitor.uninstrument()


def test_every_rule_and_panel_query_runs_on_a_real_prometheus(run_scraped: str) -> None:
    queries = expressions()
    assert queries, "no rules or dashboards found"
    results: dict[str, int] = {}
    for where, expr in queries:
        response = httpx.get(f"{run_scraped}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{where}: {expr}: {body}"
        results[where] = len(body["data"]["result"]) if isinstance(body["data"]["result"], list) else 1
    raw = httpx.get(f"{run_scraped}/api/v1/query", params={"query": "sum(nbmon_requests_total)"}).json()
    assert raw["data"]["result"], "Prometheus scraped no nbmon_requests_total"
    with_data = {where for where, count in results.items() if count}
    print(f"{len(with_data)} of {len(results)} queries returned data")
    # What this run exercised (a 503 storm on Pro, 429s, safety blocks) must show up:
    exercised = [w for w in results if "image_503_ratio" in w or "503 ratio" in w.lower() or "error class" in w.lower()]
    assert exercised, sorted(results)
    missing = [w for w in exercised if w not in with_data]
    assert not missing, f"exercised but empty: {missing}"
