"""A fake Cloud Monitoring MetricService: a real gRPC server on 127.0.0.1, port 0, for tests and demos.

The real `MetricServiceClient` talks to it over an insecure channel (google-cloud-monitoring.md section 7), so
the requests, paging, deadlines and error mapping are the library's own:

    with FakeMetricService(page_size=2) as fake:
        fake.add(limit_series("my-project", GENERATE_PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 250, at=t))
        fake.fail(grpc.StatusCode.PERMISSION_DENIED, "monitoring.timeSeries.list denied", times=1)
        QuotaFetcher(fake.client()).fetch("my-project", now)

What it does with a request: the series scripted for the filter's `metric.type`, of the project in `name` and
the service(s) in the filter, with only the points inside the interval (start exclusive, end inclusive, as the
API treats them); series left without points are omitted. It does NOT align or reduce: script points as the API
returns them after alignment (minute buckets for net_usage, newest first). `requests` records every request.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import grpc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3 import MetricServiceClient
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.cloud.monitoring_v3.types import metric_service

from monitor.quota.fetch import ALLOCATION_USAGE, EXCEEDED, LIMIT, NET_USAGE
from monitor.quota.services import GEMINI_SERVICE

SERVICE_NAME: Final = "google.monitoring.v3.MetricService"
GENERATE_PER_MINUTE: Final = "generativelanguage.googleapis.com/generate_requests_per_model"
GENERATE_PER_DAY: Final = "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
FREE_TIER_REQUESTS: Final = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
INPUT_TOKENS: Final = "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count"
GENERATE_METHOD: Final = "google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent"
_METRIC_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
_SERVICE = re.compile(r'resource\.labels?\.service\s*=\s*"([^"]+)"')


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One ListTimeSeries request as the server received it."""

    name: str
    filter: str
    metric_type: str
    start: datetime | None
    end: datetime | None
    alignment_period_s: float
    per_series_aligner: int  # ALIGN_SUM arrives as 14, ALIGN_NEXT_OLDER as 4
    cross_series_reducer: int
    group_by_fields: tuple[str, ...]
    page_token: str


