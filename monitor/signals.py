"""The error signal the daemon reads: per-series counts of `nbmon_requests_total` (a public contract).

A series is (model, code, error_class), the labels of `nbmon_requests_total`. Sources produce cumulative
counter readings (scrape, in-process) or counts over a window (PromQL); the evaluator only ever sees
counts over a window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from monitor import wire

REQUESTS_METRIC = wire.REQUESTS_METRIC + "_total"  # the sample name sources read


class Series(NamedTuple):
    model: str
    code: str
    error_class: str


Counts = Mapping[Series, float]


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of a source. `ok=False` means the read failed (target down, garbage): `error` says why."""

    at: float  # monotonic seconds
    values: Counts = field(default_factory=dict)  # cumulative counter values, summed over targets
    ok: bool = True
    error: str | None = None
    # Every series that exists is in `values` (an in-process registry, read whole): a series absent from the
    # previous complete reading was created since, from 0. A scrape cannot say so (a target may have dropped out).
    complete: bool = False


class CounterSource(Protocol):
    """A source of cumulative counters: the scrape and in-process sources. Never raises."""

    name: str

    def read(self) -> Reading: ...


class WindowSource(Protocol):
    """A source that answers counts over a window itself: the PromQL (fleet) source. Never raises."""

    name: str

    def counts(self, window_s: float) -> tuple[Counts, str | None]:  # (counts, error or None)
        ...
