"""Starting and stopping everything the demo runs, all on loopback, in one process.

- the Gemini simulator (real HTTP; the day's phases are switched through its control endpoint)
- the app: the load generator's registry, instrumented by the shim, served on its own /metrics
- fake Slack and PagerDuty receivers (real HTTP) and a fake Cloud Monitoring (real gRPC)
- the real Daemon from a DaemonConfig: scrapes the app like a sidecar, serves the flag over OFREP, notifies
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, start_http_server

import monitor
from monitor.config import ShimConfig
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.demo.load import LegacyJob, LoadGenerator
from monitor.demo.polyglot import PolyglotClient
from monitor.demo.quota_feed import POLL_INTERVAL_S, POLL_TIMEOUT_S, QuotaFeed
from monitor.demo.script import Legacy, Phase, Timing
from monitor.generator import OfrepFlagSource
from monitor.simulator import SimulatorServer
from monitor.testing.notify import FakePagerDuty, FakeSlack

ENVIRONMENT = "demo"
ROUTING_KEY = "nbmondemo".ljust(32, "0")  # PagerDuty's Events API wants 32 characters


class DemoStartError(Exception):
    """A part of the demo could not start; the message says which."""


@dataclass(frozen=True, slots=True)
class StackOptions:
    workers: int
    seed: int
    canary_share: float
    latency: dict[str, float]
    sim_port: int
    daemon_port: int
    metrics_port: int


class DemoStack:
    """`start()` brings everything up in order (undoing what started if a step fails); `stop()` in reverse."""

    def __init__(
        self, options: StackOptions, timing: Timing, first_phase: Phase, workdir: Path, legacy: Legacy | None = None
    ) -> None:
        self.options, self.timing, self.workdir = options, timing, workdir
        self.legacy = legacy
        self._first_phase = first_phase
        self._exit = contextlib.ExitStack()
        self.registry = CollectorRegistry()  # the app's: the shim's and the generator's metrics
        self._control = httpx.Client(timeout=5.0, trust_env=False)  # loopback: never through an HTTP(S)_PROXY

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        options, timing, exit_stack = self.options, self.timing, self._exit
        exit_stack.callback(self._control.close)
        with _naming_port("simulator", options.sim_port):
            self.sim = SimulatorServer(
                profile=self._first_phase.profile(options.seed),
                seed=options.seed,
                port=options.sim_port,
                latency=options.latency,
                retry_delay=f"{timing.retry_delay_s:g}s",
            ).start()
        exit_stack.callback(self.sim.stop)

        if not monitor.instrument(registry=self.registry, config=ShimConfig()):
            # Already instrumented by someone else, or google-genai out of range: the demo would measure nothing.
            raise DemoStartError("monitor.instrument() refused (already instrumented, or see the log file)")
        exit_stack.callback(monitor.uninstrument)
        with _naming_port("the app's /metrics", options.metrics_port):
            server, thread = start_http_server(options.metrics_port, addr="127.0.0.1", registry=self.registry)
        exit_stack.callback(_stop_http_server, server, thread)
        self.app_metrics_url = f"http://127.0.0.1:{server.server_port}/metrics"

        self.slack = exit_stack.enter_context(FakeSlack())
        self.pagerduty = exit_stack.enter_context(FakePagerDuty())
        self.quota = QuotaFeed(datetime.now(UTC))
        exit_stack.callback(self.quota.stop)

        self.daemon = Daemon(from_mapping(self._daemon_config()), quota_poller=self.quota.poller())
        with _naming_port("daemon", options.daemon_port):
            self.daemon.start()
        exit_stack.callback(self.daemon.stop)
        assert self.daemon.proxy is not None  # [proxy] is in the config: the daemon serves it
        self.proxy_url = self.daemon.proxy.url
        self.polyglot = PolyglotClient(self.proxy_url)
        flag_http = exit_stack.enter_context(httpx.Client(timeout=1.0, trust_env=False))
        self.flag = OfrepFlagSource(
            self.daemon.url, ttl_s=timing.flag_ttl_s, targeting_key="nbmon-demo", http_client=flag_http
        )
        self.load = LoadGenerator(
            self.sim.url,
            workers=options.workers,
            seed=options.seed,
            canary_share=options.canary_share,
            flag_source=self.flag,
            registry=self.registry,
        )
        exit_stack.callback(self.load.stop)
        self.legacy_job = LegacyJob(self.sim.url, self.legacy.model) if self.legacy is not None else None
        if self.legacy_job is not None:
            exit_stack.callback(self.legacy_job.stop)

    def _daemon_config(self) -> dict[str, Any]:
        # Secrets come from files only (the config refuses them inline): write the fakes' URL and key.
        slack_url = self.workdir / "slack-webhook-url"
        slack_url.write_text(self.slack.url)
        routing_key = self.workdir / "pagerduty-routing-key"
        routing_key.write_text(ROUTING_KEY)
        interval = self.timing.interval_s
        return {
            "listen": {"host": "127.0.0.1", "port": self.options.daemon_port},
            "source": {"kind": "scrape", "targets": [self.app_metrics_url], "interval": interval},
            "evaluation": {"interval": interval},
            "state": {"path": str(self.workdir / "state.json")},
            "rules": {"degraded-mode": self.timing.rule()},
            "notify": {
                "environment": ENVIRONMENT,
                "outbox_path": str(self.workdir / "outbox.sqlite"),
                "channels": {
                    "slack": {"kind": "slack", "webhook_url_file": str(slack_url)},
                    "pagerduty": {
                        "kind": "pagerduty",
                        "routing_key_file": str(routing_key),
                        "events_url": self.pagerduty.url,
                    },
                },
            },
            "quota": {"interval": POLL_INTERVAL_S, "timeout": POLL_TIMEOUT_S},
            # For an app in another language: the proxy, steered by this daemon's flag. The rules keep reading the
            # Python app's /metrics (source.kind scrape, above); the proxy's calls are on the proxy's /metrics.
            "proxy": {"port": 0, "upstream": self.sim.url, "steer": True, "canary_share": 0.0},
        }

    def play(self, phase: Phase) -> None:
        """Switch the simulator to `phase` through its control endpoint, as an operator would."""
        response = self._control.put(f"{self.sim.url}/_sim/profile", json=phase.profile(self.options.seed))
        response.raise_for_status()
        response = self._control.put(f"{self.sim.url}/_sim/models", json={"reroutes": phase.reroutes})
        response.raise_for_status()

    def notifications_pending(self) -> int:
        dispatcher = self.daemon.dispatcher
        return dispatcher.outbox.depth() if dispatcher is not None else 0

    def start_load(self) -> None:
        self.load.start()
        if self.legacy_job is not None:
            self.legacy_job.start()

    def stop_load(self) -> None:
        if hasattr(self, "load"):
            self.load.stop()
        job = getattr(self, "legacy_job", None)
        if job is not None:
            job.stop()

    def stop(self) -> None:
        self._exit.close()


@contextlib.contextmanager
def _naming_port(what: str, port: int) -> Iterator[None]:
    """A taken port says which one: "[Errno 98] Address already in use" alone does not."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, f"{what} on 127.0.0.1:{port}: {exc.strerror or exc}") from exc


def _stop_http_server(server: Any, thread: threading.Thread) -> None:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
