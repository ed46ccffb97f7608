"""The quota job in a fleet: one replica polls Cloud Monitoring, every replica exports the same quota gauges.

With `[fleet] redis_url` set (and `[quota] lease` not false) the replicas elect the poller with a Redis lease.
The holder polls and publishes its snapshot after every fresh poll; the others read it at each quota tick and
export it as their own (their /metrics, the staleness alert on the last-success timestamp and the quota rules stay
valid on every replica). A daemon without Google credentials never competes for the lease: it can only follow.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.fleet.lease import AlwaysLeader, Lease, RedisLease

__all__ = ["FleetMetrics", "FleetQuotaView", "QuotaFleet"]

if TYPE_CHECKING:
    import redis

    from monitor.daemon.config import DaemonConfig
    from monitor.fleet.quota_share import Published, QuotaShare
    from monitor.quota import QuotaPoller
    from monitor.quota.poller import QuotaSnapshot

_log = structlog.get_logger("nbmon.daemon")
LEASE_NAME = "quota-poller"
SHARE_TTL_INTERVALS = 3  # published readings outlive a few missed polls, then vanish


class FleetMetrics:
    """The lease's metrics, on the daemon's registry whenever quota polling is on (1 replica: always the leader)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "nbmon_quota_poller_leader",
            "1 while this daemon polls Cloud Monitoring for quota (holds the fleet's lease, or has no fleet).",
            registry=registry,
        )
        self.lease_transitions = Counter(
            "nbmon_lease_transitions",
            "Leadership changes of a lease held in Redis; to is leader or follower.",
            ["lease", "to"],
            registry=registry,
        )
        self.lease_errors = Counter(
            "nbmon_lease_errors",
            "Redis errors of a lease by operation (acquire, renew, release); the daemon stands down and retries.",
            ["lease", "operation"],
            registry=registry,
        )
        self.share_errors = Counter(
            "nbmon_quota_share_errors",
            "Failed writes and reads of the quota readings shared through Redis, by operation (publish, read, decode).",
            ["operation"],
            registry=registry,
        )


class QuotaFleet:
    """The lease, the shared readings, and the last readings read from the holder."""

    def __init__(
        self, lease: Lease, share: QuotaShare | None, metrics: FleetMetrics, client: redis.Redis | None
    ) -> None:
        self.lease, self.share, self.metrics = lease, share, metrics
        self._client = client
        self._lock = threading.Lock()
        self.followed: Published | None = None  # with this replica's own reconcile

    @classmethod
    def single(cls, metrics: FleetMetrics) -> QuotaFleet:
        """No Redis: this replica polls, as before the fleet."""
        return cls(AlwaysLeader(LEASE_NAME), None, metrics, None)

    @classmethod
    def from_config(cls, config: DaemonConfig, metrics: FleetMetrics) -> QuotaFleet:
        from monitor.fleet.quota_share import QuotaShare
        from monitor.fleet.redis_client import connect

        url = config.fleet.redis_url
        if not (config.quota_lease and url):
            return cls.single(metrics)
        client = connect(config.fleet)  # registers the URL's password for redaction
        lease_key = config.fleet.key("quota", "lease")
        lease = RedisLease(
            client,
            lease_key,
            config.quota_lease_ttl_s,
            name=LEASE_NAME,
            on_change=lambda held: metrics.lease_transitions.labels(LEASE_NAME, "leader" if held else "follower").inc(),
            on_error=lambda operation, _: metrics.lease_errors.labels(LEASE_NAME, operation).inc(),
        )
        ttl = SHARE_TTL_INTERVALS * config.quota_interval_s + config.quota_lease_ttl_s
        share = QuotaShare(client, config.fleet.key("quota", "readings"), lease_key, ttl)
        return cls(lease, share, metrics, client)

    def leading(self, poller: QuotaPoller) -> bool:
        return poller.enabled and self.lease.held()

    def start(self, poller: QuotaPoller) -> None:
        self.metrics.leader.set_function(lambda: 1.0 if self.leading(poller) else 0.0)
        if poller.enabled:  # without credentials it could hold the lease but never poll
            self.lease.start()

    def publish(self, poller: QuotaPoller) -> None:
        """After a fresh poll: the holder's snapshot for the others (refused if the lease moved meanwhile)."""
        if self.share is None:
            return
        import redis

        try:
            if not self.share.publish(poller.snapshot, poller.last_success_timestamp(), self.lease.holder):
                _log.info("nbmon.quota.publish_refused", reason="the lease moved to another replica")
        except redis.RedisError:
            self.metrics.share_errors.labels("publish").inc()

    def follow(self, reconcile: Callable[[QuotaSnapshot], QuotaSnapshot]) -> QuotaSnapshot | None:
        """The holder's readings, when newer than the last read (`reconcile` adds this replica's own comparison);
        None when there is nothing new. What was read before stays exported, stale, while nothing newer comes."""
        if self.share is None:
            return None
        import redis

        try:
            published = self.share.read()
        except redis.RedisError:
            self.metrics.share_errors.labels("read").inc()
            return None
        except ValueError as exc:
            self.metrics.share_errors.labels("decode").inc()
            _log.warning("nbmon.quota.shared_unreadable", error=str(exc))
            return None
        with self._lock:
            last = self.followed
            if published is None or (last is not None and published.snapshot.polled_at == last.snapshot.polled_at):
                return None
            snapshot = reconcile(published.snapshot)
            self.followed = dataclasses.replace(published, snapshot=snapshot)
            return snapshot

    def snapshot(self, own: QuotaSnapshot) -> QuotaSnapshot:
        """The newer of this replica's own poll and the holder's last published one."""
        followed = self.followed
        if followed is None or _older(followed.snapshot.polled_at, own.polled_at):
            return own
        return followed.snapshot

    def last_success(self, own: float | None) -> float | None:
        followed = self.followed
        theirs = followed.last_success if followed is not None else None
        return max((s for s in (own, theirs) if s is not None), default=None)

    def detail(self, poller: QuotaPoller, now: datetime) -> str:
        """/readyz and /v1/state: who polls, and how old the readings are."""
        if isinstance(self.lease, AlwaysLeader):
            return poller.readiness().detail
        if self.leading(poller):
            return f"{poller.readiness().detail}; this replica holds the poller lease"
        followed = self.followed
        if followed is None or followed.snapshot.polled_at is None:
            return "quota: follower (another replica polls); no readings published yet"
        age = (now - followed.snapshot.polled_at).total_seconds()
        return f"quota: follower, {len(followed.snapshot.readings)} quotas polled by {followed.holder} {age:.0f}s ago"

    def close(self) -> None:
        self.lease.stop(release=True)
        if self._client is not None:
            self._client.close()


class FleetQuotaView:
    """What the quota collector reads: the newer snapshot (own or the holder's), this replica's own errors."""

    def __init__(self, poller: QuotaPoller, fleet: QuotaFleet) -> None:
        self._poller, self._fleet = poller, fleet

    @property
    def snapshot(self) -> QuotaSnapshot:
        return self._fleet.snapshot(self._poller.snapshot)

    @property
    def enabled(self) -> bool:
        return self._poller.enabled

    def error_counts(self) -> dict[str, int]:
        return self._poller.error_counts()

    def last_success_timestamp(self) -> float | None:
        return self._fleet.last_success(self._poller.last_success_timestamp())


def _older(a: datetime | None, b: datetime | None) -> bool:
    if a is None:
        return True
    return b is not None and a < b
