"""instrument()/uninstrument() lifecycle, the kill switch, and fault injection into telemetry."""

from __future__ import annotations

import io
from importlib import metadata
from typing import Any

import prometheus_client.metrics
import pytest
import structlog
from google import genai
from google.genai import errors, models, types
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry, Counter

import monitor
from monitor import _safety
from monitor.shim.metrics import ShimMetrics
from monitor.simulator import SimulatorServer
from monitor.testing import InternalErrorCollector
from tests.support.constants import IMAGE_CONFIG, PRO
from tests.support.shim import Shim


def _call(client: genai.Client) -> types.GenerateContentResponse:
    return client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)


def _requests(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) or 0.0


def test_instrument_is_idempotent_and_reversible(uninstrumented: None, gclient: genai.Client) -> None:
    original = models.Models.generate_content
    registry = CollectorRegistry()
    assert monitor.instrument(registry=registry) is True
    assert monitor.instrument(registry=registry) is True  # second call: logged, nothing doubled
    assert models.Models.generate_content is not original
    _call(gclient)
    assert _requests(registry) == 1
    monitor.uninstrument()
    monitor.uninstrument()  # safe twice
    assert models.Models.generate_content is original
    assert not monitor.is_instrumented()
    _call(gclient)
    assert _requests(registry) == 1
    assert monitor.instrument(registry=registry) is True  # same registry again: no duplicate registration
    _call(gclient)
    assert _requests(registry) == 2


def test_kill_switch_passes_straight_through(uninstrumented: None, gclient: genai.Client) -> None:
    registry = CollectorRegistry()
    monitor.instrument(registry=registry)
    monitor.set_enabled(False)
    _call(gclient)
    assert _requests(registry) == 0
    monitor.set_enabled(True)
    _call(gclient)
    assert _requests(registry) == 1


