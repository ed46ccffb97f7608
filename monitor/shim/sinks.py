"""Where the shim's per-call numbers go: two interchangeable sinks behind `ShimMetrics`.

`FoldedShimMetrics` (the default) queues each call's numbers and folds them into plain dicts when the
registry is collected. prometheus_client's Counter and Histogram objects validate, lock and dispatch on
every operation; the ten of them per generate call measured about 60 us in place (the SDK's parsing
leaves the caches cold), a quarter of the shim's cost, and even one lock and ten dict updates measured
about 15-20 us. The exposition is the same: names, labels, buckets, `_created` samples.

`ClientShimMetrics` uses prometheus_client's own objects. It is chosen in prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR set), whose values live in files that only those objects write.
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from monitor._safety import report_internal_error
from monitor.wire import REQUESTS_METRIC

# Generation takes 10-30 s at 1K and can pass 80 s at 4K under load; buckets reach 600 s.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600)

REQUESTS_TOTAL = REQUESTS_METRIC
REQUEST_DURATION = "nbmon_request_duration_seconds"
GENERATIONS_TOTAL = "nbmon_generations"
GENERATION_DURATION = "nbmon_generation_duration_seconds"
IMAGES_TOTAL = "nbmon_images"
COST_TOTAL = "nbmon_estimated_cost_usd"
TOKENS_TOTAL = "nbmon_tokens"
BLOCKS_TOTAL = "nbmon_blocks"
REROUTES_TOTAL = "nbmon_model_reroutes"
DEPRECATED_CALLS_TOTAL = "nbmon_deprecated_model_calls"
TIER_DOWNGRADES_TOTAL = "nbmon_service_tier_downgrades"
CAUSES_TOTAL = "nbmon_error_causes"


@dataclass(frozen=True, eq=False)  # identity hash: specs key the per-call tables
class _Spec:
    name: str
    help: str
    labels: tuple[str, ...]
    histogram: bool = False


REQUESTS = _Spec(
    REQUESTS_TOTAL,
    "HTTP attempts to the Gemini API, SDK retries included, by HTTP code and error class.",
    ("model", "code", "error_class"),
)
REQUEST_DURATIONS = _Spec(
    REQUEST_DURATION,
    "Duration of one HTTP attempt (streams: until the last chunk).",
    ("model", "error_class"),
    histogram=True,
)
GENERATIONS = _Spec(
    GENERATIONS_TOTAL,
    "Logical generate calls, counted once after the SDK's own retries.",
    ("model", "error_class"),
)
GENERATION_DURATIONS = _Spec(
    GENERATION_DURATION,
    "Duration of one logical generate call, SDK retries and waits included.",
    ("model", "error_class"),
    histogram=True,
)
IMAGES = _Spec(
    IMAGES_TOTAL,
    "Images returned; kind is final (billed) or thought (interim, not billed).",
    ("model", "image_size", "kind"),
)
COST = _Spec(
    COST_TOTAL,
    "Estimated spend in USD: final images times the catalog's price for the model that served them and the"
    " service tier that was applied; failures are not billed.",
    ("model", "image_size", "service_tier"),
)
TOKENS = _Spec(TOKENS_TOTAL, "Tokens from usageMetadata; type is input, output or thoughts.", ("model", "type"))
BLOCKS = _Spec(
    BLOCKS_TOTAL,
    "Content blocks; stage is input (promptFeedback) or output (finishReason).",
    ("model", "stage", "reason"),
)
REROUTES = _Spec(
    REROUTES_TOTAL,
    "Calls answered by another model than the one requested (the response's modelVersion), e.g. a deprecated ID"
    " routed to its successor.",
    ("requested", "served"),
)
DEPRECATED_CALLS = _Spec(
    DEPRECATED_CALLS_TOTAL,
    "Calls that requested a model the catalog lists as deprecated or retired on the day of the call.",
    ("model", "lifecycle"),
)
TIER_DOWNGRADES = _Spec(
    TIER_DOWNGRADES_TOTAL,
    "Calls served at another service tier than requested (x-gemini-service-tier), e.g. priority served at standard.",
    ("model", "requested", "served"),
)
CAUSES = _Spec(
    CAUSES_TOTAL,
    "HTTP attempts refused for a cause the error class alone does not tell (spend_cap, prepaid_credits,"
    " spend_rate_limit, limit_lowered, capacity_exhausted).",
    ("model", "error_class", "cause"),
)
SPECS = (
    REQUESTS, REQUEST_DURATIONS, GENERATIONS, GENERATION_DURATIONS, IMAGES, COST, TOKENS, BLOCKS,
    REROUTES, DEPRECATED_CALLS, TIER_DOWNGRADES, CAUSES,
)  # fmt: skip


class GenerationNotes(NamedTuple):
    """The rare facts of a call, counted when present: most calls carry none (None instead of this)."""

    lifecycle: str | None = None  # deprecated | retired: the requested model's, on the day of the call
    served_model: str | None = None  # another model answered (a reroute): its label value
    served_tier: str | None = None  # another service tier than requested was applied
    requested_tier: str | None = None


def multiprocess_mode() -> bool:
    """prometheus_client's own test (values.get_value_class): either name set, even empty."""
    legacy = "prometheus_multiproc_dir"
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ or legacy in os.environ


