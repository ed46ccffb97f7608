"""PromQL source (fleet mode): counts over a window from a Prometheus-compatible query API.

Works with Prometheus, Thanos, Mimir and Google Managed Prometheus: all serve `{base}/api/v1/query` with the
same JSON. GMP needs `Authorization: Bearer ...`: pass `headers`, or `headers_factory` for tokens that expire
(google-auth credentials, refreshed by the caller); this module does no Google auth itself.

`align_s` makes replicas agree. `increase()` over a short window is a sawtooth: it extrapolates to the window's
edges, so its value moves between scrapes as samples cross the edges. Sidecars asking at their own instants see
different ratios, and near the threshold one can drop back to `ok` and restart its hold a scrape later than the
others (measured on Prometheus 2.42: a 0.306 ratio read 0.300 0.4 s later). Asked at wall-clock instants on a
shared grid, every sidecar of a fleet reads the same numbers for the same instant.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal

import httpx

from monitor import _safety
from monitor.net import trust_env_for
from monitor.signals import Counts, Series
from monitor.sources._common import (
    DEFAULT_MAX_BYTES,
    ErrorCallback,
    SourceError,
    TargetStatus,
    Tracker,
    add_sample,
    display,
    read_limited,
    transport_error,
)

DEFAULT_QUERY = "sum by (model, code, error_class) (increase(nbmon_requests_total[{window}]))"
PROMQL_ERROR_REASONS = ("connect", "timeout", "http_status", "parse", "too_large", "query", "auth")
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def prometheus_duration(seconds: float) -> str:
    """Renders seconds as a Prometheus duration in the largest exact unit: 60 -> 1m, 90 -> 90s, 3600 -> 1h."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"window {seconds!r}: must be a positive number of seconds")
    millis = round(seconds * 1000)
    if millis < 1:
        raise ValueError(f"window {seconds!r}: shorter than 1ms")
    unit, size = next((unit, size) for unit, size in _UNITS if millis % size == 0)
    return f"{millis // size}{unit}"


class PromQLSource:
    """A `WindowSource` over `GET|POST {base_url}/api/v1/query`; counts() never raises."""

    def __init__(
        self,
        base_url: str,
        *,
        http_client: httpx.Client | None = None,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        headers_factory: Callable[[], Mapping[str, str]] | None = None,
        query_template: str = DEFAULT_QUERY,
        clock: Callable[[], float] = time.monotonic,
        method: Literal["GET", "POST"] = "GET",
        on_error: ErrorCallback | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        name: str = "promql",
        align_s: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`align_s`: evaluate at `time` = a multiple of this many seconds of the wall clock, half a step back at
        least (so that a scrape in flight at the grid instant is stored by the time any replica asks); None: now."""
        if httpx.URL(base_url).scheme not in ("http", "https"):
            raise ValueError(f"PromQLSource.base_url: {display(base_url)!r} is not an http(s) URL")
        # Substituted with str.replace, not str.format: PromQL's own braces ({job="x"}) would break format().
        if "{window}" not in query_template:
            raise ValueError("PromQLSource.query_template: must contain {window}")
        if timeout_s <= 0:
            raise ValueError("PromQLSource.timeout_s: must be > 0")
        if method not in ("GET", "POST"):
            raise ValueError("PromQLSource.method: GET or POST")
        if align_s is not None and not (math.isfinite(align_s) and align_s > 0):
            raise ValueError("PromQLSource.align_s: must be > 0")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._url = f"{self.base_url}/api/v1/query"
        self._own_client = http_client is None
        self._client = http_client if http_client is not None else httpx.Client(trust_env=trust_env_for(base_url))
        self._timeout_s = timeout_s
        self._headers = dict(headers or {})
        self._headers_factory = headers_factory
        self._template = query_template
        self._clock = clock
        self._method = method
        self._max_bytes = max_bytes
        self._align_s, self._wall = align_s, wall
        self._tracker = Tracker(name, [self.base_url], on_error)

    def render_query(self, window_s: float) -> str:
        return self._template.replace("{window}", prometheus_duration(window_s))

    def counts(self, window_s: float) -> tuple[Counts, str | None]:
        """Counts per series over the last `window_s` seconds, or ({}, error) when the query failed."""
        try:
            return self._counts(window_s)
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the daemon's loop
            _safety.report_internal_error(f"sources.{self.name}", exc, None)
            return {}, f"internal: {type(exc).__name__}"

    def status(self) -> dict[str, TargetStatus]:
        return self._tracker.snapshot()

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> PromQLSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _counts(self, window_s: float) -> tuple[Counts, str | None]:
        try:
            query = self.render_query(window_s)
        except ValueError as exc:  # a caller's mistake, not the server's: not counted against the target
            return {}, f"window: {exc}"
        try:
            values = self._query(query)
        except SourceError as error:
            self._tracker.failure(self.base_url, error, self._clock())
            return {}, str(error)
        self._tracker.success(self.base_url, self._clock())
        return values, None

    def _query(self, query: str) -> dict[Series, float]:
        headers = {"Accept": "application/json", **self._headers}
        if self._headers_factory is not None:
            try:
                headers.update(self._headers_factory())
            except Exception as exc:  # e.g. a token refresh that failed
                raise SourceError("auth", f"headers_factory: {type(exc).__name__}: {exc}"[:300]) from exc
        # POST (form) keeps long queries out of URL length limits; GET is what every proxy understands.
        params = {"query": query}
        if self._align_s is not None:
            step = self._align_s
            params["time"] = f"{math.floor(self._wall() / step - 0.5) * step:.3f}"
        request: dict[str, Any] = {"params": params} if self._method == "GET" else {"data": params}
        deadline = time.monotonic() + self._timeout_s
        try:
            with self._client.stream(
                self._method, self._url, headers=headers, timeout=self._timeout_s, **request
            ) as resp:
                body = read_limited(resp, self._max_bytes, deadline)
                status = resp.status_code
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if status != 200:  # Prometheus answers 400/422/503 with the usual error JSON; proxies with anything
            raise SourceError("http_status", f"HTTP {status}: {_error_detail(body)}")
        try:
            payload = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise SourceError("parse", f"invalid JSON: {exc}"[:300]) from exc
        if not isinstance(payload, dict):
            raise SourceError("parse", "the response is not a JSON object")
        if payload.get("status") != "success":
            raise SourceError("query", _error_detail(body))
        return _vector(payload.get("data"))


def _error_detail(body: bytes) -> str:
    """`errorType: error` from a Prometheus error body, else the start of the body."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and ("error" in payload or "errorType" in payload):
        return f"{payload.get('errorType', 'error')}: {payload.get('error', '')}"[:300]
    text = body[:200].decode("utf-8", "replace").strip()
    return " ".join(text.split()) or "empty body"


def _vector(data: object) -> dict[Series, float]:
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise SourceError("parse", f"expected an instant vector, got {kind!r}")
    values: dict[Series, float] = {}
    for item in data["result"]:
        try:
            labels, (_, raw) = item["metric"], item["value"]
            value = float(raw)  # sent as a string: "123.4", "NaN", "+Inf"
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError("parse", f"malformed vector element: {str(item)[:100]}") from exc
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise SourceError("parse", f"malformed labels: {str(labels)[:100]}")
        add_sample(values, labels, value)  # NaN (no samples in the window) and Inf are skipped
    return values
