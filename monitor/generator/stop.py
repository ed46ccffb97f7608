"""ImageGenerator's side of a hard stop: before each request, ask the `allowed_source` whether generation may go on.

The source is any FlagSource whose value means "generation is allowed", typically
`OfrepFlagSource.generation_allowed(url)` (the daemon's `generation-allowed` flag, false while a spent budget with
`action = "stop"` holds). Fail-static: a source that raises keeps the last answer, allowed before the first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from monitor._safety import report_internal_error
from monitor.generator.engine import Halt
from monitor.generator.flags import FlagSource


class StopGuard:
    def __init__(self, source: FlagSource, count_internal: Callable[[str], None]) -> None:
        self.source = source
        self._count = count_internal
        self._allowed = True  # the last answer read

    def check(self) -> Halt | None:
        """None while generation is allowed; else what the engine raises GenerationStoppedError with."""
        try:
            return self._accept(self.source.degraded())
        except Exception as error:  # noqa: BLE001 - a broken source must not break generation
            return self._failed(error)

    async def acheck(self) -> Halt | None:
        """check() for asyncio, with the source's adegraded()."""
        try:
            return self._accept(await self.source.adegraded())
        except Exception as error:  # noqa: BLE001 - a broken source must not break generation
            return self._failed(error)

    def _accept(self, value: object) -> Halt | None:
        if not isinstance(value, bool):
            raise TypeError(f"allowed source returned {type(value).__name__}, not bool")
        self._allowed = value
        return None if value else halt_of(self.source)

    def _failed(self, error: Exception) -> Halt | None:
        report_internal_error("generator.allowed_source", error, self._count)
        return None if self._allowed else halt_of(self.source)


def halt_of(source: object) -> Halt:
    """Until when and why, from an OfrepFlagSource's last metadata (the daemon's `until` and `detail`)."""
    metadata = getattr(source, "metadata", None)
    if not isinstance(metadata, dict):
        return Halt()
    until, detail = metadata.get("until"), metadata.get("detail")
    when = None
    if isinstance(until, str):
        try:
            when = datetime.fromisoformat(until)
        except ValueError:
            when = None
    return Halt(when, detail if isinstance(detail, str) and detail else None)