_PROBE = Counter("nbmon_created_probe", "Asks prometheus_client whether it writes _created samples.", registry=None)


def _created_series_on() -> bool:
    """Whether prometheus_client writes `_created` now (PROMETHEUS_DISABLE_CREATED_SERIES at import, or
    disable_created_metrics() since): asked through its public API, a collect() of an unregistered counter.
    Once per scrape, never per call."""
    return any(sample.name.endswith("_created") for family in _PROBE.collect() for sample in family.samples)


_LE: dict[float, str] = {}  # bucket bound -> `le` label, as prometheus_client writes it
# Typed here: prometheus_client annotates floatToGoString from 0.26 on, not before.
_float_to_go: Callable[[float], str] = floatToGoString


def _le(bound: float) -> str:
    label = _LE.get(bound)
    if label is None:
        label = _LE[bound] = str(_float_to_go(bound))
    return label


_Cell = list[float]  # counter: [value, created]; histogram: [bucket counts..., sum, created]


def generation_counts(
    model: str,
    error_class: str,
    image_size: str,
    images: tuple[int, int],
    cost_usd: float | None,
    tokens: tuple[int, int, int],
    block: tuple[str, str] | None,
    service_tier: str = "standard",
    notes: GenerationNotes | None = None,
) -> list[tuple[_Spec, tuple[str, ...], float]]:
    """The counter increments of one logical call, for both sinks: (metric, label values, amount).

    images = (final, thought); tokens = (input, output, thoughts): zeros are not counted. cost_usd is None
    when nothing was billed or the model has no price; 0.0 (a free model) is counted.
    """
    counts: list[tuple[_Spec, tuple[str, ...], float]] = [(GENERATIONS, (model, error_class), 1.0)]
    if images[0] > 0:
        counts.append((IMAGES, (model, image_size, "final"), images[0]))
    if cost_usd is not None:
        counts.append((COST, (model, image_size, service_tier), cost_usd))
    if images[1] > 0:
        counts.append((IMAGES, (model, image_size, "thought"), images[1]))
    for kind, count in zip(("input", "output", "thoughts"), tokens, strict=True):
        if count > 0:
            counts.append((TOKENS, (model, kind), count))
    if block is not None:
        counts.append((BLOCKS, (model, *block), 1.0))
    if notes is not None:
        if notes.lifecycle is not None:
            counts.append((DEPRECATED_CALLS, (model, notes.lifecycle), 1.0))
        if notes.served_model is not None:
            counts.append((REROUTES, (model, notes.served_model), 1.0))
        if notes.served_tier is not None:
            counts.append((TIER_DOWNGRADES, (model, notes.requested_tier or "standard", notes.served_tier), 1.0))
    return counts


def attempt_counts(
    model: str, code: str, error_class: str, cause: str | None
) -> list[tuple[_Spec, tuple[str, ...], float]]:
    """The counter increments of one HTTP attempt, for both sinks."""
    counts: list[tuple[_Spec, tuple[str, ...], float]] = [(REQUESTS, (model, code, error_class), 1.0)]
    if cause is not None:
        counts.append((CAUSES, (model, error_class, cause), 1.0))
    return counts


_ATTEMPT, _GENERATION = 0, 1  # record tags: one queue keeps a call's attempt ahead of its generation
_Record = tuple[Any, ...]  # (_ATTEMPT, model, code, error_class, seconds, time) or (_GENERATION, ..., time)


def _number(value: object) -> float:
    """A duration or an amount as prometheus_client takes it: an int or a float."""
    if not isinstance(value, int | float):
        raise TypeError(f"a metric value must be an int or a float, not {type(value).__name__}")
    return float(value)


# A fold may run on the thread of a finalizer that records (a stream dropped during a GC pass inside a fold):
# the call path never waits for the lock, so it cannot deadlock on one its own thread holds. A child process
# gets fresh locks, in case it was forked while another thread held one.
_live_sinks: weakref.WeakSet[FoldedShimMetrics] = weakref.WeakSet()


