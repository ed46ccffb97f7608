"""Which of the daemon's files cannot be written right now, said where someone will notice.

The decision, the flagd file and the notification outbox are kept in memory and served even when the disk is full,
read-only or gone; what is lost is durability. That must not be silent: each store that fails turns
`nbmon_persistence_ok{store}` to 0 and /readyz red, counts `nbmon_persistence_errors_total{store}`, and logs one
line when a failure streak starts and one when it ends (never a traceback per tick).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

STORES = ("state", "flagd", "outbox")


class PersistenceHealth:
    def __init__(self, on_change: Callable[[str, bool], None], on_error: Callable[[str], None], logger: Any) -> None:
        self._on_change = on_change  # the gauge
        self._on_error = on_error  # the counter
        self._log = logger
        self._lock = threading.Lock()
        self._failing: dict[str, str] = {}  # store -> what went wrong (the first error of the streak)
        for store in STORES:
            on_change(store, True)

    def failed(self, store: str, path: object, error: object) -> None:
        self._on_error(store)
        with self._lock:
            first = store not in self._failing
            if first:
                self._failing[store] = f"{path}: {error}"
        if first:
            self._on_change(store, False)
            self._log.error("nbmon.persist.failed", store=store, path=str(path), error=str(error))

    def ok(self, store: str) -> None:
        with self._lock:
            was = self._failing.pop(store, None)
        if was is not None:
            self._on_change(store, True)
            self._log.warning("nbmon.persist.recovered", store=store)

    def failing(self, store: str) -> bool:
        with self._lock:
            return store in self._failing

    def problems(self) -> list[str]:
        """One line per store that cannot be written (the /readyz reasons)."""
        with self._lock:
            return [
                f"{store} cannot be saved ({detail}): in force in memory only"
                for store, detail in self._failing.items()
            ]
