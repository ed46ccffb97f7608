"""The quota poller: every project fetched into one immutable snapshot per poll; `poll()` never raises.

- Snapshot: built completely, then swapped in one assignment, so a scrape reads either the old or the new one.
  A project whose fetch failed keeps its previous readings (marked stale: not in `fresh_projects`), so an outage
  of the Monitoring API neither blanks the dashboards nor resolves alerts; the rules should see `fresh_readings`.
- Backoff per project: after n failures in a row the project is skipped for min(initial x 2^(n-1), max) seconds
  (monotonic), so a denied project is not hammered and does not hold the others back. Success resets it.
- Errors are counted by reason (`fetch.REASONS`) and passed to `on_error(project, reason, message)`.
- Credentials: `build_poller()` checks them once (`credentials_status`); with none the poller is disabled, says so
  in ONE log line (`nbmon.quota.disabled`) and in `readiness()`, and every poll returns DISABLED at once.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from os import PathLike
from typing import Any, NamedTuple, Protocol

import google.auth.exceptions
import structlog
from google.api_core import exceptions as api

from monitor._safety import report_internal_error
from monitor.clock import SystemClock
from monitor.daily_reset import RESET_TIMEZONE
from monitor.quota.auth import CredentialsStatus, credentials_status, make_client
from monitor.quota.fetch import (
    REASONS,
    FetchError,
    QuotaFetcher,
    check_options,
    error_reason,
    valid_project,
)
from monitor.quota.model import MIN_PROJECTION_ELAPSED_S, QuotaReading, QuotaSeries, join, last_daily_reset
from monitor.quota.reconcile import reconcile
from monitor.quota.services import GEMINI_SERVICE

__all__ = [  # credentials_status and make_client live in monitor.quota.auth; re-exported here
    "CredentialsStatus",
    "Fetcher",
    "PollResult",
    "PollStatus",
    "PollerClock",
    "QuotaPoller",
    "QuotaReadiness",
    "QuotaSnapshot",
    "build_poller",
    "credentials_status",
    "make_client",
]
_log = structlog.get_logger("nbmon.quota")


class Fetcher(Protocol):
    def fetch(self, project: str, now: datetime) -> list[QuotaSeries]: ...


class PollerClock(Protocol):
    def monotonic(self) -> float: ...
    def now(self) -> datetime: ...  # aware


class PollStatus(StrEnum):
    OK = "ok"  # every project fetched
    PARTIAL = "partial"  # some fetched; others failed or waited out their backoff
    FAILED = "failed"  # none fetched, at least one failed
    SKIPPED = "skipped"  # every project is in backoff (or a poll is already running)
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class PollResult:
    status: PollStatus
    errors: Mapping[str, str] = field(default_factory=dict)  # project -> reason

    @property
    def fresh(self) -> bool:
        """New data arrived: evaluate the quota rules on `snapshot.fresh_readings`."""
        return self.status in (PollStatus.OK, PollStatus.PARTIAL)


@dataclass(frozen=True, slots=True)
class QuotaSnapshot:
    readings: tuple[QuotaReading, ...] = ()
    polled_at: datetime | None = None
    fresh_projects: frozenset[str] = frozenset()  # fetched by the poll that built this snapshot
    reconcile: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (project, quota_metric) -> cloud - shim

    @property
    def fresh_readings(self) -> tuple[QuotaReading, ...]:
        return tuple(r for r in self.readings if r.project in self.fresh_projects)


class QuotaReadiness(NamedTuple):
    ready: bool
    detail: str


@dataclass
class _Project:
    failures: int = 0
    retry_at: float = -math.inf
    last_success: datetime | None = None
    last_reason: str | None = None


class QuotaPoller:
    """Polls `projects` through a fetcher made by `fetcher_factory` (called once, at the first poll)."""

    def __init__(
        self,
        fetcher_factory: Callable[[], Fetcher],
        projects: Sequence[str],
        *,
        clock: PollerClock | None = None,
        on_error: Callable[[str, str, str], None] | None = None,
        backoff_initial_s: float = 60.0,
        backoff_max_s: float = 900.0,
        stale_after_s: float = 600.0,
        disabled_reason: str | None = None,
        shim_counts: Callable[[datetime], Mapping[str, float] | None] | None = None,
        reconcile_projects: Sequence[str] | None = None,
        min_projection_elapsed_s: float = MIN_PROJECTION_ELAPSED_S,
        timezone: str = RESET_TIMEZONE,
    ) -> None:
        if not projects or any(not valid_project(p) for p in projects):
            raise ValueError(f"projects: need one or more Google Cloud project ids, got {list(projects)!r}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("backoff: need 0 < backoff_initial_s <= backoff_max_s")
        self.projects = tuple(dict.fromkeys(projects))
        self._factory = fetcher_factory
        self._fetcher: Fetcher | None = None
        self._clock: PollerClock = clock if clock is not None else SystemClock()
        self._on_error = on_error
        self._backoff = (backoff_initial_s, backoff_max_s)
        self.stale_after_s = stale_after_s
        self.disabled_reason = disabled_reason
        self._shim_counts = shim_counts
        self._reconcile_projects = reconcile_projects
        self._min_elapsed = min_projection_elapsed_s
        self._timezone = timezone
        self._state = {p: _Project() for p in self.projects}
        self._errors = dict.fromkeys(REASONS, 0)
        self._lock, self._poll_lock = threading.Lock(), threading.Lock()
        self.snapshot = QuotaSnapshot()
        if disabled_reason is not None:
            _log.warning("nbmon.quota.disabled", reason=disabled_reason, projects=list(self.projects))

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    def error_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def last_success_timestamp(self) -> float | None:
        """The oldest of the projects' last successful fetches (Unix seconds); None until all have succeeded."""
        with self._lock:
            stamps = [s.last_success for s in self._state.values()]
        if not stamps or any(s is None for s in stamps):
            return None
        return min(s.timestamp() for s in stamps if s is not None)

    def readiness(self) -> QuotaReadiness:
        if self.disabled_reason is not None:
            return QuotaReadiness(True, f"disabled: {self.disabled_reason}")  # a configuration state, not a fault
        last = self.last_success_timestamp()
        if last is None:
            return QuotaReadiness(False, "quota: no successful poll of every project yet")
        age = self._clock.now().timestamp() - last
        if age > self.stale_after_s:
            return QuotaReadiness(False, f"quota: no successful poll of every project for {age:.0f}s")
        return QuotaReadiness(True, f"quota: ok, {len(self.snapshot.readings)} quotas, polled {age:.0f}s ago")

    def poll(self) -> PollResult:
        """Fetch every project not in backoff and swap in a new snapshot. Never raises."""
        if self.disabled_reason is not None:
            return PollResult(PollStatus.DISABLED)
        if not self._poll_lock.acquire(blocking=False):
            return PollResult(PollStatus.SKIPPED)
        try:
            return self._poll()
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill the scheduler's job
            report_internal_error("quota.poll", exc, None)
            return PollResult(PollStatus.FAILED, dict.fromkeys(self.projects, "other"))
        finally:
            self._poll_lock.release()

    def close(self) -> None:
        close = getattr(self._fetcher, "close", None)
        if callable(close):
            close()

    def _poll(self) -> PollResult:
        tick, now = self._clock.monotonic(), self._clock.now()
        due = [p for p in self.projects if self._state[p].retry_at <= tick]
        if not due:
            return PollResult(PollStatus.SKIPPED)
        errors: dict[str, str] = {}
        fetched: dict[str, list[QuotaSeries]] = {}
        for project in due:
            try:
                if self._fetcher is None:
                    self._fetcher = self._factory()
                fetched[project] = self._fetcher.fetch(project, now)
            except Exception as exc:  # noqa: BLE001 - FetchError, or a factory that cannot build a client
                if not isinstance(exc, FetchError | api.GoogleAPIError | google.auth.exceptions.GoogleAuthError):
                    report_internal_error("quota.poll", exc, None)
                errors[project] = error_reason(exc)
                self._failed(project, errors[project], str(exc), tick)
        rows = [row for project_rows in fetched.values() for row in project_rows]
        readings = join(rows, now=now, timezone=self._timezone, min_projection_elapsed_s=self._min_elapsed)
        kept = [r for r in self.snapshot.readings if r.project not in fetched]
        all_readings = tuple(sorted([*readings, *kept], key=lambda r: r.key))
        with self._lock:
            for project in fetched:
                state = self._state[project]
                state.failures, state.retry_at, state.last_success, state.last_reason = 0, -math.inf, now, None
        self.snapshot = QuotaSnapshot(all_readings, now, frozenset(fetched), self._reconcile(all_readings, now))
        if not fetched:
            return PollResult(PollStatus.FAILED, errors)
        complete = len(fetched) == len(self.projects)
        return PollResult(PollStatus.OK if complete else PollStatus.PARTIAL, errors)

    def _failed(self, project: str, reason: str, message: str, tick: float) -> None:
        initial, longest = self._backoff
        with self._lock:
            state = self._state[project]
            state.failures += 1
            delay = min(initial * 2 ** min(state.failures - 1, 30), longest)
            state.retry_at, state.last_reason = tick + delay, reason
            self._errors[reason] = self._errors.get(reason, 0) + 1
        _log.warning("nbmon.quota.poll_failed", project=project, reason=reason, error=message, retry_in_s=delay)
        if self._on_error is not None:
            try:
                self._on_error(project, reason, message)
            except Exception as exc:  # noqa: BLE001 - the hook's bug is reported, the poll goes on
                report_internal_error("quota.on_error", exc, None)

    def _reconcile(self, readings: tuple[QuotaReading, ...], now: datetime) -> Mapping[tuple[str, str], float]:
        if self._shim_counts is None:
            return {}
        try:
            counts = self._shim_counts(last_daily_reset(now, self._timezone))
            if counts is None:
                return {}
            return reconcile(counts, readings, projects=self._reconcile_projects)
        except Exception as exc:  # noqa: BLE001 - a broken counter source costs the reconcile, not the poll
            report_internal_error("quota.reconcile", exc, None)
            return {}