def _fresh_locks_after_fork() -> None:
    for sink in list(_live_sinks):
        sink._lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_fresh_locks_after_fork)


class FoldedShimMetrics:
    """A prometheus_client collector over plain dicts. Register it on one registry.

    record_* only append the call's numbers, with their time, to a queue. The queue is folded into the
    tables when the registry is collected (a scrape), and on the call path once `fold_every` records wait
    (an app nobody scrapes) unless a fold is running. A scrape thus shows every record appended before it
    began, in order, as if each call had added its own; the call pays an append instead of a lock and ten
    table updates (measured about 1.3% of a ~50 KB call in place; see docs/benchmarks.md). `_created`
    is the time of a series' first record.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        buckets: Sequence[float] = DURATION_BUCKETS,
        *,
        fold_every: int = 1024,
        on_error: Callable[[Exception], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if fold_every < 1:
            raise ValueError(f"fold_every: {fold_every} is not a positive number of records")
        self._bounds = (*sorted(float(b) for b in buckets), math.inf)
        self._lock = threading.Lock()  # the tables and the popping end of the queue; appenders never take it
        self._tables: dict[_Spec, dict[tuple[str, ...], _Cell]] = {spec: {} for spec in SPECS}
        self._pending: deque[_Record] = deque()  # append and popleft are atomic: no record is lost in a race
        self._fold_every = fold_every
        self._on_error = on_error
        self._clock = clock
        registry.register(self)
        _live_sinks.add(self)

    def record_attempt(self, model: str, code: str, error_class: str, seconds: float, cause: str | None = None) -> None:
        pending = self._pending
        pending.append((_ATTEMPT, model, code, error_class, seconds, cause, self._clock()))
        if len(pending) >= self._fold_every:
            self._fold_unless_busy()

    def record_generation(
        self,
        model: str,
        error_class: str,
        seconds: float,
        image_size: str,
        images: tuple[int, int],
        cost_usd: float | None,
        tokens: tuple[int, int, int],
        block: tuple[str, str] | None,
        service_tier: str = "standard",
        notes: GenerationNotes | None = None,
    ) -> None:
        """One logical call; what is counted is generation_counts()'s rule."""
        pending = self._pending
        record = (
            _GENERATION, model, error_class, seconds, image_size, images, cost_usd, tokens, block, service_tier, notes,
            self._clock(),
        )  # fmt: skip
        pending.append(record)
        if len(pending) >= self._fold_every:
            self._fold_unless_busy()

    def waiting(self) -> int:
        """Records appended and not folded yet."""
        return len(self._pending)

    def fold(self) -> None:
        """Adds the records waiting now to the tables (waits for a fold in progress)."""
        with self._lock:
            errors = self._fold_locked()
        self._report(errors)

    def _fold_unless_busy(self) -> None:
        if not self._lock.acquire(blocking=False):
            return  # a fold is running (a scrape, or this very thread): the records wait for the next
        try:
            errors = self._fold_locked()
        finally:
            self._lock.release()
        self._report(errors)

    def _fold_locked(self) -> list[Exception]:
        errors: list[Exception] = []
        pending = self._pending
        for _ in range(len(pending)):  # only what waits now: a fold ends even while calls keep appending
            record = pending.popleft()
            try:
                self._fold_record(record)
            except Exception as error:  # noqa: BLE001 - one odd record must not stop a scrape
                errors.append(error)
        return errors

    def _fold_record(self, record: _Record) -> None:
        """Checks everything first, then changes the tables: a record is added whole or not at all."""
        tables = self._tables
        if record[0] == _ATTEMPT:
            _, model, code, error_class, seconds, cause, now = record
            counts = attempt_counts(model, code, error_class, cause)
            durations = tables[REQUEST_DURATIONS]
        else:
            _, model, error_class, seconds, image_size, images, cost_usd, tokens, block, tier, notes, now = record
            counts = generation_counts(model, error_class, image_size, images, cost_usd, tokens, block, tier, notes)
            durations = tables[GENERATION_DURATIONS]
        seconds, now = _number(seconds), _number(now)
        bucket = None if math.isnan(seconds) else bisect.bisect_left(self._bounds, seconds)  # as Histogram.observe
        duration_key = (model, error_class)
        updates: list[tuple[dict[tuple[str, ...], _Cell], tuple[str, ...], float]] = []
        for spec, key, amount in counts:
            value = _number(amount)
            if len(key) != len(spec.labels):
                raise ValueError(f"{spec.name}: {len(key)} label values for {len(spec.labels)} labels")
            if value < 0:  # as Counter.inc refuses it
                raise ValueError(f"{spec.name}: a counter cannot go down ({value})")
            hash(key)
            updates.append((tables[spec], key, value))
        hash(duration_key)
        for table, key, value in updates:
            cell = table.get(key)
            if cell is None:
                table[key] = [value, now]
            else:
                cell[0] += value
        histogram = durations.get(duration_key)
        if histogram is None:
            histogram = durations[duration_key] = [0.0] * (len(self._bounds) + 2)
            histogram[-1] = now
        if bucket is not None:  # a NaN fits no bucket (as in Histogram.observe) and only reaches the sum
            histogram[bucket] += 1.0
        histogram[-2] += seconds

    def _report(self, errors: list[Exception]) -> None:
        for error in errors:
            if self._on_error is not None:
                try:
                    self._on_error(error)
                    continue
                except Exception as broken:  # noqa: BLE001 - the reporter must not fail a scrape or a call
                    report_internal_error("shim.metrics", broken, None)
            report_internal_error("shim.metrics", error, None)

    def describe(self) -> Iterator[Metric]:
        """The families without samples, so a registry refuses names that are already taken."""
        for spec in SPECS:
            yield Metric(spec.name, spec.help, "histogram" if spec.histogram else "counter")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            errors = self._fold_locked()
            snapshot = [(spec, [(key, list(cell)) for key, cell in self._tables[spec].items()]) for spec in SPECS]
        self._report(errors)
        created = _created_series_on()
        for spec, rows in snapshot:
            yield self._family(spec, rows, created)

    def _family(self, spec: _Spec, rows: list[tuple[tuple[str, ...], _Cell]], created: bool) -> Metric:
        """The samples prometheus_client's Counter/Histogram would expose, in the same order."""
        family = Metric(spec.name, spec.help, "histogram" if spec.histogram else "counter")
        samples: list[Sample] = family.samples
        for key, cell in rows:
            labels = dict(zip(spec.labels, map(str, key), strict=True))  # as labels() would store them
            if not spec.histogram:
                samples.append(Sample(spec.name + "_total", labels, cell[0]))
                if created:
                    samples.append(Sample(spec.name + "_created", labels, cell[1]))
                continue
            cumulative = 0.0
            for bound, count in zip(self._bounds, cell, strict=False):
                cumulative += count
                samples.append(Sample(spec.name + "_bucket", {**labels, "le": _le(bound)}, cumulative))
            samples.append(Sample(spec.name + "_count", labels, cumulative))
            samples.append(Sample(spec.name + "_sum", labels, cell[-2]))
            if created:
                samples.append(Sample(spec.name + "_created", labels, cell[-1]))
        return family


