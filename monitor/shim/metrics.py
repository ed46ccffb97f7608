"""The shim's metrics on one registry: the per-call sink (folded or prometheus_client's own), the internal-error
counter and nbmon_model_info. Names, labels and buckets are in monitor.shim.sinks, next to the code filling them."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from monitor._registry import per_registry
from monitor._safety import InternalErrors, report_internal_error
from monitor.catalog import ModelInfoCollector
from monitor.shim.sinks import ClientShimMetrics, FoldedShimMetrics, multiprocess_mode


class ShimMetrics:
    """All shim metrics on one registry. Use `for_registry` to share one instance per registry.

    The hot path is `record_attempt` and `record_generation`, bound to the sink chosen here: folded
    (an append per call, folded into the families at scrape time) unless prometheus_client runs in multiprocess
    mode, or `folded` says otherwise. The exposition is the same either way.
    """

    def __init__(
        self, registry: CollectorRegistry, *, folded: bool | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        """`clock`: the folded sink's wall clock, which stamps each record (`_created` comes from it)."""
        use_folded = not multiprocess_mode() if folded is None else folded
        sink = (
            FoldedShimMetrics(registry, on_error=self._fold_error, clock=clock)
            if use_folded
            else ClientShimMetrics(registry)
        )
        self.folded = use_folded
        self.record_attempt = sink.record_attempt
        self.record_generation = sink.record_generation
        # Registered after the sink (when the shim is the first on the registry): a record the sink fails to fold
        # at a scrape is counted in that same scrape.
        self.internal_errors = InternalErrors.for_registry(registry)
        self.model_info = ModelInfoCollector(registry)  # filled by instrument() with its configuration

    def _fold_error(self, error: Exception) -> None:
        # A record the folded sink could not add (at a scrape, or when its queue was full): guarded like the shim.
        report_internal_error("shim.metrics", error, self.internal_errors.count)

    @classmethod
    def for_registry(
        cls,
        registry: CollectorRegistry | None = None,
        *,
        folded: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> ShimMetrics:
        """One instance per registry, so instrument/uninstrument/instrument never re-registers.

        The first call for a registry creates the instance, so `folded` and `clock` count only then.
        """
        return per_registry(cls, registry, folded=folded, clock=clock)
