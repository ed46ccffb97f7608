"""The quota collector: names, labels and values from the last snapshot; no I/O during a scrape; the series cap."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.clock import VirtualClock
from monitor.quota.collector import QuotaCollector
from monitor.quota.fetch import REASONS, QuotaFetcher
from monitor.quota.poller import QuotaPoller
from monitor.testing.quota import (
    FREE_TIER_REQUESTS,
    GENERATE_PER_DAY,
    GENERATE_PER_MINUTE,
    INPUT_TOKENS,
    FakeMetricService,
    exceeded_series,
    limit_series,
    usage_series,
)

NOW = datetime(2026, 3, 8, 19, 0, 30, tzinfo=UTC)  # 12:00:30 PDT: 11h00m30s after the reset, 11h59m30s before the next
MINUTE = NOW.replace(second=0)
GEMINI = "generativelanguage.googleapis.com"
PER_MINUTE_LIMIT = "GenerateRequestsPerMinutePerProjectPerModel"
PER_DAY_LIMIT = "GenerateRequestsPerDayPerProjectPerModel"


def labels(quota_metric: str, limit_name: str, window: str, project: str = "proj-a") -> dict[str, str]:
    return {
        "project": project,
        "service": GEMINI,
        "location": "global",
        "quota_metric": quota_metric,
        "limit_name": limit_name,
        "window": window,
    }


@pytest.fixture
def fake() -> Iterator[FakeMetricService]:
    with FakeMetricService() as server:
        server.add(
            usage_series("proj-a", GENERATE_PER_MINUTE, [(MINUTE, 9)]),
            limit_series("proj-a", GENERATE_PER_MINUTE, PER_MINUTE_LIMIT, 10, at=MINUTE),
            exceeded_series("proj-a", GENERATE_PER_MINUTE, PER_MINUTE_LIMIT, True, at=MINUTE),
            usage_series("proj-a", GENERATE_PER_DAY, [(MINUTE - timedelta(hours=1), 1100)]),
            limit_series("proj-a", GENERATE_PER_DAY, PER_DAY_LIMIT, 2000, at=MINUTE),
            limit_series(
                "proj-a", FREE_TIER_REQUESTS, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", 0, at=MINUTE
            ),
            usage_series("proj-a", INPUT_TOKENS, [(MINUTE, 5000)]),  # no limit: dynamic
        )
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(start=NOW)


@pytest.fixture
def poller(fake: FakeMetricService, clock: VirtualClock) -> QuotaPoller:
    return QuotaPoller(lambda: QuotaFetcher(fake.client(), timeout_s=5), ["proj-a"], clock=clock)


@pytest.fixture
def registry(poller: QuotaPoller, clock: VirtualClock) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(QuotaCollector(poller, clock=clock.now))
    return registry


def test_gauges_per_quota(poller: QuotaPoller, registry: CollectorRegistry) -> None:
    assert poller.poll().fresh
    value = registry.get_sample_value
    minute, day = (
        labels(GENERATE_PER_MINUTE, PER_MINUTE_LIMIT, "minute"),
        labels(GENERATE_PER_DAY, PER_DAY_LIMIT, "day"),
    )
    assert [value(n, minute) for n in ("nbmon_quota_usage", "nbmon_quota_limit", "nbmon_quota_exceeded")] == [9, 10, 1]
    assert value("nbmon_quota_utilization_ratio", minute) == pytest.approx(0.9)
    assert value("nbmon_quota_seconds_until_reset", minute) is None  # per-day quotas only
    assert value("nbmon_quota_utilization_ratio", day) == pytest.approx(0.55)
    assert value("nbmon_quota_seconds_until_reset", day) == 11 * 3600 + 59 * 60 + 30
    assert value("nbmon_quota_projected_exhaustion", day) == 1  # 100/h for 12 more hours: 2300 > 2000
    assert value("nbmon_quota_projected_usage_at_reset", day) == pytest.approx(1100 + 1100 / 39630 * 43170)
    assert value("nbmon_quota_poll_last_success_timestamp_seconds") == NOW.timestamp()
    assert value("nbmon_quota_poller_enabled") == 1


def test_dynamic_and_blocked_limits_have_no_ratio(poller: QuotaPoller, registry: CollectorRegistry) -> None:
    poller.poll()
    value = registry.get_sample_value
    dynamic = labels(INPUT_TOKENS, "", "unknown")  # no limit name to tell the window from
    assert (value("nbmon_quota_usage", dynamic), value("nbmon_quota_dynamic_limit", dynamic)) == (5000, 1)
    assert value("nbmon_quota_limit", dynamic) is None and value("nbmon_quota_utilization_ratio", dynamic) is None
    blocked = labels(FREE_TIER_REQUESTS, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "day")
    assert (value("nbmon_quota_limit", blocked), value("nbmon_quota_blocked", blocked)) == (0, 1)
    assert value("nbmon_quota_utilization_ratio", blocked) is None
    assert value("nbmon_quota_projected_exhaustion", blocked) is None
    assert value("nbmon_quota_dynamic_limit", labels(GENERATE_PER_MINUTE, PER_MINUTE_LIMIT, "minute")) == 0


def test_collect_does_no_io(
    fake: FakeMetricService, poller: QuotaPoller, registry: CollectorRegistry, clock: VirtualClock
) -> None:
    poller.poll()
    sent = len(fake.requests)
    fake.stop()  # Cloud Monitoring is gone: a scrape still answers from the snapshot, at once
    clock.advance(600)
    text = generate_latest(registry).decode()
    assert len(fake.requests) == sent
    assert 'nbmon_quota_usage{limit_name="GenerateRequestsPerMinutePerProjectPerModel"' in text
    day = labels(GENERATE_PER_DAY, PER_DAY_LIMIT, "day")
    assert registry.get_sample_value("nbmon_quota_seconds_until_reset", day) == 11 * 3600 + 49 * 60 + 30  # counts down


def test_errors_by_reason_start_at_zero(
    fake: FakeMetricService, poller: QuotaPoller, registry: CollectorRegistry
) -> None:
    assert {
        r: registry.get_sample_value("nbmon_quota_poll_errors_total", {"reason": r}) for r in REASONS
    } == dict.fromkeys(REASONS, 0)
    fake.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded for quota metric 'Time series queries'")
    poller.poll()
    assert registry.get_sample_value("nbmon_quota_poll_errors_total", {"reason": "quota"}) == 1
    assert registry.get_sample_value("nbmon_quota_poll_last_success_timestamp_seconds") is None


def test_the_series_cap_keeps_the_hottest_quotas(poller: QuotaPoller, clock: VirtualClock) -> None:
    poller.poll()
    registry = CollectorRegistry()
    registry.register(QuotaCollector(poller, max_series=2, clock=clock.now))
    usage = [s for f in registry.collect() if f.name == "nbmon_quota_usage" for s in f.samples]
    assert sorted(s.labels["quota_metric"] for s in usage) == [GENERATE_PER_MINUTE, GENERATE_PER_DAY]  # exceeded, 55%
    assert registry.get_sample_value("nbmon_quota_series_dropped") == 2


def test_reconcile_difference_and_a_disabled_poller(clock: VirtualClock) -> None:
    poller = QuotaPoller(list, ["proj-a"], clock=clock, disabled_reason="no Google credentials (test)")  # type: ignore[arg-type]
    registry = CollectorRegistry()
    registry.register(QuotaCollector(poller, clock=clock.now))
    assert registry.get_sample_value("nbmon_quota_poller_enabled") == 0
    assert next(f for f in registry.collect() if f.name == "nbmon_quota_usage").samples == []
    poller.snapshot = type(poller.snapshot)(reconcile={("proj-a", GENERATE_PER_DAY): 154.0})
    assert (
        registry.get_sample_value(
            "nbmon_quota_reconcile_difference", {"project": "proj-a", "quota_metric": GENERATE_PER_DAY}
        )
        == 154
    )
