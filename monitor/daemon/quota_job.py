"""The daemon's quota job: poll Cloud Monitoring, evaluate the quota rules on fresh readings, notify.

Built only when `[quota] projects` is set (or a poller is injected), so a daemon without it never imports the
Cloud Monitoring client. The shim's own request counts since the daily reset are fed in from every read of the
source, for the reconciliation against Cloud Monitoring's usage.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry

from monitor.signals import Reading

if TYPE_CHECKING:
    from monitor.daemon.config import DaemonConfig
    from monitor.notify import Notification
    from monitor.quota import DailyCounterBaseline, QuotaPoller, QuotaRuleEngine

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
    ) -> None:
        self.poller, self._rules, self._baseline = poller, rules, baseline
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
        registry.register(QuotaCollector(poller))
        rules = QuotaRuleEngine(quota_rules_from_mapping(config.quota_rules))
        return cls(poller, rules, baseline, config, submit, monotonic, wall)

    def observe(self, reading: Reading) -> None:
        """A successful read of the source: the shim's cumulative totals per model."""
        totals: dict[str, float] = {}
        for series, value in reading.values.items():
            if series.error_class not in _REFUSED:
                totals[series.model] = totals.get(series.model, 0.0) + value
        with self._lock:
            self._baseline.observe(totals, self._wall())

    def poll(self) -> None:
        from monitor.quota import quota_notification

        result = self.poller.poll()  # network I/O outside the lock; never raises
        if not result.fresh:
            return
        notify = self._notify
        with self._lock:
            transitions = self._rules.evaluate(self._monotonic(), self.poller.snapshot.fresh_readings)
        for transition in transitions:
            _log.warning("nbmon.quota.transition", rule=transition.rule, reason=transition.reason)
            note = quota_notification(transition, at=self._wall(), environment=notify.environment, links=notify.links)
            if note is not None and self._submit is not None:
                self._submit(note, notify.channels_for(transition.rule, transition.severity.value))

    def readiness_detail(self) -> str:
        return self.poller.readiness().detail

    def close(self) -> None:
        self.poller.close()
