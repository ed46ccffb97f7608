"""Reconcile: cloud - shim for the request quota metrics; the shim's counts since the last reset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.quota.model import QuotaSeries, SeriesKind, join
from monitor.quota.reconcile import DailyCounterBaseline, is_request_metric, reconcile
from tests.support.constants import FLASH, PRO

GEMINI = "generativelanguage.googleapis.com"
PER_MINUTE = f"{GEMINI}/generate_requests_per_model"
PER_DAY = f"{GEMINI}/generate_requests_per_model_per_day"
TOKENS = f"{GEMINI}/generate_content_paid_tier_input_token_count"
NOW = datetime(2026, 3, 8, 19, 0, tzinfo=UTC)


def rows(project: str, today: float) -> list[QuotaSeries]:
    return [
        QuotaSeries(SeriesKind.RATE_USAGE, project, GEMINI, PER_DAY, today=today, value=3),
        QuotaSeries(SeriesKind.LIMIT, project, GEMINI, PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", value=5000),
        QuotaSeries(
            SeriesKind.LIMIT, project, GEMINI, PER_DAY, "GenerateRequestsPerDayPerProjectPerModel-Tier2", value=9000
        ),  # a second limit on the same usage must not count it twice
        QuotaSeries(SeriesKind.RATE_USAGE, project, GEMINI, TOKENS, today=9_000_000, value=1000),
    ]


def test_difference_is_cloud_minus_shim_for_request_metrics() -> None:
    readings = join(rows("proj-a", 1154) + rows("proj-b", 40), now=NOW)
    shim = {PRO: 1000.0, FLASH: 0.0}
    assert reconcile(shim, readings) == {("proj-a", PER_DAY): 154.0, ("proj-b", PER_DAY): -960.0}
    assert reconcile(shim, readings, projects={"proj-a"}) == {("proj-a", PER_DAY): 154.0}  # the shim's own project


def test_regional_usage_adds_up_and_a_global_sum_is_not_doubled() -> None:
    regional = [
        QuotaSeries(SeriesKind.RATE_USAGE, "proj-v", GEMINI, PER_MINUTE, location="us-central1", today=60),
        QuotaSeries(SeriesKind.RATE_USAGE, "proj-v", GEMINI, PER_MINUTE, location="europe-west4", today=40),
    ]
    assert reconcile({PRO: 90}, join(regional, now=NOW)) == {("proj-v", PER_MINUTE): 10}
    with_global = [*regional, QuotaSeries(SeriesKind.LIMIT, "proj-v", GEMINI, PER_MINUTE, "Limit", value=500)]
    assert reconcile({PRO: 90}, join(with_global, now=NOW)) == {("proj-v", PER_MINUTE): 10}


def test_request_metrics_by_name() -> None:
    assert is_request_metric(PER_MINUTE) and is_request_metric(f"{GEMINI}/generate_content_free_tier_requests")
    assert not is_request_metric(TOKENS) and not is_request_metric("requests.example.com/tokens")


def test_baseline_counts_since_the_reset_only_after_seeing_it() -> None:
    baseline = DailyCounterBaseline()
    evening = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 22:00 PST on the 7th
    baseline.observe({PRO: 500}, evening)
    assert baseline.since_reset(evening) is None  # started mid-day: yesterday's count is unknown
    baseline.observe({PRO: 620, FLASH: 5}, datetime(2026, 3, 8, 7, 59, 50, tzinfo=UTC))  # 10 s before midnight
    after = datetime(2026, 3, 8, 8, 0, 5, tzinfo=UTC)
    baseline.observe({PRO: 621, FLASH: 5}, after)
    assert baseline.since_reset(after) == {PRO: 1, FLASH: 0}
    baseline.observe({PRO: 30}, NOW)  # the shim restarted: its counter began again at 0
    assert baseline.since_reset(NOW) == {PRO: 31, FLASH: 0}
    assert baseline.since_reset(NOW + timedelta(days=1)) is None  # a day not observed since its reset
