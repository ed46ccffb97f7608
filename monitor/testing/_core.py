"""Test helpers shipped with the package (as structlog and httpx do), so tests never patch our code."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from monitor import _safety
from monitor.flagstate import _atomic


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


class FullDisk:
    """A disk that can fill up: the persistence seams of FlagStore (`write=disk.write`), FlagdFileWriter
    (`write=disk.write_mode`) and Outbox (`connect=disk.connect`) fail with ENOSPC while `full` is True, and
    write for real to the real files otherwise. Reads always work, as they do on a full disk."""

    def __init__(self) -> None:
        self.full = False
        self.refused = 0  # writes refused so far

    def _check(self, what: object) -> None:
        if self.full:
            self.refused += 1
            raise OSError(errno.ENOSPC, "No space left on device", str(what))

    def write(self, path: Path, data: bytes) -> None:
        self._check(path)
        _atomic.atomic_write(path, data, mode=0o600)

    def write_mode(self, path: Path, data: bytes, mode: int) -> None:
        self._check(path)
        _atomic.atomic_write(path, data, mode=mode)

    def connect(self, path: Path) -> sqlite3.Connection:
        real = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        return cast(sqlite3.Connection, _FullDiskConnection(self, real))  # duck-typed: the Outbox's calls only


class _FullDiskConnection:
    """A real SQLite connection whose writing statements fail as SQLite fails on a full disk."""

    def __init__(self, disk: FullDisk, real: sqlite3.Connection) -> None:
        self._disk, self._real = disk, real

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        statement = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if self._disk.full and statement in ("INSERT", "UPDATE", "DELETE", "COMMIT", "BEGIN"):
            self._disk.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._real.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
