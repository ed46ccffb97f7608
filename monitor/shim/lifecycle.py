"""The requested model's lifecycle on the day of each call, and one warning per model that needs attention."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from monitor.catalog import utc_midnight
from monitor.config import ShimConfig

_MAX_WARNED = 256  # one line per (model, what happened): bounded like every label set


class ModelWatch:
    """Reads the catalog's dates once; lifecycle() is a dict miss for any model without a date (most calls)."""

    def __init__(self, config: ShimConfig, logger: Any, wall: Callable[[], float]) -> None:
        self._catalog = config.catalog
        self._log = logger
        self._wall = wall
        self._dates: dict[str, tuple[float | None, float | None]] = {}
        for spec in config.catalog.specs:
            if spec.deprecated is None and spec.shutdown is None:
                continue
            dates = (
                utc_midnight(spec.deprecated) if spec.deprecated else None,
                utc_midnight(spec.shutdown) if spec.shutdown else None,
            )
            for name in spec.names:
                self._dates[name] = dates
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def lifecycle(self, model: str | None) -> str | None:
        """ "deprecated" or "retired" for a model that is one today, else None."""
        dates = self._dates.get(model) if model else None
        if dates is None:
            return None
        now = self._wall()
        if dates[1] is not None and now >= dates[1]:
            return "retired"
        if dates[0] is not None and now >= dates[0]:
            return "deprecated"
        return None

    def noticed(self, model: str | None, lifecycle: str | None, served: str | None) -> None:
        """Log once per model and lifecycle, and once per reroute (requested -> served)."""
        if model is None:
            return
        if lifecycle is not None and self._first((model, lifecycle)):
            spec = self._catalog.get(model)
            self._log.warning(
                "nbmon.model.deprecated_call",
                model=model,
                lifecycle=lifecycle,
                replacement=spec.replacement if spec is not None else None,
                shutdown=str(spec.shutdown) if spec is not None and spec.shutdown else None,
            )
        if served is not None and self._first((model, "->" + served)):
            self._log.warning("nbmon.model.rerouted", requested=model, served=served)

    def _first(self, key: tuple[str, str]) -> bool:
        with self._lock:
            if key in self._warned or len(self._warned) >= _MAX_WARNED:
                return False
            self._warned.add(key)
            return True
