"""`monitor.embed()`: the daemon inside the app process, reading the shim's registry directly.

For a single process that wants degraded mode without a sidecar: no scrape, no HTTP hop for the flag
(the HTTP API can still be served, e.g. for `nbmon flag` overrides and Prometheus).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.sources import InProcessSource


class DaemonFlag:
    """A FlagSource (for ImageGenerator) answering from the embedded daemon's current decision."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def degraded(self) -> bool:
        return self._daemon.store.effective().value

    async def adegraded(self) -> bool:
        return self.degraded()


class EmbeddedDaemon:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.flag = DaemonFlag(daemon)

    @property
    def url(self) -> str:
        return self.daemon.url

    def stop(self) -> None:
        self.daemon.stop()

    def __enter__(self) -> EmbeddedDaemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def embed(
    config: DaemonConfig | None = None,
    *,
    registry: CollectorRegistry | None = None,
    daemon_registry: CollectorRegistry | None = None,
    serve_http: bool = False,
    **overrides: Any,
) -> EmbeddedDaemon:
    """Start the evaluator in this process on the shim's registry (default: prometheus_client's global one).

    `overrides` replace DaemonConfig fields (e.g. `state_path=...`, `evaluation_interval_s=5`).
    Returns an EmbeddedDaemon whose `.flag` is the FlagSource to give ImageGenerator.
    """
    config = dataclasses.replace(config or DaemonConfig(), source_kind="inprocess", **overrides)
    source = InProcessSource(registry if registry is not None else REGISTRY)
    daemon = Daemon(config, source=source, registry=daemon_registry)
    daemon.start(serve_http=serve_http)
    return EmbeddedDaemon(daemon)