class FakeMetricService:
    """Scriptable ListTimeSeries over real gRPC. `hang_s`: each request waits that long first (a hung server)."""

    def __init__(self, *, page_size: int = 0, hang_s: float = 0.0) -> None:
        self.page_size = page_size  # series per page; 0: everything in one page
        self.hang_s = hang_s
        self.requests: list[RecordedRequest] = []
        self._series: list[monitoring_v3.TimeSeries] = []
        self._errors: list[tuple[Any, str, str | None]] = []  # (code, message, project or None for any)
        self._always: list[tuple[Any, str, str | None]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()  # set on stop: a hanging handler returns at once
        self._channels: list[Any] = []
        self._server: Any = None
        self.port = 0

    # --- scripting ------------------------------------------------------------------------------------------------

    def add(self, *series: monitoring_v3.TimeSeries) -> Self:
        with self._lock:
            self._series.extend(series)
        return self

    def clear(self) -> None:
        with self._lock:
            self._series.clear()

    def fail(self, code: Any, message: str, *, times: int | None = 1, project: str | None = None) -> None:
        """Answer the next `times` requests (of `project`, or any) with this gRPC status; None: until `recover()`."""
        with self._lock:
            if times is None:
                self._always.append((code, message, project))
            else:
                self._errors.extend([(code, message, project)] * times)

    def recover(self) -> None:
        with self._lock:
            self._errors.clear()
            self._always.clear()

    def _error_for(self, project: str) -> tuple[Any, str] | None:
        for scripted in (self._errors, self._always):
            for i, (code, message, only) in enumerate(scripted):
                if only is None or only == project:
                    if scripted is self._errors:
                        del scripted[i]
                    return (code, message)
        return None

    # --- lifecycle ------------------------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._released.clear()
        server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-monitoring"))
        handler = grpc.unary_unary_rpc_method_handler(
            self._list_time_series,
            request_deserializer=metric_service.ListTimeSeriesRequest.deserialize,
            response_serializer=metric_service.ListTimeSeriesResponse.serialize,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"ListTimeSeries": handler}),)
        )
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        self._released.set()
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        if self._server is not None:
            self._server.stop(0).wait(5)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def channel(self) -> Any:
        """A new insecure channel to this server (closed on stop)."""
        channel = grpc.insecure_channel(self.address)
        self._channels.append(channel)
        return channel

    def client(self) -> MetricServiceClient:
        """The real client library on an insecure channel: no credentials, no ADC lookup."""
        return MetricServiceClient(transport=MetricServiceGrpcTransport(channel=self.channel()))

    # --- the RPC --------------------------------------------------------------------------------------------------

    def _list_time_series(
        self, request: metric_service.ListTimeSeriesRequest, context: Any
    ) -> metric_service.ListTimeSeriesResponse:
        match = _METRIC_TYPE.search(request.filter)
        metric_type = match.group(1) if match else ""
        interval, aggregation = request.interval, request.aggregation
        has_start = monitoring_v3.TimeInterval.pb(interval).HasField("start_time")
        has_end = monitoring_v3.TimeInterval.pb(interval).HasField("end_time")
        recorded = RecordedRequest(
            name=request.name,
            filter=request.filter,
            metric_type=metric_type,
            start=interval.start_time if has_start else None,
            end=interval.end_time if has_end else None,
            alignment_period_s=aggregation.alignment_period.total_seconds(),
            per_series_aligner=int(aggregation.per_series_aligner),
            cross_series_reducer=int(aggregation.cross_series_reducer),
            group_by_fields=tuple(aggregation.group_by_fields),
            page_token=request.page_token,
        )
        project = request.name.removeprefix("projects/")
        with self._lock:
            self.requests.append(recorded)
            error = self._error_for(project)
            series = list(self._series)
        if self.hang_s > 0:
            self._released.wait(self.hang_s)
        if error is not None:
            context.abort(error[0], error[1])
        services = set(_SERVICE.findall(request.filter))
        selected = []
        for ts in series:
            labels = ts.resource.labels
            if ts.metric.type != metric_type or labels.get("project_id") != project:
                continue
            if services and labels.get("service") not in services:
                continue
            kept = [p for p in ts.points if _inside(p, recorded.start, recorded.end)]
            if kept:
                copy = monitoring_v3.TimeSeries(ts)
                del copy.points[:]
                copy.points.extend(kept)
                selected.append(copy)
        offset = int(request.page_token or 0)
        size = self.page_size or len(selected) or 1
        page, rest = selected[offset : offset + size], selected[offset + size :]
        token = str(offset + size) if rest else ""
        return metric_service.ListTimeSeriesResponse(time_series=page, next_page_token=token)


def _inside(point: monitoring_v3.Point, start: datetime | None, end: datetime | None) -> bool:
    at = point.interval.end_time
    return (start is None or at > start) and (end is None or at <= end)


# --- realistic series ---------------------------------------------------------------------------------------------


def _series(
    metric_type: str, project: str, quota_metric: str, *, service: str, location: str, kind: str, value_type: str
) -> monitoring_v3.TimeSeries:
    ts = monitoring_v3.TimeSeries()
    ts.metric.type = metric_type
    ts.metric.labels["quota_metric"] = quota_metric
    ts.resource.type = "consumer_quota"
    ts.resource.labels["project_id"] = project
    ts.resource.labels["service"] = service
    ts.resource.labels["location"] = location
    ts.metric_kind = kind
    ts.value_type = value_type
    return ts


def _point(end: datetime, start: datetime | None = None, **value: Any) -> monitoring_v3.Point:
    point = monitoring_v3.Point()
    point.interval.end_time = end
    if start is not None:
        point.interval.start_time = start
    for field, v in value.items():
        setattr(point.value, field, v)
    return point


