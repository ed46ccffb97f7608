"""Gemini quota from Cloud Monitoring: fetch, join usage to limits, export, rules and notifications.

Pure logic (`model`, `reconcile`, `rules`) is separate from I/O (`fetch`, `poller`); `collector` reads the poller's
last snapshot only; `cli` is `nbmon quota`; `testing` ships a fake MetricService over real gRPC.
"""

from typing import TYPE_CHECKING

from monitor import _lazy

__all__ = [
    "GEMINI_SERVICE",
    "QUOTA_CRITICAL",
    "QUOTA_PROJECTED",
    "QUOTA_WARNING",
    "REASONS",
    "VERTEX_SERVICE",
    "CredentialsStatus",
    "DailyCounterBaseline",
    "FetchError",
    "LimitStatus",
    "PollResult",
    "PollStatus",
    "QuotaCollector",
    "QuotaFetcher",
    "QuotaKey",
    "QuotaPoller",
    "QuotaReadiness",
    "QuotaReading",
    "QuotaRule",
    "QuotaRuleEngine",
    "QuotaSeries",
    "QuotaSnapshot",
    "QuotaTransition",
    "SeriesKind",
    "Window",
    "build_poller",
    "credentials_status",
    "default_quota_rules",
    "error_reason",
    "join",
    "last_daily_reset",
    "make_client",
    "quota_notification",
    "quota_rules_from_mapping",
    "reconcile",
]

_EXPORTS = {
    "GEMINI_SERVICE": "monitor.quota.services",
    "QUOTA_CRITICAL": "monitor.quota.rules",
    "QUOTA_PROJECTED": "monitor.quota.rules",
    "QUOTA_WARNING": "monitor.quota.rules",
    "REASONS": "monitor.quota.fetch",
    "VERTEX_SERVICE": "monitor.quota.services",
    "CredentialsStatus": "monitor.quota.auth",
    "DailyCounterBaseline": "monitor.quota.reconcile",
    "FetchError": "monitor.quota.fetch",
    "LimitStatus": "monitor.quota.model",
    "PollResult": "monitor.quota.poller",
    "PollStatus": "monitor.quota.poller",
    "QuotaCollector": "monitor.quota.collector",
    "QuotaFetcher": "monitor.quota.fetch",
    "QuotaKey": "monitor.quota.model",
    "QuotaPoller": "monitor.quota.poller",
    "QuotaReadiness": "monitor.quota.poller",
    "QuotaReading": "monitor.quota.model",
    "QuotaRule": "monitor.quota.rules",
    "QuotaRuleEngine": "monitor.quota.rules",
    "QuotaSeries": "monitor.quota.model",
    "QuotaSnapshot": "monitor.quota.poller",
    "QuotaTransition": "monitor.quota.rules",
    "SeriesKind": "monitor.quota.model",
    "Window": "monitor.quota.model",
    "build_poller": "monitor.quota.poller",
    "credentials_status": "monitor.quota.auth",
    "default_quota_rules": "monitor.quota.rules",
    "error_reason": "monitor.quota.fetch",
    "join": "monitor.quota.model",
    "last_daily_reset": "monitor.quota.model",
    "make_client": "monitor.quota.auth",
    "quota_notification": "monitor.quota.rules",
    "quota_rules_from_mapping": "monitor.quota.rules",
    "reconcile": "monitor.quota.reconcile",
}
__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from monitor.quota.auth import CredentialsStatus, credentials_status, make_client
    from monitor.quota.collector import QuotaCollector
    from monitor.quota.fetch import REASONS, FetchError, QuotaFetcher, error_reason
    from monitor.quota.model import (
        LimitStatus,
        QuotaKey,
        QuotaReading,
        QuotaSeries,
        SeriesKind,
        Window,
        join,
        last_daily_reset,
    )
    from monitor.quota.poller import PollResult, PollStatus, QuotaPoller, QuotaReadiness, QuotaSnapshot, build_poller
    from monitor.quota.reconcile import DailyCounterBaseline, reconcile
    from monitor.quota.rules import (
        QUOTA_CRITICAL,
        QUOTA_PROJECTED,
        QUOTA_WARNING,
        QuotaRule,
        QuotaRuleEngine,
        QuotaTransition,
        default_quota_rules,
        quota_notification,
        quota_rules_from_mapping,
    )
    from monitor.quota.services import GEMINI_SERVICE, VERTEX_SERVICE