def test_disabled_by_environment(uninstrumented: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBMON_DISABLED", "1")
    assert monitor.instrument(registry=CollectorRegistry()) is False
    assert not monitor.is_instrumented()


@pytest.mark.parametrize("version", ["2.19.0", "4.0.0", "garbage"])
def test_unsupported_sdk_version_is_logged_not_raised(
    uninstrumented: None, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    real = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: version if name == "google-genai" else real(name))
    original = models.Models.generate_content
    assert monitor.instrument(registry=CollectorRegistry()) is False
    assert models.Models.generate_content is original


def test_registry_that_already_has_our_names(uninstrumented: None, gclient: genai.Client) -> None:
    registry = CollectorRegistry()
    Counter("nbmon_requests", "someone else's", registry=registry)
    assert monitor.instrument(registry=registry) is False  # logged; the app is untouched
    assert type(_call(gclient)) is types.GenerateContentResponse


class _RaisingProcessor(SpanProcessor):
    """Raises when a span ends: the OTel SDK does not catch a processor's errors, so span.end() raises."""

    def on_end(self, span: ReadableSpan) -> None:
        raise RuntimeError("span pipeline down")


@pytest.mark.telemetry_faults
def test_span_pipeline_that_raises(
    uninstrumented: None, gclient: genai.Client, fail_on_swallowed_telemetry_errors: InternalErrorCollector
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(_RaisingProcessor())
    registry = CollectorRegistry()
    monitor.instrument(registry=registry, tracer_provider=provider)
    assert type(_call(gclient)) is types.GenerateContentResponse
    assert _requests(registry) == 1  # metrics recorded before the span ended are kept
    assert [c for c, _ in fail_on_swallowed_telemetry_errors.errors] == ["shim.finish"]


@pytest.mark.telemetry_faults
@pytest.mark.parametrize("folded", [False, True], ids=["prometheus_client-sink", "folded-sink"])
def test_registry_broken_at_call_time(
    uninstrumented: None,
    gemini_sim: SimulatorServer,
    gclient: genai.Client,
    monkeypatch: pytest.MonkeyPatch,
    fail_on_swallowed_telemetry_errors: InternalErrorCollector,
    folded: bool,
) -> None:
    """The metrics sink fails on every call: the app still gets the SDK's result and exception.

    The prometheus_client sink (multiprocess mode) breaks inside prometheus_client's own Counter; the
    folded sink, which only appends in the call, breaks on its injected clock.
    """

    def broken(*args: object, **kwargs: object) -> float:
        raise RuntimeError("registry broken")

    registry = CollectorRegistry()
    ShimMetrics.for_registry(registry, folded=folded, clock=broken)  # instrument() reuses this instance
    monitor.instrument(registry=registry)
    if not folded:
        monkeypatch.setattr(prometheus_client.metrics.Counter, "inc", broken)
    assert type(_call(gclient)) is types.GenerateContentResponse
    gemini_sim.set_profile("fixed:overloaded")
    with pytest.raises(errors.ServerError) as caught:
        _call(gclient)
    assert caught.value.code == 503
    components = [c for c, _ in fail_on_swallowed_telemetry_errors.errors]
    assert components and set(components) <= {"shim.attempt", "shim.finish"}


class _BrokenTracer(Tracer):
    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer broken")

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer broken")


class _BrokenTracerProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
        return _BrokenTracer()


class _BrokenLogger:
    def info(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("logger broken")

    warning = info


@pytest.mark.telemetry_faults
def test_broken_tracer_never_reaches_the_app(
    uninstrumented: None, gclient: genai.Client, fail_on_swallowed_telemetry_errors: InternalErrorCollector
) -> None:
    registry = CollectorRegistry()
    monitor.instrument(registry=registry, tracer_provider=_BrokenTracerProvider())
    assert type(_call(gclient)) is types.GenerateContentResponse
    assert registry.get_sample_value("nbmon_internal_errors_total", {"component": "shim.start"}) == 1
    assert [c for c, _ in fail_on_swallowed_telemetry_errors.errors] == ["shim.start"]


@pytest.mark.telemetry_faults
def test_broken_logger_keeps_result_and_exception(
    uninstrumented: None,
    gemini_sim: SimulatorServer,
    gclient: genai.Client,
    fail_on_swallowed_telemetry_errors: InternalErrorCollector,
) -> None:
    registry = CollectorRegistry()
    monitor.instrument(registry=registry, logger=_BrokenLogger())
    response = _call(gclient)
    assert response.candidates and response.candidates[0].content is not None
    gemini_sim.set_profile("fixed:overloaded")
    with pytest.raises(errors.ServerError) as caught:
        _call(gclient)
    assert caught.value.code == 503
    assert caught.value.__context__ is None  # our swallowed error left no trace on the app's exception
    assert registry.get_sample_value("nbmon_internal_errors_total", {"component": "shim.finish"}) == 2
    # metrics recorded before the log line are still there
    assert registry.get_sample_value("nbmon_generations_total", {"model": PRO, "error_class": "overloaded"}) == 1
    assert len(fail_on_swallowed_telemetry_errors.errors) == 2


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache-on-first-use"])
def test_the_shim_follows_structlogs_configuration_as_its_proxy_does(
    uninstrumented: None, gclient: genai.Client, cache: bool
) -> None:
    """Without caching, a reconfiguration moves the shim's next event; with it, the first set-up stays (structlog's
    own rule for a logger proxy, which the shim's resolved logger must keep)."""
    first, second = io.StringIO(), io.StringIO()

    def configure(stream: io.StringIO) -> None:
        structlog.configure(
            processors=[structlog.processors.JSONRenderer()],
            logger_factory=structlog.WriteLoggerFactory(file=stream),
            cache_logger_on_first_use=cache,
        )

    try:
        configure(first)
        assert monitor.instrument(registry=CollectorRegistry())
        _call(gclient)
        configure(second)
        _call(gclient)
    finally:
        structlog.reset_defaults()
    events = [line for line in first.getvalue().splitlines() if "genai.generation" in line]
    moved = [line for line in second.getvalue().splitlines() if "genai.generation" in line]
    assert (len(events), len(moved)) == ((2, 0) if cache else (1, 1))


class _OwnLogger:
    """An app's own logger object: info/warning, and a bind() that is not structlog's."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def bind(self, required: str) -> _OwnLogger:
        raise AssertionError("the shim must not call an injected logger's bind")

    def info(self, event: str, **fields: object) -> None:
        self.events.append(event)

    warning = info


def test_an_injected_logger_is_used_as_given_whatever_structlogs_configuration(
    uninstrumented: None, gclient: genai.Client
) -> None:
    own = _OwnLogger()
    monitor.configure_logging("json", stream=io.StringIO())  # structlog caches loggers on first use now
    try:
        assert monitor.instrument(registry=CollectorRegistry(), logger=own)
        _call(gclient)
        _call(gclient)
    finally:
        structlog.reset_defaults()
    assert own.events == ["genai.generation", "genai.generation"]


@pytest.mark.telemetry_faults
def test_guard_reports_once_and_swallows_only_exceptions() -> None:
    counted: list[str] = []
    with InternalErrorCollector() as collector:
        for _ in range(3):
            with _safety.guarded("unit", counted.append):
                raise ValueError("boom")
        with pytest.raises(KeyboardInterrupt), _safety.guarded("unit", counted.append):
            raise KeyboardInterrupt
    assert counted == ["unit", "unit", "unit"]
    assert [c for c, _ in collector.errors] == ["unit", "unit", "unit"]


def test_capture_content_is_opt_in(uninstrumented: None, gclient: genai.Client, shim_factory: Any) -> None:
    off = shim_factory(capture_content=False)
    _call(gclient)
    assert "nbmon.prompt" not in (off.only_span().attributes or {})
    assert "prompt" not in off.events()[0]


def test_capture_content_on(uninstrumented: None, gclient: genai.Client, shim_factory: Any) -> None:
    on = shim_factory(capture_content=True)
    gclient.models.generate_content(model=PRO, contents="a purple banana", config=IMAGE_CONFIG)
    assert (on.only_span().attributes or {})["nbmon.prompt"] == "a purple banana"
    assert on.events()[0]["prompt"] == "a purple banana"


@pytest.fixture
def shim_factory(tracer_provider: TracerProvider, span_exporter: Any) -> Any:
    import structlog
    from structlog.testing import LogCapture

    from monitor.config import ShimConfig

    def make(**config: Any) -> Shim:
        capture = LogCapture()
        registry = CollectorRegistry()
        monitor.instrument(
            registry=registry,
            tracer_provider=tracer_provider,
            logger=structlog.wrap_logger(None, processors=[capture]),
            config=ShimConfig(**config),
        )
        return Shim(registry, span_exporter, capture)

    return make


@pytest.mark.parametrize("with_sdk", [False, True])
def test_the_sdks_http_request_runs_under_the_right_current_span(
    uninstrumented: None, gemini_sim: SimulatorServer, registry: CollectorRegistry, with_sdk: bool
) -> None:
    """With an OTel SDK our span is current inside the call (HTTP spans nest under it); without one the
    app's own span stays current."""
    import httpx2
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, NoOpTracerProvider, SpanContext, TraceFlags

    seen: list[trace.Span] = []
    provider = TracerProvider() if with_sdk else NoOpTracerProvider()
    assert monitor.instrument(registry=registry, tracer_provider=provider)
    app_span = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1)))
    hooks = {"request": [lambda _request: seen.append(trace.get_current_span())]}
    with httpx2.Client(event_hooks=hooks) as http, trace.use_span(app_span):
        options = types.HttpOptions(base_url=gemini_sim.url, httpx_client=http)
        _call(genai.Client(api_key="k", http_options=options))
        assert trace.get_current_span() is app_span
    assert len(seen) == 1
    if with_sdk:
        assert seen[0] is not app_span and seen[0].get_span_context().trace_id == 0x1234
    else:
        assert seen[0] is app_span
