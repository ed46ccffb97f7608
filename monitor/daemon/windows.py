"""The error signal as the rules read it: counts over each rule's window, from whichever source is configured.

Sources come in two shapes (`monitor.signals`): cumulative counters read on a schedule (scrape, in-process),
which need a `CounterWindow` to become counts over a window, and sources that answer counts over a window
themselves (PromQL). `WindowedSignal` is the one shape the daemon sees; `signal_from_config` picks the one
adapter, so nothing downstream branches on the kind of source.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from monitor.alerts import CounterWindow
from monitor.labels import OTHER, BoundedLabel
from monitor.signals import CounterSource, Counts, Reading, Series, WindowSource
from monitor.taxonomy import ErrorClass

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from monitor.daemon.config import DaemonConfig

_ERROR_CLASSES = frozenset(c.value for c in ErrorClass)
WindowCounts = dict[float, Counts | None]  # window seconds -> counts (None: no data, the rules hold)


class WindowedSignal(Protocol):
    """Counts of `nbmon_requests_total` series over windows, labels bounded. Never raises."""

    name: str

    def read(self) -> Reading | None:
        """The scheduled read: the reading taken (labels bounded), or None for a source queried at evaluation."""
        ...

    def counts(self, windows: Iterable[float], now: float) -> WindowCounts:
        """Counts over each window ending `now` (monotonic seconds)."""
        ...

    def close(self) -> None:
        """Abort a read or query in flight (shutdown)."""
        ...


class SeriesBounds:
    """Label values as the shim bounds them: the configured and catalog models plus a few more, known codes and
    classes; the rest is `other` (summed). A source with churning labels cannot grow memory or /metrics."""

    def __init__(self, known_models: Iterable[str], max_extra_models: int) -> None:
        self._model = BoundedLabel(known_models, max_extra_models)

    def __call__(self, counts: Counts) -> Counts:
        bounded: dict[Series, float] = {}
        for series, value in counts.items():
            code = series.code if series.code == "none" or (len(series.code) == 3 and series.code.isdigit()) else OTHER
            cls = series.error_class if series.error_class in _ERROR_CLASSES else OTHER
            key = Series(self._model(series.model), code, cls)
            bounded[key] = bounded.get(key, 0.0) + value
        return bounded


class BufferedCounters:
    """A counter source read on a schedule into a `CounterWindow`; windows are answered from the buffer."""

    def __init__(
        self,
        source: CounterSource,
        window: CounterWindow,
        bound: Callable[[Counts], Counts],
        on_success: Callable[[], None],
        close: Callable[[], None] | None = None,
    ) -> None:
        """`close`: what aborts a read in flight, for a source the daemon built (an injected one is its owner's)."""
        self.name = source.name
        self._source, self._window, self._bound = source, window, bound
        self._on_success, self._close = on_success, close
        self._lock = threading.Lock()  # the read job adds while the evaluation job reads

    def read(self) -> Reading:
        reading = self._source.read()  # network I/O outside the lock: a slow target blocks nobody else
        reading = dataclasses.replace(reading, values=self._bound(reading.values))
        if reading.ok:
            with self._lock:
                self._window.add(reading)
            self._on_success()
        return reading

    def counts(self, windows: Iterable[float], now: float) -> WindowCounts:
        with self._lock:
            # No readings in the window is "no data", not zero traffic: the rules then hold their state.
            return {w: self._window.counts(w, now) if self._window.coverage(w, now) > 0 else None for w in windows}

    def close(self) -> None:
        if self._close is not None:
            self._close()


class QueriedWindows:
    """A source that answers each window itself (PromQL over the fleet); nothing to read on a schedule."""

    def __init__(
        self,
        source: WindowSource,
        bound: Callable[[Counts], Counts],
        on_success: Callable[[], None],
        close: Callable[[], None] | None = None,
    ) -> None:
        self.name = source.name
        self._source, self._bound, self._on_success, self._close = source, bound, on_success, close

    def read(self) -> None:
        return None

    def counts(self, windows: Iterable[float], now: float) -> WindowCounts:
        found: WindowCounts = {}
        for window_s in windows:
            result, error = self._source.counts(window_s)
            found[window_s] = None if error is not None or result is None else self._bound(result)
            if error is None:
                self._on_success()
        return found

    def close(self) -> None:
        if self._close is not None:
            self._close()


def signal_from_config(
    config: DaemonConfig,
    window: CounterWindow,
    bound: Callable[[Counts], Counts],
    on_success: Callable[[], None],
    on_error: Callable[[str, str], None],
    *,
    proxy_registry: CollectorRegistry | None = None,
) -> WindowedSignal:
    """The source `[source]` configures, in the shape the daemon reads; `proxy_registry` holds the counters of
    the proxy this daemon serves (source kind `proxy`)."""
    from monitor.sources import InProcessSource, PromQLSource, ScrapeSource

    if config.source_kind == "proxy" and proxy_registry is not None:
        proxy = InProcessSource(proxy_registry, on_error=on_error)
        return BufferedCounters(proxy, window, bound, on_success)

    if config.source_kind == "promql" and config.promql_url:
        # Asked on the evaluation grid of the wall clock: every sidecar of the fleet reads the same instants.
        promql = PromQLSource(config.promql_url, on_error=on_error, align_s=config.evaluation_interval_s)
        return QueriedWindows(promql, bound, on_success, close=promql.close)
    if config.source_kind == "inprocess":
        from prometheus_client import REGISTRY

        return BufferedCounters(InProcessSource(REGISTRY, on_error=on_error), window, bound, on_success)
    scrape = ScrapeSource(config.targets, on_error=on_error)
    return BufferedCounters(scrape, window, bound, on_success, close=scrape.close)


def error_ratios(counts: Mapping[Series, float]) -> dict[tuple[str, str], float]:
    """(model, error_class) -> its share of the model's calls in `counts`."""
    totals: dict[str, float] = {}
    by_class: dict[tuple[str, str], float] = {}
    for series, value in counts.items():
        totals[series.model] = totals.get(series.model, 0.0) + value
        key = (series.model, series.error_class)
        by_class[key] = by_class.get(key, 0.0) + value
    return {key: value / totals[key[0]] for key, value in by_class.items() if totals[key[0]] > 0}
