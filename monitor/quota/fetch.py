"""Reading the quota metrics of one project from Cloud Monitoring (gRPC `ListTimeSeries`), bounded in time.

Four queries per project, on `resource.type="consumer_quota"` and the configured service(s):

- `quota/rate/net_usage` (DELTA INT64): from min(last Pacific midnight, now - lookback_s) to now in whole minutes,
  60 s ALIGN_SUM, REDUCE_SUM by project, service, location and quota_metric (drops `method`). Gives the newest
  minute's usage (0 when that minute is older than `lookback_s`: no traffic since) and the sum since the reset.
- `quota/allocation/usage` and `quota/limit` (GAUGE INT64): the last `gauge_lookback_s` (limits are written
  rarely), ALIGN_NEXT_OLDER over that period: the latest value.
- `quota/exceeded` (GAUGE BOOL): the last `lookback_s`, ALIGN_NEXT_OLDER: the latest value.

Points are summed per key and minute on this side too, so the result is right whether or not the server reduced
them. Every page is one RPC with `timeout` = what is left of `timeout_s` for the whole fetch and `retry=None` (the
client's default retries UNAVAILABLE for up to 90 s; the poller's backoff is the retry), so a hung server costs at
most `timeout_s`. Errors leave as `FetchError` with a reason from `REASONS`.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import google.auth.exceptions
from google.api_core import exceptions as api
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3 import MetricServiceClient

from monitor._safety import report_internal_error
from monitor.daily_reset import RESET_TIMEZONE
from monitor.quota.model import QuotaSeries, SeriesKind, last_daily_reset
from monitor.quota.services import GEMINI_SERVICE

METRIC_PREFIX: Final = "serviceruntime.googleapis.com/quota/"
NET_USAGE: Final = METRIC_PREFIX + "rate/net_usage"
ALLOCATION_USAGE: Final = METRIC_PREFIX + "allocation/usage"
LIMIT: Final = METRIC_PREFIX + "limit"
EXCEEDED: Final = METRIC_PREFIX + "exceeded"
REASONS: Final = ("permission_denied", "unauthenticated", "quota", "unavailable", "deadline", "invalid", "other")
MAX_PAGES: Final = 100  # a server that keeps handing out page tokens must not keep the poller forever
_SERVICE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{0,252}")
_PROJECT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")  # ids, numbers, and domain:scoped-ids
_GROUP_BY: Final = (
    "resource.label.project_id",
    "resource.label.service",
    "resource.label.location",
    "metric.label.quota_metric",
)
_Aligner = monitoring_v3.Aggregation.Aligner
_Reducer = monitoring_v3.Aggregation.Reducer


class FetchError(Exception):
    """A failed fetch; `reason` is one of REASONS (the `reason` label of nbmon_quota_poll_errors_total)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def error_reason(error: BaseException) -> str:
    """The reason for an error raised by the client library (google.api_core / google.auth exceptions)."""
    if isinstance(error, FetchError):
        return error.reason
    if isinstance(error, api.PermissionDenied):
        return "permission_denied"
    if isinstance(
        error,
        api.Unauthenticated | google.auth.exceptions.RefreshError | google.auth.exceptions.DefaultCredentialsError,
    ):
        return "unauthenticated"
    if isinstance(error, api.ResourceExhausted):  # the monitoring API's own quota, not Gemini's
        return "quota"
    if isinstance(error, api.DeadlineExceeded | api.RetryError | TimeoutError):
        return "deadline"
    if isinstance(error, api.ServiceUnavailable | api.InternalServerError | google.auth.exceptions.TransportError):
        return "unavailable"
    if isinstance(error, api.InvalidArgument | api.NotFound | api.FailedPrecondition | api.OutOfRange):
        return "invalid"
    return "other"


def check_options(services: Sequence[str], timeout_s: float, lookback_s: float, gauge_lookback_s: float) -> None:
    """ValueError for options no fetch could work with (at construction: a bad config fails at start)."""
    if isinstance(services, str) or not services or any(not _SERVICE.fullmatch(s) for s in services):
        raise ValueError(f"services: need one or more service names such as {GEMINI_SERVICE}, got {services!r}")
    for name, value in (("timeout", timeout_s), ("lookback", lookback_s), ("gauge_lookback", gauge_lookback_s)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}: must be a positive number of seconds, got {value!r}")
    if lookback_s < 60 or gauge_lookback_s < 60:
        raise ValueError("lookback, gauge_lookback: at least 60 s (Cloud Monitoring's smallest alignment period)")


def valid_project(project: str) -> bool:
    return bool(_PROJECT.fullmatch(project))


