"""What the sync and async generators share: settings, validation, request building, telemetry set-up."""

from __future__ import annotations

import math
import random
from contextvars import Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from google.genai import types
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, TracerProvider
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from monitor import labels
from monitor._safety import InternalErrors, report_internal_error
from monitor.clock import Clock, SystemClock
from monitor.config import IMAGE_SIZES, ShimConfig, load_shim_config, warn_lifecycle
from monitor.generator.engine import Plan, Routing, plan
from monitor.generator.flags import FlagSource, InProcessFlag
from monitor.generator.metrics import GeneratorMetrics
from monitor.generator.policy import RetryPolicy
from monitor.generator.result import ImageResult
from monitor.generator.stop import StopGuard
from monitor.generator.telemetry import GeneratorTelemetry

if TYPE_CHECKING:
    from monitor.pacing import Pacer

_log = structlog.get_logger("nbmon.generator")
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:8", "8:1", "1:4", "4:1")


@dataclass(frozen=True, slots=True)
class Request:
    contents: Any
    image_size: str
    aspect_ratio: str | None
    deadline_s: float | None
    extra: dict[str, Any]


class GeneratorBase:
    def __init__(
        self,
        *,
        primary_model: str | None = None,
        fallback_model: str | None = None,
        fallback: bool = True,
        policy: RetryPolicy | None = None,
        flag_source: FlagSource | None = None,
        canary_share: float = 0.05,
        config: ShimConfig | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
        pacer: Pacer | None = None,
        allowed_source: FlagSource | None = None,
    ) -> None:
        # The same configuration instrument() and the daemon read ($NBMON_CONFIG): one source of truth for models.
        self.config = config or load_shim_config()
        warn_lifecycle(self.config, _log)
        self.primary_model = primary_model or self.config.primary_model
        self.fallback_model = (fallback_model or self.config.fallback_model) if fallback else None
        if self.fallback_model == self.primary_model:
            raise ValueError("fallback_model: must differ from primary_model (or pass fallback=False)")
        if not (isinstance(canary_share, int | float) and 0 <= canary_share <= 1):
            raise ValueError(f"canary_share: must be between 0 and 1, got {canary_share!r}")
        self.canary_share = float(canary_share)
        self.policy = policy or RetryPolicy()
        self.flag_source: FlagSource = flag_source or InProcessFlag()
        self.clock: Clock = clock or SystemClock()
        self.pacer = pacer  # monitor.pacing.Pacer: each call first waits for a slot in its quota window
        self._rng = rng or random.Random()
        self._metrics = GeneratorMetrics.for_registry(registry)
        self._internal_errors = InternalErrors.for_registry(registry)
        self._tracer = (tracer_provider or trace.get_tracer_provider()).get_tracer("nbmon.generator")
        self._last_flag = False
        # generation-allowed: asked before each request; false raises GenerationStoppedError, nothing sent.
        self.allowed_source = allowed_source
        self._stop_guard = StopGuard(allowed_source, self._count_internal) if allowed_source is not None else None
        self._model_label = labels.BoundedLabel((m.id for m in self.config.models), self.config.max_extra_model_labels)

    def _flag_read(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"flag source returned {type(value).__name__}, not bool")
        self._last_flag = value
        return value

    def _flag_failed(self, error: Exception) -> bool:
        """Fail static at the generator too: keep the last value read, and report the failure."""
        report_internal_error("generator.flag_source", error, self._count_internal)
        return self._last_flag

    def _count_internal(self, component: str) -> None:
        self._internal_errors.count(component)

    def _request(
        self, contents: Any, image_size: str, aspect_ratio: str | None, deadline_s: float | None, extra: dict[str, Any]
    ) -> Request:
        """Validate before any request is sent: a bad argument must never cost an API call."""
        if contents is None or (isinstance(contents, str | list) and not contents):
            raise ValueError("prompt_or_contents: must not be empty")
        spec = self.config.model(self.primary_model)
        sizes = spec.image_sizes if spec is not None and spec.image_sizes else IMAGE_SIZES
        if image_size not in sizes:
            raise ValueError(f"image_size: {image_size!r} is not one of {list(sizes)} for {self.primary_model}")
        if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
            raise ValueError(f"aspect_ratio: {aspect_ratio!r} is not one of {list(ASPECT_RATIOS)}")
        deadline = self.policy.deadline_s if deadline_s is None else deadline_s
        valid = isinstance(deadline, int | float) and not isinstance(deadline, bool)
        if deadline is not None and not (valid and math.isfinite(deadline) and deadline > 0):
            raise ValueError(f"deadline_s: must be a positive number of seconds, got {deadline!r}")
        for key in ("response_modalities", "image_config"):
            if key in extra:
                raise ValueError(f"{key}: set by ImageGenerator (use image_size= and aspect_ratio=)")
        request = Request(contents, image_size, aspect_ratio, deadline, extra)
        try:  # an unknown or ill-typed config key fails here, before the flag read or any request
            self._config_for(request, self.primary_model, deadline)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"config: {'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}") from exc
        return request

    def _config_for(self, request: Request, model: str, timeout_s: float | None) -> types.GenerateContentConfig:
        spec = self.config.model(model)
        takes_size = spec is None or request.image_size in spec.image_sizes
        image_config = types.ImageConfig(
            aspect_ratio=request.aspect_ratio, image_size=request.image_size if takes_size else None
        )
        extra = dict(request.extra)
        http = extra.pop("http_options", None)
        http_options = (
            types.HttpOptions.model_validate(http) if isinstance(http, dict) else (http or types.HttpOptions())
        )
        # One retry loop: this one. The SDK's HttpRetryOptions would multiply every attempt here.
        http_options = http_options.model_copy(update={"retry_options": types.HttpRetryOptions(attempts=1)})
        if timeout_s is not None:
            http_options = http_options.model_copy(update={"timeout": max(int(timeout_s * 1000), 1)})
        return types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"], image_config=image_config, http_options=http_options, **extra
        )

    def _start(self, request: Request) -> tuple[Plan, GeneratorTelemetry]:
        span = self._tracer.start_span(
            f"generate_image {self.primary_model}",
            kind=SpanKind.INTERNAL,
            attributes={"gen_ai.request.model": self.primary_model, "nbmon.image.size": request.image_size},
        )
        telemetry = GeneratorTelemetry(self._metrics, self._internal_errors, self.config, span, self._model_label)
        paced = self.pacer is not None
        tokens, images = self._pacing_cost(request) if paced else (0, 1)
        route = Routing(
            self.primary_model,
            self.fallback_model,
            self.canary_share,
            request.image_size,
            paced=paced,
            tokens=tokens,
            images=images,
            gated=self._stop_guard is not None,
        )
        return plan(route, self.policy, telemetry, self._rng, request.deadline_s, self.clock), telemetry

    def _pacing_cost(self, request: Request) -> tuple[int, int]:
        """(input tokens, images asked for) of a request, for the pacer. An error here never breaks the call:
        it is counted (component "pacing") and the call is paced as 0 tokens, 1 image."""
        try:
            from monitor.pacing import estimate_tokens, requested_images

            assert self.pacer is not None
            tokens = estimate_tokens(
                request.contents,
                tokens_per_image=self.pacer.tokens_per_image,
                chars_per_token=self.pacer.chars_per_token,
            )
            return tokens, requested_images(request.extra)
        except Exception as error:  # noqa: BLE001 - pacing must never break the call
            report_internal_error("pacing", error, self._count_internal)
            return 0, 1

    @staticmethod
    def _closed_early(telemetry: GeneratorTelemetry) -> None:
        """The caller stopped reading a stream: not an error of the call."""
        telemetry.finish({"nbmon.closed_early": True}, None)

    @staticmethod
    def _finish(telemetry: GeneratorTelemetry, result: ImageResult | None, error: BaseException | None) -> None:
        if result is not None:
            telemetry.finish(
                {
                    "gen_ai.response.model": result.served_model,
                    "nbmon.attempts": result.attempts,
                    "nbmon.fallback_reason": result.fallback_reason.value,
                    "nbmon.wait_s": result.waited_s,
                    "nbmon.cost.estimated_usd": result.estimated_cost_usd,
                },
                None,
            )
        else:
            telemetry.finish({}, getattr(getattr(error, "error_class", None), "value", None) or type(error).__name__)


def activate(telemetry: GeneratorTelemetry) -> Token[Context]:
    """Make the generator's span current, so the shim's per-call spans become its children."""
    return otel_context.attach(trace.set_span_in_context(telemetry.span))
