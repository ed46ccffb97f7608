"""The pure join: usage to limits with and without limit_name, windows, dynamic and blocked limits, the per-day
reset across the 2026 DST changes in Los Angeles, and the projection."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from monitor.quota.model import (
    LimitStatus,
    QuotaReading,
    QuotaSeries,
    SeriesKind,
    Window,
    join,
    last_daily_reset,
    project_day,
    window_for,
)

GEMINI = "generativelanguage.googleapis.com"
VERTEX = "aiplatform.googleapis.com"
PER_MINUTE = f"{GEMINI}/generate_requests_per_model"
PER_DAY = f"{GEMINI}/generate_requests_per_model_per_day"
FREE_TIER = f"{GEMINI}/generate_content_free_tier_requests"
TOKENS = f"{GEMINI}/generate_content_paid_tier_input_token_count"
NOON_PDT_SPRING = datetime(2026, 3, 8, 19, 0, tzinfo=UTC)  # 12:00 PDT; the day began 00:00 PST = 08:00 UTC
NOON_PST_FALL = datetime(2026, 11, 1, 20, 0, tzinfo=UTC)  # 12:00 PST; the day began 00:00 PDT = 07:00 UTC


def rate(metric: str, minute: float, today: float, *, project: str = "proj-a", location: str = "global") -> QuotaSeries:
    return QuotaSeries(SeriesKind.RATE_USAGE, project, GEMINI, metric, "", location, minute, today)


def limit(metric: str, name: str, value: float, *, project: str = "proj-a", location: str = "global") -> QuotaSeries:
    return QuotaSeries(SeriesKind.LIMIT, project, GEMINI, metric, name, location, value)


def one(readings: list[QuotaReading], **match: str) -> QuotaReading:
    (found,) = [r for r in readings if all(getattr(r, k) == v for k, v in match.items())]
    return found


def test_usage_without_limit_name_pairs_each_limit_with_its_own_window() -> None:
    # One quota metric, two limits (per minute and per day): net_usage has no limit_name, so both join on the
    # quota metric, the minute limit with the newest minute and the day limit with the sum since midnight.
    rows = [
        rate(FREE_TIER, minute=12, today=180),
        limit(FREE_TIER, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", 15),
        limit(FREE_TIER, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", 200),
    ]
    readings = join(rows, now=NOON_PDT_SPRING)
    assert len(readings) == 2
    minute = one(readings, limit_name="GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    day = one(readings, limit_name="GenerateRequestsPerDayPerProjectPerModel-FreeTier")
    assert (minute.window, minute.usage, minute.limit, minute.utilization) == (Window.MINUTE, 12, 15, 0.8)
    assert (day.window, day.usage, day.limit, day.utilization) == (Window.DAY, 180, 200, 0.9)
    assert minute.seconds_until_reset is None and day.seconds_until_reset == 12 * 3600


def test_allocation_usage_joins_on_quota_metric_only() -> None:
    metric = f"{VERTEX}/online_prediction_endpoints"
    rows = [
        QuotaSeries(SeriesKind.ALLOCATION_USAGE, "proj-a", VERTEX, metric, "", "us-central1", 7),
        QuotaSeries(SeriesKind.LIMIT, "proj-a", VERTEX, metric, "EndpointsPerProjectPerRegion", "us-central1", 10),
    ]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert (reading.window, reading.usage, reading.utilization) == (Window.ALLOCATION, 7, 0.7)
    assert reading.limit_name == "EndpointsPerProjectPerRegion" and reading.location == "us-central1"


def test_several_quota_metrics_stay_apart() -> None:
    rows = [
        rate(PER_MINUTE, minute=9, today=300),
        limit(PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", 10),
        rate(PER_DAY, minute=9, today=300),
        limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 1000),
        rate(TOKENS, minute=120_000, today=9_000_000),
        limit(TOKENS, "GenerateContentPaidTierInputTokensPerModelPerMinute", 1_000_000),
        rate(PER_MINUTE, minute=1, today=2, project="proj-b"),
        limit(PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", 10, project="proj-b"),
    ]
    readings = join(rows, now=NOON_PDT_SPRING)
    assert [(r.project, r.quota_metric.rsplit("/")[-1], r.utilization) for r in readings] == [
        ("proj-a", "generate_content_paid_tier_input_token_count", 0.12),
        ("proj-a", "generate_requests_per_model", 0.9),
        ("proj-a", "generate_requests_per_model_per_day", 0.3),
        ("proj-b", "generate_requests_per_model", 0.1),
    ]


def test_a_limit_without_usage_means_no_usage_yet() -> None:
    (reading,) = join([limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 250)], now=NOON_PDT_SPRING)
    assert (reading.usage, reading.utilization, reading.projected_exhaustion) == (0, 0, False)


def test_usage_without_any_limit_is_dynamic_never_zero_or_full() -> None:
    # Vertex dynamic shared quota: there is no limit series to divide by.
    metric = f"{VERTEX}/generate_content_requests_per_minute_per_project_per_base_model"
    rows = [QuotaSeries(SeriesKind.RATE_USAGE, "proj-v", VERTEX, metric, "", "us-central1", 40, 900)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert reading.status is LimitStatus.DYNAMIC and reading.dynamic
    assert (reading.limit, reading.utilization, reading.limit_name) == (None, None, "")
    assert (reading.window, reading.usage) == (Window.MINUTE, 40)


@pytest.mark.parametrize("value", [-1, math.inf, math.nan, 2.0**63 - 1])
def test_limits_with_no_fixed_value_are_dynamic(value: float) -> None:
    rows = [rate(PER_MINUTE, 5, 5), limit(PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", value)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert reading.status is LimitStatus.DYNAMIC and reading.utilization is None


def test_a_limit_of_zero_is_blocked_without_a_ratio() -> None:
    # The article's case: the preview image model's per-day limit is 0 on the free tier.
    rows = [limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 0)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert reading.status is LimitStatus.BLOCKED and reading.blocked
    assert (reading.limit, reading.utilization, reading.projected_exhaustion) == (0, None, False)


def test_exceeded_applies_to_its_limit_only() -> None:
    rows = [
        rate(FREE_TIER, 15, 15),
        limit(FREE_TIER, "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", 15),
        limit(FREE_TIER, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", 200),
        QuotaSeries(
            SeriesKind.EXCEEDED,
            "proj-a",
            GEMINI,
            FREE_TIER,
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            value=1.0,
        ),
    ]
    readings = join(rows, now=NOON_PDT_SPRING)
    assert [(r.window, r.exceeded) for r in readings] == [(Window.DAY, False), (Window.MINUTE, True)]


def test_a_global_limit_counts_usage_in_every_location() -> None:
    metric = f"{VERTEX}/generate_content_input_tokens_per_minute_per_project"
    rows = [
        QuotaSeries(SeriesKind.RATE_USAGE, "proj-v", VERTEX, metric, "", "us-central1", 300, 1000),
        QuotaSeries(SeriesKind.RATE_USAGE, "proj-v", VERTEX, metric, "", "europe-west4", 200, 500),
        QuotaSeries(SeriesKind.LIMIT, "proj-v", VERTEX, metric, "InputTokensPerMinute", "global", 1000),
    ]
    (reading,) = join(rows, now=NOON_PDT_SPRING)  # no dynamic leftovers for the regional usage
    assert (reading.location, reading.usage, reading.utilization) == ("global", 500, 0.5)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("GenerateRequestsPerDayPerProjectPerModel", PER_MINUTE, ""), Window.DAY),
        (("GenerateContentInputTokensPerModelPerMinute-FreeTier", FREE_TIER, ""), Window.MINUTE),
        (("", PER_DAY, ""), Window.DAY),
        (("SomeLimit", PER_MINUTE, "1/d/{project}"), Window.DAY),
        (("SomeLimit", PER_MINUTE, "1/min/{project}/{model}"), Window.MINUTE),
        (("SomeLimit", PER_MINUTE, ""), Window.UNKNOWN),
    ],
)
def test_window_from_names_never_from_values(names: tuple[str, str, str], expected: Window) -> None:
    assert window_for(*names) is expected


@pytest.mark.parametrize(
    ("now", "last", "following"),
    [
        # Spring forward: the day of 2026-03-08 has 23 hours (00:00 PST .. 00:00 PDT).
        (NOON_PDT_SPRING, datetime(2026, 3, 8, 8, tzinfo=UTC), datetime(2026, 3, 9, 7, tzinfo=UTC)),
        (
            datetime(2026, 3, 8, 9, 30, tzinfo=UTC),
            datetime(2026, 3, 8, 8, tzinfo=UTC),
            datetime(2026, 3, 9, 7, tzinfo=UTC),
        ),
        # Fall back: 2026-11-01 has 25 hours (00:00 PDT .. 00:00 PST).
        (NOON_PST_FALL, datetime(2026, 11, 1, 7, tzinfo=UTC), datetime(2026, 11, 2, 8, tzinfo=UTC)),
        (
            datetime(2026, 11, 1, 8, 30, tzinfo=UTC),
            datetime(2026, 11, 1, 7, tzinfo=UTC),
            datetime(2026, 11, 2, 8, tzinfo=UTC),
        ),
        # Exactly at a reset: that midnight is the last one.
        (
            datetime(2026, 11, 2, 8, tzinfo=UTC),
            datetime(2026, 11, 2, 8, tzinfo=UTC),
            datetime(2026, 11, 3, 8, tzinfo=UTC),
        ),
    ],
)
def test_reset_at_midnight_los_angeles_across_dst(now: datetime, last: datetime, following: datetime) -> None:
    assert last_daily_reset(now) == last
    (reading,) = join([limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 100)], now=now)
    assert reading.reset_at == following
    assert reading.seconds_until_reset == (following - now).total_seconds()


def test_projection_on_the_23_hour_day_uses_the_real_elapsed_time() -> None:
    # 1100 requests in the 11 h since 00:00 PST (not 12: the clocks sprang forward) is 100/h; 12 h remain.
    rows = [rate(PER_DAY, 100, 1100), limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 2000)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert reading.projected_usage_at_reset == pytest.approx(2300)
    assert reading.projected_exhaustion is True
    assert reading.projected_exhaustion_at == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)  # +900 at 100/h = 9 h


@pytest.mark.parametrize(("day_limit", "runs_out"), [(2600, False), (2500, True), (2400, True)])
def test_projection_on_the_25_hour_day(day_limit: int, runs_out: bool) -> None:
    # 1300 in the 13 h since 00:00 PDT is 100/h; 12 h until 00:00 PST: 2500 at the reset.
    rows = [rate(PER_DAY, 100, 1300), limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", day_limit)]
    (reading,) = join(rows, now=NOON_PST_FALL)
    assert reading.projected_usage_at_reset == pytest.approx(2500)
    assert reading.projected_exhaustion is runs_out
    if runs_out:
        assert reading.projected_exhaustion_at == NOON_PST_FALL + timedelta(hours=(day_limit - 1300) / 100)
    else:
        assert reading.projected_exhaustion_at is None


def test_no_projection_in_the_first_minutes_after_midnight_unless_already_out() -> None:
    early = datetime(2026, 3, 9, 7, 5, tzinfo=UTC)  # 00:05 PDT
    assert project_day(10, 250, early, min_elapsed_s=900) == (None, False, None)
    assert project_day(10, 250, early, min_elapsed_s=0)[1] is True  # 10 in 5 min would be 2880 a day: nonsense
    assert project_day(250, 250, early, min_elapsed_s=900) == (250, True, early)


def test_dynamic_and_blocked_limits_are_never_projected() -> None:
    rows = [rate(PER_DAY, 100, 5000), limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 0)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    assert reading.blocked and reading.projected_usage_at_reset is None and not reading.projected_exhaustion


def test_to_dict_is_json_ready() -> None:
    rows = [rate(PER_DAY, 100, 1100), limit(PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 2000)]
    (reading,) = join(rows, now=NOON_PDT_SPRING)
    data = reading.to_dict()
    assert data["window"] == "day" and data["status"] == "fixed" and data["utilization"] == 0.55
    assert data["reset_at"] == "2026-03-09T07:00:00+00:00"