def usage_series(
    project: str,
    quota_metric: str,
    minutes: Iterable[tuple[datetime, int]],
    *,
    service: str = GEMINI_SERVICE,
    location: str = "global",
    method: str | None = GENERATE_METHOD,
) -> monitoring_v3.TimeSeries:
    """`quota/rate/net_usage`, DELTA INT64: (end of minute, requests in that minute) points, newest first."""
    ts = _series(NET_USAGE, project, quota_metric, service=service, location=location, kind="DELTA", value_type="INT64")
    if method is not None:
        ts.metric.labels["method"] = method
    for end, value in sorted(minutes, key=lambda m: m[0], reverse=True):
        ts.points.append(_point(end, end - timedelta(minutes=1), int64_value=value))
    return ts


def limit_series(
    project: str,
    quota_metric: str,
    limit_name: str,
    value: int,
    *,
    at: datetime,
    service: str = GEMINI_SERVICE,
    location: str = "global",
) -> monitoring_v3.TimeSeries:
    """`quota/limit`, GAUGE INT64, one point at `at`."""
    ts = _series(LIMIT, project, quota_metric, service=service, location=location, kind="GAUGE", value_type="INT64")
    ts.metric.labels["limit_name"] = limit_name
    ts.points.append(_point(at, int64_value=value))
    return ts


def exceeded_series(
    project: str,
    quota_metric: str,
    limit_name: str,
    exceeded: bool,
    *,
    at: datetime,
    service: str = GEMINI_SERVICE,
    location: str = "global",
) -> monitoring_v3.TimeSeries:
    """`quota/exceeded`, GAUGE BOOL, one point at `at`."""
    ts = _series(EXCEEDED, project, quota_metric, service=service, location=location, kind="GAUGE", value_type="BOOL")
    ts.metric.labels["limit_name"] = limit_name
    ts.points.append(_point(at, bool_value=exceeded))
    return ts


def allocation_series(
    project: str,
    quota_metric: str,
    value: float,
    *,
    at: datetime,
    service: str = GEMINI_SERVICE,
    location: str = "global",
) -> monitoring_v3.TimeSeries:
    """`quota/allocation/usage`, GAUGE (no limit_name label: the pitfall); a float value is sent as DOUBLE."""
    value_type = "INT64" if float(value).is_integer() else "DOUBLE"
    ts = _series(
        ALLOCATION_USAGE, project, quota_metric, service=service, location=location, kind="GAUGE", value_type=value_type
    )
    point = _point(at, int64_value=int(value)) if value_type == "INT64" else _point(at, double_value=float(value))
    ts.points.append(point)
    return ts


# --- no credentials, and nothing leaves loopback ------------------------------------------------------------------


def no_credentials_env(home: Path, metadata_host: str = "127.0.0.1:9") -> dict[str, str]:
    """Environment under which google-auth finds no credentials and never reaches a real metadata server.

    GOOGLE_APPLICATION_CREDENTIALS names a missing file (google.auth.default() fails on it first); HOME and
    CLOUDSDK_CONFIG point at `home`, so no gcloud ADC file is found; NO_GCE_CHECK must be exactly "true"
    (google-auth compares the lowercase string, and reads it once, at import: in-process it only helps a fresh
    interpreter); the metadata host and IP point at loopback in case anything probes anyway.
    """
    return {
        "GOOGLE_APPLICATION_CREDENTIALS": str(home / "missing-key.json"),
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "gcloud"),
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": metadata_host,
        "GCE_METADATA_IP": metadata_host,
    }


class MetadataSentinel:
    """A loopback TCP listener that counts connections: point GCE_METADATA_HOST at it to prove nobody probed."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, name="metadata-sentinel", daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._socket.close()
        self._thread.join(2)
