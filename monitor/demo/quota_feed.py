"""Cloud Monitoring for the demo project: a fake MetricService (real gRPC) fed with the demo's own requests.

The daemon polls it through the real `MetricServiceClient` on an insecure loopback channel: no credentials, no
network. Usage arrives as `quota/rate/net_usage` DELTA points, as Cloud Monitoring stores it: each feed appends
the requests made since the previous one, so "today" is the sum and "this minute" is the newest bucket.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from monitor.quota import QuotaFetcher, QuotaPoller, last_daily_reset
from monitor.testing.quota import (
    GENERATE_PER_DAY,
    GENERATE_PER_MINUTE,
    FakeMetricService,
    limit_series,
    usage_series,
)

PROJECT: Final = "nbmon-demo"
PER_MINUTE_LIMIT: Final = ("GenerateRequestsPerMinutePerProjectPerModel", 2000)
PER_DAY_LIMIT: Final = ("GenerateRequestsPerDayPerProjectPerModel", 25_000)
EARLIER_TODAY: Final = 14_000  # requests before the demo started: the day gauge starts at 56%
POLL_INTERVAL_S: Final = 2.0
POLL_TIMEOUT_S: Final = 1.5


class QuotaFeed:
    """Owns the fake MetricService; `feed(total, now)` records how many Pro requests the demo made so far.

    The quotas are the Pro model's (Gemini quotas are per model): the gauges drop while degraded mode moves
    the traffic to Flash."""

    def __init__(self, now: datetime) -> None:
        self.service = FakeMetricService().start()
        minute = now.replace(second=0, microsecond=0)
        earlier = minute - timedelta(minutes=1)
        if earlier <= last_daily_reset(now):  # just after midnight Pacific: nothing before "now" counts today
            earlier = minute
        set_at = now - timedelta(hours=1)
        self.service.add(
            limit_series(PROJECT, GENERATE_PER_MINUTE, *PER_MINUTE_LIMIT, at=set_at),
            limit_series(PROJECT, GENERATE_PER_DAY, *PER_DAY_LIMIT, at=set_at),
            usage_series(PROJECT, GENERATE_PER_DAY, [(earlier, EARLIER_TODAY)]),
        )
        self._counted = 0.0

    def poller(self) -> QuotaPoller:
        """What the daemon polls with (injected, since a real poller would look for Google credentials)."""
        return QuotaPoller(
            lambda: QuotaFetcher(self.service.client(), timeout_s=POLL_TIMEOUT_S),
            [PROJECT],
            backoff_initial_s=1.0,
            backoff_max_s=5.0,
            stale_after_s=10 * POLL_INTERVAL_S,
        )

    def feed(self, total_requests: float, now: datetime) -> None:
        delta = int(total_requests - self._counted)
        if delta <= 0:
            return
        self._counted += delta
        # Labelled with the current minute, so the newest bucket is "this minute so far" (the fetch reads whole
        # minutes up to now): the gauge shows the demo's traffic at once instead of a minute late.
        minute = now.replace(second=0, microsecond=0)
        self.service.add(
            usage_series(PROJECT, GENERATE_PER_MINUTE, [(minute, delta)]),
            usage_series(PROJECT, GENERATE_PER_DAY, [(minute, delta)]),
        )

    def stop(self) -> None:
        self.service.stop()