def build_poller(
    projects: Sequence[str],
    *,
    services: Sequence[str] = (GEMINI_SERVICE,),
    key_file: str | PathLike[str] | None = None,
    timeout_s: float = 30.0,
    lookback_s: float = 600.0,
    gauge_lookback_s: float = 90_000.0,
    check: Callable[[str | PathLike[str] | None], CredentialsStatus] = credentials_status,
    **poller_options: Any,
) -> QuotaPoller:
    """What the daemon constructs: options checked, then the credentials, once; without credentials a disabled
    poller (one log line). `poller_options` go to QuotaPoller (clock, on_error, backoff_*, shim_counts, ...)."""
    check_options(services, timeout_s, lookback_s, gauge_lookback_s)
    status = check(key_file)
    if not status.available:
        return QuotaPoller(_no_fetcher, projects, disabled_reason=status.message, **poller_options)
    _log.info("nbmon.quota.credentials", detail=status.message, projects=list(projects), services=list(services))

    def factory() -> QuotaFetcher:
        client = make_client(key_file=key_file)
        return QuotaFetcher(
            client, services=services, timeout_s=timeout_s, lookback_s=lookback_s, gauge_lookback_s=gauge_lookback_s
        )

    return QuotaPoller(factory, projects, **poller_options)


def _no_fetcher() -> Fetcher:
    raise RuntimeError("the quota poller is disabled")