class ClientShimMetrics:
    """The same record_* on prometheus_client's own Counter and Histogram objects (multiprocess mode)."""

    def __init__(self, registry: CollectorRegistry, buckets: Sequence[float] = DURATION_BUCKETS) -> None:
        self._metrics: dict[_Spec, Any] = {
            spec: (
                Histogram(spec.name, spec.help, spec.labels, buckets=tuple(buckets), registry=registry)
                if spec.histogram
                else Counter(spec.name, spec.help, spec.labels, registry=registry)
            )
            for spec in SPECS
        }
        # labels() validates and locks on every call; children never change, so they are kept.
        self._children: dict[tuple[_Spec, tuple[str, ...]], Any] = {}

    def _child(self, spec: _Spec, key: tuple[str, ...]) -> Any:
        child = self._children.get((spec, key))
        if child is None:
            child = self._children[(spec, key)] = self._metrics[spec].labels(*key)
        return child

    def record_attempt(self, model: str, code: str, error_class: str, seconds: float, cause: str | None = None) -> None:
        for spec, key, amount in attempt_counts(model, code, error_class, cause):
            self._child(spec, key).inc(amount)
        self._child(REQUEST_DURATIONS, (model, error_class)).observe(seconds)

    def record_generation(
        self,
        model: str,
        error_class: str,
        seconds: float,
        image_size: str,
        images: tuple[int, int],
        cost_usd: float | None,
        tokens: tuple[int, int, int],
        block: tuple[str, str] | None,
        service_tier: str = "standard",
        notes: GenerationNotes | None = None,
    ) -> None:
        counts = generation_counts(model, error_class, image_size, images, cost_usd, tokens, block, service_tier, notes)
        for spec, key, amount in counts:
            self._child(spec, key).inc(amount)
        self._child(GENERATION_DURATIONS, (model, error_class)).observe(seconds)
