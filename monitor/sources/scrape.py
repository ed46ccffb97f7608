"""Scrape source: reads `nbmon_requests_total` from the Prometheus text exposition of one or more targets.

Values are summed over the targets that answered. A sum is only comparable with the previous read if the
same targets fed it, so a series is left ABSENT (never zero) from a Reading when the set of targets feeding it
changed (a target failed, returned or is new) or when one of several feeding targets reset its counter: the
window treats an absent series as no data and re-baselines, instead of seeing a drop (a false reset) or a jump.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from monitor import _safety
from monitor.signals import REQUESTS_METRIC, Reading, Series
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

SCRAPE_ERROR_REASONS = ("connect", "timeout", "http_status", "parse", "too_large")
# prometheus_client answers OpenMetrics whenever the Accept header names it, whatever its q; naming only
# text/plain keeps the plain format from Python apps, and */* still lets OpenMetrics-only exporters answer.
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
_OPENMETRICS = "application/openmetrics-text"
_NOT_EXPOSITIONS = frozenset({"text/html", "application/json", "application/xml", "text/xml"})


class ExpositionError(ValueError):
    """The body is not a usable exposition (garbage, truncated, HTML...)."""


def parse_exposition(text: str, *, content_type: str = "", metric: str = REQUESTS_METRIC) -> dict[Series, float]:
    """Sums the samples of the counter `metric` per series; raises ExpositionError and nothing else."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in _NOT_EXPOSITIONS:
        raise ExpositionError(f"content type {mime} is not a metrics exposition")
    # Counter samples are named `<family>_total` whatever the family is called (the parsers strip `_total`
    # from counter family names, and `_created` samples share the family): match on the sample name.
    sample_name = metric if metric.endswith("_total") else f"{metric}_total"
    openmetrics = mime == _OPENMETRICS or text.rstrip().endswith("# EOF")
    # The text format ends every line with \n: a body cut mid-line would otherwise parse as a smaller
    # count (`...} 12` cut to `...} 1`), which looks like a counter reset. OpenMetrics has `# EOF` for that.
    if not openmetrics and text and not text.endswith("\n"):
        raise ExpositionError("truncated: the last line does not end with a newline")
    parse = openmetrics_families if openmetrics else text_families
    values: dict[Series, float] = {}
    seen: set[frozenset[tuple[str, str]]] = set()
    try:
        for family in parse(text):
            for sample in family.samples:
                if sample.name == sample_name:
                    labels = frozenset(sample.labels.items())
                    if labels in seen:
                        # Prometheus refuses such a scrape: summing would double a series and fake a ratio.
                        raise ExpositionError(f"duplicate series {sample_name}{_labels_text(sample.labels)}")
                    seen.add(labels)
                    add_sample(values, sample.labels, float(sample.value))
    except ExpositionError:
        raise
    except Exception as exc:  # the parsers mostly raise ValueError, but garbage finds other paths
        raise ExpositionError(f"{type(exc).__name__}: {exc}"[:200]) from exc
    return values


def _labels_text(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return "{" + inner[:160] + "}"


class ScrapeSource:
    """A `CounterSource` over HTTP; read() never raises and has one caller at a time, status() any thread."""

    def __init__(
        self,
        targets: Iterable[str],
        *,
        http_client: httpx.Client | None = None,
        timeout_s: float = 5.0,
        metric: str = REQUESTS_METRIC,
        clock: Callable[[], float] = time.monotonic,
        on_error: ErrorCallback | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        name: str = "scrape",
    ) -> None:
        if isinstance(targets, str):  # a bare string would be iterated into one-letter "targets"
            raise TypeError("ScrapeSource.targets: a list of URLs, not a string")
        self._targets = list(targets)
        if not self._targets:
            raise ValueError("ScrapeSource.targets: at least one target is required")
        if len(set(self._targets)) != len(self._targets):
            raise ValueError("ScrapeSource.targets: a target is listed twice (it would be counted twice)")
        for target in self._targets:
            if httpx.URL(target).scheme not in ("http", "https"):
                raise ValueError(f"ScrapeSource.targets: {display(target)!r} is not an http(s) URL")
        if timeout_s <= 0:
            raise ValueError("ScrapeSource.timeout_s: must be > 0")
        if max_bytes <= 0:
            raise ValueError("ScrapeSource.max_bytes: must be > 0")
        self.name = name
        self._own_client = http_client is None
        # Like Prometheus, no proxy from the environment: an HTTP(S)_PROXY set for Slack/PagerDuty egress
        # must not capture the scrape of the app next door.
        self._client = http_client if http_client is not None else httpx.Client(trust_env=False)
        self._timeout_s = timeout_s
        self._metric = metric
        self._clock = clock
        self._max_bytes = max_bytes
        self._tracker = Tracker(name, self._targets, on_error)
        self._last: dict[str, dict[Series, float]] = {}  # per target, its last successful values
        self._feeders: dict[Series, frozenset[str]] = {}  # per series, the targets that fed it last read

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    def read(self) -> Reading:
        try:
            return self._read()
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the daemon's loop
            _safety.report_internal_error(f"sources.{self.name}", exc, None)
            return Reading(at=time.monotonic(), ok=False, error=f"internal: {type(exc).__name__}")

    def status(self) -> dict[str, TargetStatus]:
        """Per target: ok, last error and reason, last success time, failure streak, errors per reason."""
        return self._tracker.snapshot()

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> ScrapeSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _read(self) -> Reading:
        answered: dict[str, dict[Series, float]] = {}
        failures: list[str] = []
        for target in self._targets:
            try:
                values = self._fetch(target)
            except SourceError as error:
                self._tracker.failure(target, error, self._clock())
                failures.append(f"{display(target)}: {error}")
                continue
            answered[target] = values
            self._tracker.success(target, self._clock())
        at = self._clock()
        if not answered:
            return Reading(at=at, ok=False, error=f"all {len(failures)} targets failed: " + "; ".join(failures))
        return Reading(at=at, values=self._merge(answered))

    def _fetch(self, target: str) -> dict[Series, float]:
        deadline = time.monotonic() + self._timeout_s
        try:
            with self._client.stream("GET", target, headers={"Accept": ACCEPT}, timeout=self._timeout_s) as resp:
                if resp.status_code != 200:
                    raise SourceError("http_status", f"HTTP {resp.status_code}")
                body = read_limited(resp, self._max_bytes, deadline)
                content_type = resp.headers.get("content-type", "")
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError("parse", f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
        try:
            return parse_exposition(text, content_type=content_type, metric=self._metric)
        except ExpositionError as exc:
            raise SourceError("parse", str(exc)) from exc

    def _merge(self, answered: Mapping[str, dict[Series, float]]) -> dict[Series, float]:
        feeders: dict[Series, set[str]] = {}
        for target, values in answered.items():
            for series in values:
                feeders.setdefault(series, set()).add(target)
        merged: dict[Series, float] = {}
        for series, targets in feeders.items():
            previous = self._feeders.get(series)
            changed = previous is not None and previous != targets
            # One target's reset is visible as a drop of its own value, but hidden in a sum of several.
            reset = len(targets) > 1 and any(
                answered[t][series] < self._last.get(t, {}).get(series, 0.0) for t in targets
            )
            if not (changed or reset):
                merged[series] = sum(answered[t][series] for t in targets)
        self._feeders = {series: frozenset(targets) for series, targets in feeders.items()}
        self._last.update(answered)
        return merged
