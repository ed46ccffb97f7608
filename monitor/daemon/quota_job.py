"""The daemon's quota job: poll Cloud Monitoring, evaluate the quota rules on fresh readings, notify.

Built only when `[quota] projects` is set (or a poller is injected), so a daemon without it never imports the
Cloud Monitoring client. The shim's own request counts since the daily reset are fed in from every read of the
source, for the reconciliation against Cloud Monitoring's usage.

In a fleet (`quota_fleet`) only the lease holder polls and notifies; the others evaluate the quota rules on the
readings it publishes, without notifying, so the replica that takes over continues from the same rule states.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry

from monitor.daemon.quota_fleet import FleetMetrics, FleetQuotaView, QuotaFleet
from monitor.signals import Reading

if TYPE_CHECKING:
    from monitor.daemon.config import DaemonConfig
    from monitor.notify import Notification
    from monitor.quota import DailyCounterBaseline, QuotaPoller, QuotaReading, QuotaRuleEngine, QuotaSnapshot

_log = structlog.get_logger("nbmon.daemon")
# Refused calls are not in Cloud Monitoring's net usage: they are left out of the comparison.
_REFUSED = frozenset({"rate_limited", "quota_exhausted"})
Submit = Callable[["Notification", Iterable[str]], object]


class QuotaJob:
    """The poller, the quota rules and the shim's daily counts, behind one `poll()` for the scheduler."""

    def __init__(
        self,
        poller: QuotaPoller,
        rules: QuotaRuleEngine,
        baseline: DailyCounterBaseline,
        config: DaemonConfig,
        submit: Submit | None,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
        fleet: QuotaFleet,
    ) -> None:
        self.poller, self._rules, self._baseline, self.fleet = poller, rules, baseline, fleet
        # What /metrics (and anything reading quota limits) sees: on a follower, the holder's published readings.
        self.view = FleetQuotaView(poller, fleet)
        self._notify, self._submit = config.notify, submit
        self._monotonic, self._wall = monotonic, wall
        self._lock = threading.Lock()  # the rules: the quota job and a test's direct poll()

    @classmethod
    def from_config(
        cls,
        config: DaemonConfig,
        registry: CollectorRegistry,
        submit: Submit | None,
        *,
        poller: QuotaPoller | None = None,
        monotonic: Callable[[], float],
        wall: Callable[[], datetime],
    ) -> QuotaJob | None:
        """None when quota polling is off (no projects configured and no poller given)."""
        if poller is None and not config.quota_projects:
            return None
        from monitor.quota import DailyCounterBaseline, QuotaCollector, QuotaRuleEngine, build_poller
        from monitor.quota.rules import quota_rules_from_mapping

        baseline = DailyCounterBaseline()
        poller = poller or build_poller(
            config.quota_projects,
            services=config.quota_services,
            key_file=config.quota_key_file,
            timeout_s=config.quota_timeout_s,
            stale_after_s=3 * config.quota_interval_s,
            shim_counts=baseline.since_reset,
        )
        fleet = QuotaFleet.from_config(config, FleetMetrics(registry))
        rules = QuotaRuleEngine(quota_rules_from_mapping(config.quota_rules))
        job = cls(poller, rules, baseline, config, submit, monotonic, wall, fleet)
        registry.register(QuotaCollector(job.view))
        return job

    def start(self) -> None:
        """Claims the poller lease (a fleet) before the first quota tick, then keeps it on a thread."""
        self.fleet.start(self.poller)

    def observe(self, reading: Reading) -> None:
        """A successful read of the source: the shim's cumulative totals per model."""
        totals: dict[str, float] = {}
        for series, value in reading.values.items():
            if series.error_class not in _REFUSED:
                totals[series.model] = totals.get(series.model, 0.0) + value
        with self._lock:
            self._baseline.observe(totals, self._wall())

    def poll(self) -> None:
        """The holder polls Cloud Monitoring and publishes; the others read what it published. Never raises."""
        if not self.fleet.leading(self.poller):
            followed = self.fleet.follow(self._reconciled)
            if followed is not None:
                self._evaluate(followed.fresh_readings, send=False)
            return
        result = self.poller.poll()  # network I/O outside the lock; never raises
        if not result.fresh:
            return
        self.fleet.publish(self.poller)
        self._evaluate(self.poller.snapshot.fresh_readings, send=True)

    def _reconciled(self, snapshot: QuotaSnapshot) -> QuotaSnapshot:
        """The holder's readings compared with THIS replica's shim counts, as its own poller would."""
        from monitor.quota import last_daily_reset, reconcile

        with self._lock:
            counts = self._baseline.since_reset(last_daily_reset(self._wall()))
        if counts is None:
            return snapshot
        return dataclasses.replace(snapshot, reconcile=reconcile(counts, snapshot.readings))

    def _evaluate(self, readings: tuple[QuotaReading, ...], *, send: bool) -> None:
        from monitor.quota import quota_notification

        with self._lock:
            transitions = self._rules.evaluate(self._monotonic(), readings)
        if not send:  # a follower: the holder notifies, once for the fleet
            return
        if not self.fleet.leading(self.poller):  # the lease lapsed during the poll: the new holder notifies
            if transitions:
                _log.info(
                    "nbmon.quota.notices_skipped", reason="the lease moved during the poll", count=len(transitions)
                )
            return
        notify = self._notify
        for transition in transitions:
            _log.warning("nbmon.quota.transition", rule=transition.rule, reason=transition.reason)
            note = quota_notification(transition, at=self._wall(), environment=notify.environment, links=notify.links)
            if note is not None and self._submit is not None:
                self._submit(note, notify.channels_for(transition.rule, transition.severity.value))

    def readiness_detail(self) -> str:
        return self.fleet.detail(self.poller, self._wall())

    def close(self) -> None:
        self.fleet.close()  # releases the lease: a follower takes over within a third of its ttl
        self.poller.close()
