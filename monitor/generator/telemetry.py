"""Metrics and span events of ImageGenerator. Every method is guarded: telemetry never fails a call."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from monitor import labels
from monitor._safety import InternalErrors, report_internal_error
from monitor.config import ShimConfig
from monitor.generator.metrics import GeneratorMetrics
from monitor.generator.policy import FallbackReason
from monitor.taxonomy import ContentSummary, ErrorClass


class GeneratorTelemetry:
    def __init__(
        self,
        metrics: GeneratorMetrics,
        internal_errors: InternalErrors,
        config: ShimConfig,
        span: Span,
        model_label: labels.BoundedLabel,
    ) -> None:
        self._metrics = metrics
        self._internal_errors = internal_errors
        self._config = config
        self._model_label = model_label  # one per generator, so the cap holds across calls
        self.span = span

    def _internal(self, error: Exception) -> None:
        report_internal_error("generator", error, self._internal_errors.count)

    def routing(self, decision: str, model: str) -> None:
        try:
            self._metrics.routing.labels(decision).inc()
            self.span.add_event("nbmon.degraded_routing", {"nbmon.decision": decision, "nbmon.model": model})
        except Exception as error:  # noqa: BLE001
            self._internal(error)

    def retry(self, model: str, error_class: ErrorClass, wait_s: float, attempt: int) -> None:
        try:
            label = self._model_label(model)
            self._metrics.retries.labels(label, error_class.value).inc()
            if wait_s:
                self._metrics.retry_wait.labels(label).inc(wait_s)
            self.span.add_event(
                "nbmon.retry_wait",
                {
                    "nbmon.model": model,
                    "nbmon.error_class": error_class.value,
                    "nbmon.wait_s": wait_s,
                    "nbmon.attempt": attempt,
                },
            )
        except Exception as error:  # noqa: BLE001
            self._internal(error)

    def fallback(self, from_model: str, to_model: str, reason: FallbackReason, why: str) -> None:
        try:
            self._metrics.fallbacks.labels(
                self._model_label(from_model), self._model_label(to_model), reason.value
            ).inc()
            self.span.add_event(
                "nbmon.fallback",
                {
                    "nbmon.from_model": from_model,
                    "nbmon.to_model": to_model,
                    "nbmon.reason": reason.value,
                    "nbmon.why": why,
                },
            )
        except Exception as error:  # noqa: BLE001
            self._internal(error)

    def cost(self, model: str, image_size: str, summary: ContentSummary) -> float:
        """The final images at the price of the model that answered (modelVersion) and the tier applied."""
        served = self._config.catalog.served_model(model, summary.model_version) or model
        spec = self._config.model(served)
        size = image_size if spec is None or image_size in spec.image_sizes else "1K"
        price = spec.price(size, summary.service_tier or "standard") if spec is not None else None
        return summary.final_images * price if price is not None else 0.0

    def finish(self, attributes: dict[str, Any], error_type: str | None) -> None:
        try:
            if self.span.is_recording():
                self.span.set_attributes(attributes)
                if error_type is not None:
                    from opentelemetry.trace import Status, StatusCode

                    self.span.set_attribute("error.type", error_type)
                    self.span.set_status(Status(StatusCode.ERROR, error_type))
            self.span.end()
        except Exception as error:  # noqa: BLE001
            self._internal(error)