class QuotaFetcher:
    """Fetches the quota series of one project at a time; thread-compatible (one fetch at a time)."""

    def __init__(
        self,
        client: MetricServiceClient,
        *,
        services: Sequence[str] = (GEMINI_SERVICE,),
        timeout_s: float = 30.0,
        lookback_s: float = 600.0,
        gauge_lookback_s: float = 90_000.0,
        timezone: str = RESET_TIMEZONE,
    ) -> None:
        check_options(services, timeout_s, lookback_s, gauge_lookback_s)
        self._client = client
        self.services = tuple(services)
        self.timeout_s = timeout_s
        self.lookback_s = lookback_s
        self.gauge_lookback_s = gauge_lookback_s
        self.timezone = timezone
        scope = " OR ".join(f'resource.labels.service = "{s}"' for s in self.services)
        scope = f"({scope})" if len(self.services) > 1 else scope
        self._scope = f'resource.type = "consumer_quota" AND {scope}'

    def close(self) -> None:
        """Close the client's gRPC channel."""
        transport: Any = self._client.transport  # close() is untyped in the library
        transport.close()

    def filter_for(self, metric_type: str) -> str:
        return f'metric.type = "{metric_type}" AND {self._scope}'

    def fetch(self, project: str, now: datetime) -> list[QuotaSeries]:
        """Every quota series of `project` as of `now` (aware); raises FetchError, nothing else."""
        if not valid_project(project):
            raise FetchError("invalid", f"not a project id: {project!r}")
        deadline = time.monotonic() + self.timeout_s
        try:
            rows = self._rate_usage(project, now, deadline)
            rows += self._gauge(
                project, ALLOCATION_USAGE, SeriesKind.ALLOCATION_USAGE, now, self.gauge_lookback_s, deadline
            )
            rows += self._gauge(project, LIMIT, SeriesKind.LIMIT, now, self.gauge_lookback_s, deadline)
            rows += self._gauge(project, EXCEEDED, SeriesKind.EXCEEDED, now, self.lookback_s, deadline)
        except FetchError:
            raise
        except Exception as exc:  # the client library's errors become reasons
            if not isinstance(exc, api.GoogleAPIError | google.auth.exceptions.GoogleAuthError | TimeoutError):
                report_internal_error("quota.fetch", exc, None)  # our bug, not Google's answer: loud in tests
            raise FetchError(error_reason(exc), f"{type(exc).__name__}: {exc}") from exc
        return rows

    def _rate_usage(self, project: str, now: datetime, deadline: float) -> list[QuotaSeries]:
        end = now.replace(second=0, microsecond=0)  # whole minutes: buckets never straddle midnight
        day_start = last_daily_reset(now, self.timezone)
        recent = end - timedelta(seconds=self.lookback_s)
        aggregation = {
            "alignment_period": {"seconds": 60},
            "per_series_aligner": _Aligner.ALIGN_SUM,
            "cross_series_reducer": _Reducer.REDUCE_SUM,
            "group_by_fields": list(_GROUP_BY),
        }
        minutes: dict[tuple[str, str, str, str], dict[datetime, float]] = {}
        units: dict[tuple[str, str, str, str], str] = {}
        for ts in self._list(project, NET_USAGE, min(day_start, recent), end, aggregation, deadline):
            base = _labels(ts, project)[:4]
            units.setdefault(base, str(getattr(ts, "unit", "") or ""))
            buckets = minutes.setdefault(base, {})
            for point in ts.points:
                value = _number(point)
                if value is not None:
                    at = point.interval.end_time
                    buckets[at] = buckets.get(at, 0.0) + value
        rows = []
        for (proj, service, location, metric), buckets in minutes.items():
            if not buckets:
                continue
            newest = max(buckets)
            minute = buckets[newest] if newest > recent else 0.0
            today = sum(v for at, v in buckets.items() if at > day_start)
            unit = units[(proj, service, location, metric)]
            row = QuotaSeries(SeriesKind.RATE_USAGE, proj, service, metric, "", location, minute, today, newest, unit)
            rows.append(row)
        return rows

    def _gauge(
        self, project: str, metric_type: str, kind: SeriesKind, now: datetime, lookback_s: float, deadline: float
    ) -> list[QuotaSeries]:
        aggregation = {
            "alignment_period": {"seconds": int(lookback_s)},
            "per_series_aligner": _Aligner.ALIGN_NEXT_OLDER,
        }
        start = now - timedelta(seconds=lookback_s)
        rows = []
        for ts in self._list(project, metric_type, start, now, aggregation, deadline):
            points = [(p.interval.end_time, _number(p)) for p in ts.points]
            valued = [(at, v) for at, v in points if v is not None]
            if not valued:
                continue
            at, value = max(valued, key=lambda item: item[0])
            proj, service, location, metric, limit_name = _labels(ts, project)
            unit = str(getattr(ts, "unit", "") or "")
            rows.append(QuotaSeries(kind, proj, service, metric, limit_name, location, value, None, at, unit))
        return rows

    def _list(
        self,
        project: str,
        metric_type: str,
        start: datetime,
        end: datetime,
        aggregation: dict[str, Any],
        deadline: float,
    ) -> Iterator[monitoring_v3.TimeSeries]:
        request: dict[str, Any] = {
            "name": f"projects/{project}",
            "filter": self.filter_for(metric_type),
            "interval": {"start_time": start, "end_time": end},
            "aggregation": aggregation,
            "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        }
        token = ""
        for _ in range(MAX_PAGES):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchError("deadline", f"no answer within {self.timeout_s:g}s ({metric_type})")
            page = self._client.list_time_series(
                request={**request, "page_token": token}, timeout=remaining, retry=None
            )
            yield from page.time_series  # the pager's first page only: one RPC per loop, each with its own timeout
            token = str(page.next_page_token)
            if not token:
                return
        raise FetchError("other", f"more than {MAX_PAGES} pages for {metric_type}")


def _labels(ts: monitoring_v3.TimeSeries, project: str) -> tuple[str, str, str, str, str]:
    resource, metric = ts.resource.labels, ts.metric.labels
    return (
        str(resource.get("project_id") or project),
        str(resource.get("service") or ""),
        str(resource.get("location") or "global"),
        str(metric.get("quota_metric") or ""),
        str(metric.get("limit_name") or ""),
    )


def _number(point: monitoring_v3.Point) -> float | None:
    value = monitoring_v3.TypedValue.pb(point.value)
    which = value.WhichOneof("value")
    if which == "int64_value":
        return float(value.int64_value)
    if which == "double_value":
        return float(value.double_value)
    if which == "bool_value":
        return 1.0 if value.bool_value else 0.0
    return None
