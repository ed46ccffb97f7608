"""Bounded label values, so an unexpected model name or finish reason cannot explode cardinality.

Rule (documented in docs/metrics.md, label values): configured values always pass; any other value that looks like an
identifier is admitted as is until `cap` distinct extra values were seen, then it becomes "other".
Values that do not look like identifiers (spaces, slashes, over 64 characters) are always "other".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

OTHER = "other"
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")


class BoundedLabel:
    """Maps raw values to label values with at most `len(known) + cap` distinct results (+ "other")."""

    def __init__(self, known: Iterable[str] = (), cap: int = 20) -> None:
        if cap < 0:
            raise ValueError("cap must be >= 0")
        self._known = frozenset(known)
        self._cap = cap
        self._admitted: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, raw: str | None) -> str:
        if raw is None:
            return OTHER
        if raw in self._known or raw in self._admitted:
            return raw
        if not _IDENTIFIER.fullmatch(raw):
            return OTHER
        with self._lock:
            if len(self._admitted) < self._cap:
                self._admitted.add(raw)
                return raw
        return OTHER


def model_id(raw: object) -> str | None:
    """The bare model ID of any form the SDK accepts ("models/x", "publishers/google/models/x", ...)."""
    if not isinstance(raw, str) or not raw:
        return None
    if "/models/" in raw or raw.startswith("models/"):
        return raw.rsplit("/", 1)[-1]
    if raw.startswith("google/"):
        return raw.split("/", 1)[1]
    return raw
