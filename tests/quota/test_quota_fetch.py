"""QuotaFetcher with the real MetricServiceClient over real gRPC to the fake MetricService: requests, paging,
value types, the timeout against a hung server, and every error reason."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import google.auth.exceptions
import grpc
import pytest
from google.api_core import exceptions as api

from monitor.quota.fetch import (
    ALLOCATION_USAGE,
    EXCEEDED,
    LIMIT,
    NET_USAGE,
    FetchError,
    QuotaFetcher,
    error_reason,
)
from monitor.quota.model import SeriesKind
from monitor.quota.services import VERTEX_SERVICE
from monitor.testing.quota import (
    FREE_TIER_REQUESTS,
    GENERATE_PER_DAY,
    GENERATE_PER_MINUTE,
    FakeMetricService,
    allocation_series,
    exceeded_series,
    limit_series,
    usage_series,
)

NOW = datetime(2026, 3, 8, 19, 0, 30, tzinfo=UTC)  # 12:00:30 PDT on the 23-hour day
MINUTE = NOW.replace(second=0)
MIDNIGHT = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)  # 00:00 PST
ALIGN_SUM, ALIGN_NEXT_OLDER, REDUCE_SUM = 14, 4, 4


@pytest.fixture
def fake() -> Iterator[FakeMetricService]:
    with FakeMetricService() as server:
        yield server


def minutes_back(*values: int, end: datetime = MINUTE) -> list[tuple[datetime, int]]:
    """values[0] is the newest minute."""
    return [(end - timedelta(minutes=i), v) for i, v in enumerate(values)]


def test_requests_per_metric_kind(fake: FakeMetricService) -> None:
    QuotaFetcher(fake.client()).fetch("proj-a", NOW)
    by_type = {r.metric_type: r for r in fake.requests}
    assert list(by_type) == [NET_USAGE, ALLOCATION_USAGE, LIMIT, EXCEEDED]
    usage = by_type[NET_USAGE]
    assert usage.name == "projects/proj-a"
    assert usage.filter == (
        'metric.type = "serviceruntime.googleapis.com/quota/rate/net_usage" AND resource.type = "consumer_quota" '
        'AND resource.labels.service = "generativelanguage.googleapis.com"'
    )
    # DELTA: summed per minute from the last Pacific midnight (PST that morning) to the last whole minute.
    assert (usage.start, usage.end) == (MIDNIGHT, MINUTE)
    assert (usage.alignment_period_s, usage.per_series_aligner, usage.cross_series_reducer) == (
        60,
        ALIGN_SUM,
        REDUCE_SUM,
    )
    assert "metric.label.quota_metric" in usage.group_by_fields and "metric.label.method" not in usage.group_by_fields
    limit = by_type[LIMIT]  # GAUGE: the latest point of the last 25 h
    assert (limit.per_series_aligner, limit.alignment_period_s, limit.end) == (ALIGN_NEXT_OLDER, 90_000, NOW)
    assert limit.start == NOW - timedelta(seconds=90_000)
    exceeded = by_type[EXCEEDED]
    assert (exceeded.per_series_aligner, exceeded.start) == (ALIGN_NEXT_OLDER, NOW - timedelta(seconds=600))


def test_just_after_midnight_the_minute_window_still_reaches_back(fake: FakeMetricService) -> None:
    now = datetime(2026, 3, 9, 7, 2, 10, tzinfo=UTC)  # 00:02 PDT
    # Minutes ending 00:01 PDT (today's first) and 00:00 PDT (23:59-00:00: yesterday's last).
    fake.add(
        usage_series("proj-a", GENERATE_PER_MINUTE, minutes_back(4, 9, end=datetime(2026, 3, 9, 7, 1, tzinfo=UTC)))
    )
    (row,) = QuotaFetcher(fake.client()).fetch("proj-a", now)
    assert fake.requests[0].start == datetime(2026, 3, 9, 6, 52, tzinfo=UTC)  # lookback, not midnight
    assert (row.value, row.today) == (4, 4)


def test_rate_usage_sums_methods_per_minute_and_since_midnight(fake: FakeMetricService) -> None:
    fake.add(
        usage_series("proj-a", GENERATE_PER_MINUTE, minutes_back(5, 6, 7)),
        usage_series("proj-a", GENERATE_PER_MINUTE, minutes_back(2), method="google.ai.generativelanguage.v1beta.X"),
        usage_series("proj-a", GENERATE_PER_DAY, [(MINUTE - timedelta(hours=h), 100) for h in range(15)]),
    )
    rows = {r.quota_metric: r for r in QuotaFetcher(fake.client()).fetch("proj-a", NOW)}
    minute, day = rows[GENERATE_PER_MINUTE], rows[GENERATE_PER_DAY]
    assert (minute.kind, minute.value, minute.today, minute.at) == (SeriesKind.RATE_USAGE, 7, 20, MINUTE)
    # Hourly points from 19:00 back to 05:00 UTC: only those after 08:00 UTC (00:00 PST) are today's (11 of 15).
    assert day.today == 1100


def test_a_stale_newest_minute_counts_as_no_usage_now(fake: FakeMetricService) -> None:
    fake.add(usage_series("proj-a", GENERATE_PER_MINUTE, minutes_back(9, end=MINUTE - timedelta(minutes=30))))
    (row,) = QuotaFetcher(fake.client(), lookback_s=600).fetch("proj-a", NOW)
    assert (row.value, row.today) == (0, 9)


def test_value_types_labels_and_gauges(fake: FakeMetricService) -> None:
    fake.add(
        limit_series(
            "proj-a",
            FREE_TIER_REQUESTS,
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            0,
            at=NOW - timedelta(hours=20),
        ),
        limit_series(
            "proj-a",
            GENERATE_PER_MINUTE,
            "GenerateRequestsPerMinutePerProjectPerModel",
            9,
            at=NOW - timedelta(hours=30),
        ),
        limit_series(
            "proj-a",
            GENERATE_PER_MINUTE,
            "GenerateRequestsPerMinutePerProjectPerModel",
            10,
            at=NOW - timedelta(hours=2),
        ),
        exceeded_series("proj-a", GENERATE_PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", True, at=MINUTE),
        exceeded_series(
            "proj-a", GENERATE_PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", True, at=NOW - timedelta(hours=1)
        ),
        allocation_series(
            "proj-a", "generativelanguage.googleapis.com/cached_content_storage", 2.5, at=NOW - timedelta(hours=3)
        ),
    )
    rows = QuotaFetcher(fake.client()).fetch("proj-a", NOW)
    got = sorted((r.kind.value, r.quota_metric.rsplit("/")[-1], r.limit_name, r.value) for r in rows)
    assert got == [
        ("allocation_usage", "cached_content_storage", "", 2.5),  # DOUBLE
        ("exceeded", "generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel", 1.0),  # BOOL
        ("limit", "generate_content_free_tier_requests", "GenerateRequestsPerDayPerProjectPerModel-FreeTier", 0),
        ("limit", "generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel", 10),  # 30 h old: gone
    ]  # the exceeded point of an hour ago is older than the 10-minute lookback
    assert {(r.project, r.service, r.location) for r in rows} == {
        ("proj-a", "generativelanguage.googleapis.com", "global")
    }


def test_paging_follows_next_page_token(fake: FakeMetricService) -> None:
    fake.page_size = 2
    fake.add(
        *(usage_series("proj-a", f"generativelanguage.googleapis.com/quota_{i}", minutes_back(i + 1)) for i in range(5))
    )
    rows = QuotaFetcher(fake.client()).fetch("proj-a", NOW)
    assert sorted(r.value for r in rows) == [1, 2, 3, 4, 5]
    assert [r.page_token for r in fake.requests if r.metric_type == NET_USAGE] == ["", "2", "4"]


def test_services_and_projects_are_filtered(fake: FakeMetricService) -> None:
    fake.add(
        usage_series("proj-a", GENERATE_PER_MINUTE, minutes_back(1)),
        usage_series(
            "proj-a",
            f"{VERTEX_SERVICE}/generate_content_requests_per_minute_per_project_per_base_model",
            minutes_back(2),
            service=VERTEX_SERVICE,
            location="us-central1",
        ),
        usage_series("proj-a", "compute.googleapis.com/cpus", minutes_back(3), service="compute.googleapis.com"),
        usage_series("proj-b", GENERATE_PER_MINUTE, minutes_back(4)),
    )
    gemini_only = QuotaFetcher(fake.client()).fetch("proj-a", NOW)
    assert [r.value for r in gemini_only] == [1]
    both = QuotaFetcher(fake.client(), services=("generativelanguage.googleapis.com", VERTEX_SERVICE)).fetch(
        "proj-a", NOW
    )
    assert sorted((r.service, r.location, r.value) for r in both) == [
        (VERTEX_SERVICE, "us-central1", 2),
        ("generativelanguage.googleapis.com", "global", 1),
    ]
    assert 'OR resource.labels.service = "aiplatform.googleapis.com")' in fake.requests[-1].filter


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "permission_denied"),
        (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, "quota"),
        (grpc.StatusCode.UNAVAILABLE, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid"),
        (grpc.StatusCode.NOT_FOUND, "invalid"),
        (grpc.StatusCode.DATA_LOSS, "other"),
    ],
)
def test_errors_become_reasons_without_client_retries(
    fake: FakeMetricService, code: grpc.StatusCode, reason: str
) -> None:
    fake.fail(code, "scripted by the test", times=None)
    with pytest.raises(FetchError) as caught:
        QuotaFetcher(fake.client()).fetch("proj-a", NOW)
    assert caught.value.reason == reason
    assert "scripted by the test" in caught.value.message
    assert len(fake.requests) == 1  # retry=None: UNAVAILABLE is not retried for 90 s by the client


def test_a_hung_server_costs_at_most_the_timeout(fake: FakeMetricService) -> None:
    fake.hang_s = 30
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        QuotaFetcher(fake.client(), timeout_s=0.5).fetch("proj-a", NOW)
    assert time.monotonic() - started < 0.5 + 1.0
    assert caught.value.reason == "deadline"


def test_the_timeout_covers_the_whole_fetch_not_each_page(fake: FakeMetricService) -> None:
    fake.hang_s = 0.3  # each RPC answers, slowly; four queries would take 1.2 s
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        QuotaFetcher(fake.client(), timeout_s=0.8).fetch("proj-a", NOW)
    assert time.monotonic() - started < 0.8 + 1.0
    assert caught.value.reason == "deadline"
    assert len(fake.requests) <= 3


def test_error_reason_for_errors_outside_grpc() -> None:
    assert error_reason(google.auth.exceptions.RefreshError("token expired")) == "unauthenticated"
    assert error_reason(google.auth.exceptions.DefaultCredentialsError("none")) == "unauthenticated"
    assert error_reason(api.RetryError("gave up", cause=None)) == "deadline"
    assert error_reason(google.auth.exceptions.TransportError("metadata down")) == "unavailable"
    assert error_reason(RuntimeError("bug")) == "other"


@pytest.mark.parametrize(
    "options",
    [
        {"services": ()},
        {"services": "generativelanguage.googleapis.com"},
        {"services": ['x" OR "y']},
        {"timeout_s": 0},
        {"lookback_s": 30},
        {"gauge_lookback_s": float("nan")},
    ],
)
def test_bad_options_fail_at_construction(fake: FakeMetricService, options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        QuotaFetcher(fake.client(), **options)  # type: ignore[arg-type]


def test_a_bad_project_id_is_refused_before_any_request(fake: FakeMetricService) -> None:
    with pytest.raises(FetchError) as caught:
        QuotaFetcher(fake.client()).fetch('proj" OR "x', NOW)
    assert caught.value.reason == "invalid" and fake.requests == []
