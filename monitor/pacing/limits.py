"""Where the limits come from: configured per model, or read from the quota poller's last snapshot.

A limit set is `{quota: per-window limit}` with quota `rpm` (requests), `ipm` (images) or `tpm` (input tokens) per
minute; a model without any limit is not paced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from monitor.quota.model import LimitStatus, Window

QUOTAS = ("rpm", "ipm", "tpm")
ANY_MODEL = "*"


class LimitProvider(Protocol):
    def limits(self, model: str) -> Mapping[str, float]: ...


class ConfiguredLimits:
    """`{"gemini-3-pro-image": {"rpm": 30}, "*": {"rpm": 100}}`: a model's own limits, else those of `*`."""

    def __init__(self, limits: Mapping[str, Mapping[str, float]]) -> None:
        for model, quotas in limits.items():
            for quota, value in quotas.items():
                if quota not in QUOTAS:
                    raise ValueError(f"limits.{model}.{quota}: not one of {', '.join(QUOTAS)}")
                if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                    raise ValueError(f"limits.{model}.{quota}: must be a number > 0, got {value!r}")
        self._limits = {model: dict(quotas) for model, quotas in limits.items()}

    def limits(self, model: str) -> Mapping[str, float]:
        return self._limits.get(model) or self._limits.get(ANY_MODEL) or {}


class PerReplicaLimits:
    """Each of `replicas` processes without a shared window keeps to its share: limit / replicas, never below one
    a window."""

    def __init__(self, inner: LimitProvider, replicas: int) -> None:
        if replicas < 1:
            raise ValueError(f"replicas: must be >= 1, got {replicas!r}")
        self._inner, self._replicas = inner, replicas

    def limits(self, model: str) -> Mapping[str, float]:
        return {quota: per_replica(limit, self._replicas) for quota, limit in self._inner.limits(model).items()}


def per_replica(limit: float, replicas: int) -> float:
    """A replica's share of a limit: limit / replicas, never below one a window (a limit of 1 shared by 3 replicas
    still lets each send something)."""
    return max(limit / replicas, 1.0)


class QuotaSnapshotSource(Protocol):
    """The quota poller (QuotaPoller), or anything holding its last snapshot."""

    @property
    def snapshot(self) -> object: ...


class QuotaLimits:
    """The fixed per-minute limits the quota poller last read (the values of `nbmon_quota_limit{window="minute"}`).

    Cloud Monitoring's limit series carry no model, so a limit applies to every model of `project` (None: any).
    The kind of quota is told by its names: tokens -> tpm, images -> ipm, requests -> rpm; the lowest wins.
    `configured` limits, when given, win over them quota by quota.
    """

    def __init__(
        self, source: QuotaSnapshotSource, *, project: str | None = None, configured: LimitProvider | None = None
    ) -> None:
        self._source, self._project, self._configured = source, project, configured
        self._cached: tuple[object, dict[str, float]] | None = None

    def limits(self, model: str) -> Mapping[str, float]:
        read = self._read()
        own = self._configured.limits(model) if self._configured is not None else {}
        return {**read, **own} if own else read

    def _read(self) -> dict[str, float]:
        snapshot = self._source.snapshot
        cached = self._cached
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        found: dict[str, float] = {}
        for reading in getattr(snapshot, "readings", ()):
            if reading.window is not Window.MINUTE or reading.status is not LimitStatus.FIXED or not reading.limit:
                continue
            if self._project is not None and reading.project != self._project:
                continue
            quota = quota_kind(f"{reading.quota_metric} {reading.limit_name}")
            if quota is not None:
                found[quota] = min(found.get(quota, reading.limit), reading.limit)
        self._cached = (snapshot, found)
        return found


def quota_kind(names: str) -> str | None:
    lowered = names.lower()
    if "token" in lowered:
        return "tpm"
    if "image" in lowered:
        return "ipm"
    if "request" in lowered:
        return "rpm"
    return None
