"""nbmon_model_info and nbmon_model_shutdown_timestamp_seconds: the catalog and the roles, as metrics.

Rules and dashboards select the primary model by joining on nbmon_model_info{role="primary"}, so changing the
primary is one config line. The shim and the daemon both export it, each from its own configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from monitor.catalog.spec import utc_midnight

if TYPE_CHECKING:
    from monitor.config import ShimConfig

MODEL_INFO = "nbmon_model_info"
MODEL_SHUTDOWN = "nbmon_model_shutdown_timestamp_seconds"
_INFO_HELP = "1 per known model ID: its role in this configuration (primary, fallback, other) and its family."
_SHUTDOWN_HELP = "Unix time the catalog says a model shuts down (UTC midnight of its shutdown date)."


class ModelInfoCollector:
    """A prometheus_client collector over one configuration, which `use()` replaces (instrument() again)."""

    def __init__(self, registry: CollectorRegistry, config: ShimConfig | None = None) -> None:
        self._config = config
        registry.register(self)

    def use(self, config: ShimConfig) -> None:
        self._config = config

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(MODEL_INFO, _INFO_HELP, labels=("model", "role", "family"))
        yield GaugeMetricFamily(MODEL_SHUTDOWN, _SHUTDOWN_HELP, labels=("model",))

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(MODEL_INFO, _INFO_HELP, labels=("model", "role", "family"))
        shutdown = GaugeMetricFamily(MODEL_SHUTDOWN, _SHUTDOWN_HELP, labels=("model",))
        config = self._config
        if config is not None:
            catalog = config.catalog
            for name in sorted(config.known_models):
                spec = catalog.get(name)
                family = spec.family if spec is not None and spec.family else "unknown"
                info.add_metric((name, config.role(name).value, family), 1.0)
            for spec in catalog.specs:
                if spec.shutdown is not None:
                    for name in spec.names:
                        shutdown.add_metric((name,), utc_midnight(spec.shutdown))
        yield info
        yield shutdown
