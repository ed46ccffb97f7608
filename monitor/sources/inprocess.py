"""In-process source: reads `nbmon_requests_total` straight from the shim's registry (the daemon is embedded)."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from monitor import _safety
from monitor.signals import REQUESTS_METRIC, Reading, Series
from monitor.sources._common import ErrorCallback, SourceError, TargetStatus, Tracker, add_sample

INPROCESS_ERROR_REASONS = ("collect",)


class InProcessSource:
    """A `CounterSource` over a `CollectorRegistry`: no HTTP, no text format, the same Reading shape."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        metric: str = REQUESTS_METRIC,
        clock: Callable[[], float] = time.monotonic,
        on_error: ErrorCallback | None = None,
        name: str = "inprocess",
    ) -> None:
        self.name = name
        self._registry = registry
        self._sample_name = metric if metric.endswith("_total") else f"{metric}_total"
        self._clock = clock
        self._tracker = Tracker(name, [name], on_error)

    def read(self) -> Reading:
        try:
            return self._read()
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the daemon's loop
            _safety.report_internal_error(f"sources.{self.name}", exc, None)
            return Reading(at=time.monotonic(), ok=False, error=f"internal: {type(exc).__name__}")

    def status(self) -> dict[str, TargetStatus]:
        return self._tracker.snapshot()

    def _read(self) -> Reading:
        values: dict[Series, float] = {}
        try:
            # collect() runs every collector on the registry, including ones the app added: any may raise.
            for family in self._registry.collect():
                for sample in family.samples:
                    if sample.name == self._sample_name:
                        add_sample(values, sample.labels, float(sample.value))
        except Exception as exc:  # noqa: BLE001 - a broken collector is a failed read, not a crash
            error = SourceError("collect", f"{type(exc).__name__}: {exc}"[:300])
            at = self._clock()
            self._tracker.failure(self.name, error, at)
            return Reading(at=at, ok=False, error=str(error))
        at = self._clock()
        self._tracker.success(self.name, at)
        return Reading(at=at, values=values, complete=True)  # the whole registry: a new series began at 0
