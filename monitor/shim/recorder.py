"""Turns one logical generate call and its HTTP attempts into metrics, a span and a log event.

Shared by the sync, async and streaming wrappers. Every public method is guarded: whatever fails
in here is reported through monitor._safety and never reaches the application.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer

from monitor import labels
from monitor._safety import report_internal_error
from monitor.catalog import SERVICE_TIERS
from monitor.config import ShimConfig
from monitor.shim import semconv
from monitor.shim.lifecycle import ModelWatch
from monitor.shim.metrics import ShimMetrics
from monitor.shim.request_info import RequestInfo, read_request
from monitor.shim.sinks import GenerationNotes
from monitor.taxonomy import (
    ContentSummary,
    ErrorClass,
    Outcome,
    classify_content,
    classify_exception,
    classify_http,
)
from monitor.taxonomy.limits import QuotaLimitWatch
from monitor.wire import PROXY_HEADER

KNOWN_REASONS = (
    "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII",
    "RECITATION", "IMAGE_RECITATION", "OTHER", "MODEL_ARMOR", "JAILBREAK", "BLOCKED_REASON_UNSPECIFIED",
)  # fmt: skip


@dataclass(slots=True)
class Call:
    """State of one logical call in flight. Holds no prompt or image content."""

    info: RequestInfo
    model_label: str
    stream: bool
    started: float
    span: Span
    recording: bool  # span.is_recording(), fixed for the span's life: asked once
    attach: bool  # a valid span context to make current (also when sampled out, for propagation)
    attempts: int = 0
    pending_start: float | None = None  # an HTTP 200 attempt whose class depends on the content
    last_error: BaseException | None = None
    last_outcome: Outcome | None = None
    summary: ContentSummary = field(default_factory=ContentSummary)
    finished: bool = False
    proxied: bool = False  # answered through nbmon's proxy, which counts it: spans and logs here, no metrics


class Recorder:
    def __init__(
        self,
        metrics: ShimMetrics,
        tracer: Tracer,
        logger: Any,
        config: ShimConfig,
        clock: Callable[[], float] = time.perf_counter,
        http_hooked: bool = True,
        wall: Callable[[], float] = time.time,
        own_logger: bool = False,
    ) -> None:
        """`clock` times the calls; `wall` (Unix time) dates them for the models' lifecycle."""
        self._metrics = metrics
        self._tracer = tracer
        self._log = logger
        self._resolved_log: Any = None  # see _resolve_log
        self._own_logger = own_logger  # nbmon's structlog.get_logger(), not one the app passed in
        self._config = config
        self._clock = clock
        self.http_hooked = http_hooked
        self._model_label = labels.BoundedLabel(config.known_models, config.max_extra_model_labels)
        self._reason_label = labels.BoundedLabel(KNOWN_REASONS, cap=20)
        self._catalog = config.catalog
        self._models = ModelWatch(config, logger, wall)
        self._limits = QuotaLimitWatch()

    def _count_internal(self, component: str) -> None:
        self._metrics.internal_errors.count(component)

    def _internal_error(self, component: str, error: Exception) -> None:
        # try/except rather than `with guarded(...)` on the hot path: same guarantee, fewer calls.
        report_internal_error(component, error, self._count_internal)

    def start(self, models: Any, kwargs: Mapping[str, Any], *, stream: bool) -> Call | None:
        """A call through the SDK: `models` is its Models instance, `kwargs` the call's arguments."""
        try:
            info = read_request(models, kwargs, self._config)
        except Exception as error:  # noqa: BLE001 - telemetry never reaches the app
            self._internal_error("shim.start", error)
            return None
        return self.begin(info, stream=stream)

    def begin(self, info: RequestInfo, *, stream: bool, context: Context | None = None) -> Call | None:
        """A call described by `info` (the SDK's arguments, or a request body the proxy read); `context` is the
        parent of its span (the proxy continues its client's trace), default the current one."""
        try:
            attributes: dict[str, Any] = {
                semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION,
                semconv.GEN_AI_PROVIDER_NAME: info.provider,
            }
            if info.model:
                attributes[semconv.GEN_AI_REQUEST_MODEL] = info.model
            if info.image_expected:
                attributes[semconv.GEN_AI_OUTPUT_TYPE] = "image"
            if stream:
                attributes[semconv.GEN_AI_REQUEST_STREAM] = True
            if info.server_address:
                attributes[semconv.SERVER_ADDRESS] = info.server_address
                attributes[semconv.SERVER_PORT] = info.server_port
            attributes[semconv.NBMON_IMAGE_SIZE] = info.image_size
            if info.aspect_ratio:
                attributes[semconv.NBMON_IMAGE_ASPECT_RATIO] = info.aspect_ratio
            if info.prompt is not None:
                attributes[semconv.NBMON_PROMPT] = info.prompt
            name = f"{semconv.OPERATION} {info.model}" if info.model else semconv.OPERATION
            span = self._tracer.start_span(name, context=context, kind=SpanKind.CLIENT, attributes=attributes)
            if span is INVALID_SPAN:  # what the API hands out without an SDK: known answers, three calls fewer
                recording = attach = False
            else:
                recording, attach = span.is_recording(), span.get_span_context().is_valid
            return Call(info, self._model_label(info.model), stream, self._clock(), span, recording, attach)
        except Exception as error:  # noqa: BLE001 - telemetry never reaches the app
            self._internal_error("shim.start", error)
            return None

    def attempt_started(self, call: Call) -> float:
        now = self._clock()
        if call.pending_start is not None:
            try:
                # A 200 followed by another request (continuation, function calling): that one was ok.
                self._record_attempt(call, Outcome(ErrorClass.OK, http_code=200), call.pending_start, now)
            except Exception as error:  # noqa: BLE001
                self._internal_error("shim.attempt", error)
            call.pending_start = None
        return now

    def attempt_failed(self, call: Call, error: BaseException, started: float) -> None:
        end = self._clock()
        try:
            response = getattr(error, "response", None)
            call.proxied = call.proxied or came_through_proxy(getattr(response, "headers", None))
            outcome = classify_exception(error)
            if outcome.quota:
                outcome = self._limits.check(outcome)  # a quota limit lower than before: a tier drop
            call.last_error, call.last_outcome = error, outcome
            self._record_attempt(call, outcome, started, end)
        except Exception as internal:  # noqa: BLE001
            self._internal_error("shim.attempt", internal)

    def attempt_answered(
        self, call: Call, status: int, body: bytes, headers: Mapping[str, str] | None, started: float
    ) -> None:
        """An HTTP attempt whose response the caller read itself (the proxy): a 200 is settled by its content at
        finish; any other status is classified from its body now."""
        if status == 200:
            call.pending_start = started
            return
        end = self._clock()
        try:
            outcome = classify_http(status, body, headers)
            if outcome.quota:
                outcome = self._limits.check(outcome)
            call.last_error, call.last_outcome = None, outcome
            self._record_attempt(call, outcome, started, end)
        except Exception as internal:  # noqa: BLE001
            self._internal_error("shim.attempt", internal)

    def finish_answered(self, call: Call) -> None:
        """The end of a call whose last attempt was answered with an error status (`attempt_answered`)."""
        try:
            self._finish(call, None, call.last_outcome or Outcome(ErrorClass.UNKNOWN))
        except Exception as error:  # noqa: BLE001
            self._internal_error("shim.finish", error)

    def add_chunk(self, call: Call, chunk: object) -> None:
        try:
            call.summary.add_response(chunk)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shim.chunk", error)

    def finish_response(self, call: Call, response: object) -> None:
        try:
            call.summary.add_response(response)
            self._finish(call, None)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shim.finish", error)

    def finish_stream(self, call: Call, *, closed_early: bool = False) -> None:
        try:
            if closed_early and call.summary.final_images == 0:
                # The app stopped reading before the end: no verdict on the content.
                self._finish(call, None, Outcome(ErrorClass.UNKNOWN, http_code=200, reason="stream_closed"))
            else:
                self._finish(call, None)
        except Exception as error:  # noqa: BLE001
            self._internal_error("shim.finish", error)

    def finish_exception(self, call: Call, error: BaseException) -> None:
        try:
            self._finish(call, error)
        except Exception as internal:  # noqa: BLE001
            self._internal_error("shim.finish", internal)

    def _finish(self, call: Call, error: BaseException | None, forced: Outcome | None = None) -> None:
        if call.finished:
            return
        call.finished = True
        end = self._clock()
        if forced is not None:
            outcome = forced
        elif error is None:
            outcome = classify_content(call.summary, image_expected=call.info.image_expected, http_code=200)
        elif error is call.last_error and call.last_outcome is not None:
            outcome = call.last_outcome
        else:
            outcome = classify_exception(error)  # raised mid-stream, or before any HTTP attempt
        if call.pending_start is not None:
            self._record_attempt(call, outcome, call.pending_start, end)
            call.pending_start = None
        elif call.attempts == 0 and not self.http_hooked:
            self._record_attempt(call, outcome, call.started, end)
        self._record_generation(call, outcome, end - call.started)

    def _record_attempt(self, call: Call, outcome: Outcome, started: float, end: float) -> None:
        call.attempts += 1
        cls = outcome.error_class.value
        if not call.proxied:
            self._metrics.record_attempt(call.model_label, outcome.code_label, cls, end - started, outcome.cause)
        if not call.recording:
            return
        event: dict[str, Any] = {semconv.EVENT_ATTEMPT: call.attempts, semconv.NBMON_ERROR_CLASS: cls}
        if outcome.http_code is not None:
            event[semconv.EVENT_CODE] = outcome.http_code
        if outcome.retry_after_s is not None:
            event[semconv.NBMON_RETRY_AFTER] = outcome.retry_after_s
        call.span.add_event(semconv.ATTEMPT_EVENT, event)

    def _record_generation(self, call: Call, outcome: Outcome, elapsed: float) -> None:
        summary, info = call.summary, call.info
        cls = outcome.error_class.value
        final, thought = summary.image_counts()
        # A reroute: modelVersion names another model than the one requested (a version of it is the same model).
        version = summary.model_version
        served = None if version is None or version == info.model else self._catalog.served_model(info.model, version)
        tier = summary.service_tier or info.service_tier or "standard"
        price = None
        if final:  # billed: the model that served, at the tier that was applied
            spec = self._catalog.get(served or info.model)
            price = spec.price(info.image_size, tier) if spec is not None else None
        cost = final * price if price is not None else None  # None: nothing billed, or no price in the catalog
        block = None
        if outcome.block_stage is not None and outcome.reason is not None:
            block = (outcome.block_stage, self._reason_label(outcome.reason))
        lifecycle = self._models.lifecycle(info.model)
        applied = summary.service_tier
        tier_changed = applied is not None and applied != (info.service_tier or "standard")
        notes = None
        if lifecycle is not None or served is not None or tier_changed:
            notes = GenerationNotes(
                lifecycle,
                self._model_label(served) if served is not None else None,
                _tier(applied) if applied is not None and tier_changed else None,
                info.service_tier,
            )
            self._models.noticed(info.model, lifecycle, served)
        if not call.proxied:
            self._metrics.record_generation(
                call.model_label,
                cls,
                elapsed,
                info.image_size,
                (final, thought),
                cost,
                (summary.input_tokens or 0, summary.output_tokens or 0, summary.thoughts_tokens or 0),
                block,
                _tier(tier),
                notes,
            )
        if call.recording:
            self._end_span(call, outcome, final, thought, cost or 0.0, notes)
        elif call.span is not INVALID_SPAN:  # not sampled: nothing to add (without an SDK, nothing to end)
            call.span.end()
        self._log_call(call, outcome, cls, elapsed, final, thought, cost or 0.0, notes, served)

    def _end_span(
        self, call: Call, outcome: Outcome, final: int, thought: int, cost: float, notes: GenerationNotes | None
    ) -> None:
        span, summary, cls = call.span, call.summary, outcome.error_class.value
        attrs: dict[str, Any] = {
            semconv.NBMON_ERROR_CLASS: cls,
            semconv.NBMON_ATTEMPTS: call.attempts,
            semconv.NBMON_IMAGES_FINAL: final,
            semconv.NBMON_IMAGES_THOUGHT: thought,
            semconv.NBMON_COST_USD: cost,
        }
        optional = {
            semconv.NBMON_HTTP_STATUS_CODE: outcome.http_code,
            semconv.NBMON_GRPC_STATUS: outcome.grpc_status,
            semconv.NBMON_RETRY_AFTER: outcome.retry_after_s,
            semconv.NBMON_QUOTA_ID: outcome.quota_id,
            semconv.NBMON_BLOCK_STAGE: outcome.block_stage,
            semconv.NBMON_BLOCK_REASON: outcome.reason if outcome.block_stage else None,
            semconv.GEN_AI_RESPONSE_MODEL: summary.model_version,
            semconv.GEN_AI_RESPONSE_ID: summary.response_id,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: summary.input_tokens,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: summary.output_tokens,
            semconv.GEN_AI_USAGE_REASONING_TOKENS: summary.thoughts_tokens,
            semconv.NBMON_ERROR_CAUSE: outcome.cause,
            semconv.NBMON_SERVICE_TIER: summary.service_tier or call.info.service_tier,
        }
        if notes is not None:
            optional[semconv.NBMON_MODEL_LIFECYCLE] = notes.lifecycle
            optional[semconv.NBMON_MODEL_SERVED] = notes.served_model
            if notes.served_model is not None:
                optional[semconv.NBMON_MODEL_REROUTED] = True
            optional[semconv.NBMON_SERVICE_TIER_REQUESTED] = notes.requested_tier if notes.served_tier else None
        attrs.update({k: v for k, v in optional.items() if v is not None})
        if summary.finish_reasons:
            attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [r.lower() for r in summary.ordered_finish_reasons]
        if outcome.error_class is not ErrorClass.OK:
            attrs[semconv.ERROR_TYPE] = cls
            span.set_status(Status(StatusCode.ERROR, cls))
        span.set_attributes(attrs)
        span.end()

    def _log_call(
        self,
        call: Call,
        outcome: Outcome,
        cls: str,
        elapsed: float,
        final: int,
        thought: int,
        cost: float,
        notes: GenerationNotes | None,
        served: str | None,
    ) -> None:
        info = call.info
        fields: dict[str, Any] = {
            "model": info.model,
            "error_class": cls,
            "code": outcome.code_label,
            "attempts": call.attempts,
            "latency_s": round(elapsed, 4),
            "stream": call.stream,
            "final_images": final,
            "thought_images": thought,
            "image_size": info.image_size,
            "cost_usd": cost,
        }
        # Only what is there; a test per field rather than a dict of optionals filtered in a second pass.
        if outcome.grpc_status is not None:
            fields["grpc_status"] = outcome.grpc_status
        if outcome.reason is not None:
            fields["reason"] = outcome.reason
        if outcome.block_stage is not None:
            fields["block_stage"] = outcome.block_stage
        if outcome.quota and outcome.quota_id is not None:
            fields["quota_id"] = outcome.quota_id
        if outcome.retry_after_s is not None:
            fields["retry_after_s"] = outcome.retry_after_s
        if call.summary.model_version is not None:
            fields["response_model"] = call.summary.model_version
        if outcome.cause is not None:
            fields["cause"] = outcome.cause
        if call.summary.service_tier is not None or info.service_tier is not None:
            fields["service_tier"] = call.summary.service_tier or info.service_tier
        if notes is not None:
            if served is not None:
                fields["served_model"] = served
            if notes.lifecycle is not None:
                fields["lifecycle"] = notes.lifecycle
            if notes.served_tier is not None:
                fields["requested_service_tier"] = notes.requested_tier or "standard"
        if info.prompt is not None:
            fields["prompt"] = info.prompt
        if call.proxied:
            fields["proxied"] = True  # counted by the proxy; these metrics left it out
        log = self._resolved_log if self._resolved_log is not None else self._resolve_log()
        if outcome.error_class is ErrorClass.OK:
            log.info("genai.generation", **fields)
        else:
            log.warning("genai.generation", **fields)

    def _resolve_log(self) -> Any:
        """At the first event, nbmon's own structlog logger is bound once when structlog caches loggers on first
        use (configure_logging sets that), as structlog's performance guide advises: later events skip the
        lazy proxy's per-call lookup. Without caching, a reconfiguration must still reach the shim, so the proxy
        stays; an injected logger is always used as given."""
        log = self._log
        if self._own_logger:
            try:
                if structlog.get_config().get("cache_logger_on_first_use"):
                    log = log.bind()
            except Exception as error:  # noqa: BLE001 - keep the proxy; it reports the problem on use
                self._internal_error("shim.log", error)
        self._resolved_log = log
        return log


def came_through_proxy(headers: object) -> bool:
    """The response carries the proxy's mark: the proxy, which talked to Google, counted this attempt."""
    get = getattr(headers, "get", None)  # a dict (the SDK's HttpResponse) or a case-insensitive httpx.Headers
    return callable(get) and bool(get(PROXY_HEADER) or get("X-Nbmon-Proxy"))


def _tier(value: str) -> str:
    return value if value in SERVICE_TIERS else labels.OTHER
