"""Gemini quota from Cloud Monitoring: fetch, join usage to limits, export, rules and notifications.

Pure logic (`model`, `reconcile`, `rules`) is separate from I/O (`fetch`, `poller`); `collector` reads the poller's
last snapshot only; `cli` is `nbmon quota`; `testing` ships a fake MetricService over real gRPC.
"""

from monitor.quota.auth import CredentialsStatus, credentials_status, make_client
from monitor.quota.collector import QuotaCollector
from monitor.quota.fetch import (
    GEMINI_SERVICE,
    REASONS,
    VERTEX_SERVICE,
    FetchError,
    QuotaFetcher,
    error_reason,
)
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
from monitor.quota.poller import (
    PollResult,
    PollStatus,
    QuotaPoller,
    QuotaReadiness,
    QuotaSnapshot,
    build_poller,
)
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
