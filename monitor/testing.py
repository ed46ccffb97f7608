"""Test helpers shipped with the package (as structlog and httpx do), so tests never patch our code."""

from __future__ import annotations

from types import TracebackType

from monitor import _safety


class InternalErrorCollector:
    """Collects every error the telemetry guard swallowed while active.

    The test suite's autouse fixture uses it to fail any test in which nbmon's own telemetry code
    raised, so bugs that production hides are loud in CI.
    """

    def __init__(self) -> None:
        self.errors: list[tuple[str, BaseException]] = []

    def _on_error(self, component: str, error: BaseException) -> None:
        self.errors.append((component, error))

    def __enter__(self) -> InternalErrorCollector:
        _safety.add_listener(self._on_error)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _safety.remove_listener(self._on_error)
