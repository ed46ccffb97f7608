"""The shim on today's models, through the real SDK against the simulator: roles, reroutes, lifecycle, the 2026
429/503 shapes and service tiers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from google import genai
from google.genai import errors, types
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from structlog.testing import LogCapture

import monitor
from monitor.config import config_from_document
from monitor.logs import redact_secrets
from monitor.simulator import SimulatorServer
from tests.support.constants import FLASH, IMAGE_CONFIG, PRO
from tests.support.shim import Shim, genai_client

OLD = "gemini-3.1-flash-image"  # deprecated 2026-10-06 (the catalog)
# Dates in the past whatever the day the suite runs: lifecycle is computed at call time from the wall clock.
LIFECYCLE = {
    "models": {
        "legacy-image": {"family": "Legacy", "deprecated": "2000-01-01", "replacement": PRO},
        "gone-image": {"family": "Gone", "shutdown": "2000-01-02", "replacement": PRO},
    }
}


@pytest.fixture
def shim_with(
    registry: CollectorRegistry,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
    uninstrumented: None,
) -> Iterator[object]:
    """instrument() with a config document; returns a Shim."""

    def make(document: dict[str, object]) -> Shim:
        capture = LogCapture()
        logger = structlog.wrap_logger(None, processors=[redact_secrets, capture])
        config = config_from_document(document, environ={})
        assert monitor.instrument(registry=registry, tracer_provider=tracer_provider, logger=logger, config=config)
        return Shim(registry, span_exporter, capture)

    yield make


def test_model_info_exports_the_roles(shim: Shim) -> None:
    assert shim.value("nbmon_model_info", model=PRO, role="primary", family="Nano Banana Pro") == 1
    assert shim.value("nbmon_model_info", model=FLASH, role="fallback", family="Nano Banana 2.1") == 1
    assert shim.value("nbmon_model_info", model=OLD, role="other", family="Nano Banana 2") == 1
    shutdown = shim.value("nbmon_model_shutdown_timestamp_seconds", model="gemini-3-pro-image-preview")
    assert shutdown == 1782345600  # 2026-06-25T00:00:00Z
    assert shim.value("nbmon_model_shutdown_timestamp_seconds", model=PRO) == 0  # no date: no series


def test_one_config_line_moves_the_primary_role(shim_with: object) -> None:
    shim = shim_with({"models": {"primary": OLD}})  # type: ignore[operator]
    assert shim.value("nbmon_model_info", model=OLD, role="primary", family="Nano Banana 2") == 1
    assert shim.value("nbmon_model_info", model=PRO, role="other", family="Nano Banana Pro") == 1


def test_a_silent_reroute_is_counted_logged_and_priced_as_the_served_model(
    shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client
) -> None:
    gemini_sim.set_reroutes({OLD: FLASH})
    response = gclient.models.generate_content(model=OLD, contents="a banana", config=IMAGE_CONFIG)
    assert response.model_version == FLASH
    assert shim.value("nbmon_model_reroutes_total", requested=OLD, served=FLASH) == 1
    # Billed at the successor's price, under the requested model's label (what the app asked for)
    cost = shim.value("nbmon_estimated_cost_usd_total", model=OLD, image_size="1K", service_tier="standard")
    assert cost == pytest.approx(0.0336)
    attrs = shim.only_span().attributes or {}
    assert attrs["nbmon.model.rerouted"] is True
    assert attrs["nbmon.model.served"] == FLASH
    assert attrs["gen_ai.response.model"] == FLASH
    (event,) = shim.events()
    assert event["served_model"] == FLASH and event["response_model"] == FLASH
    (warning,) = shim.events("nbmon.model.rerouted")
    assert (warning["requested"], warning["served"], warning["log_level"]) == (OLD, FLASH, "warning")
    gclient.models.generate_content(model=OLD, contents="again", config=IMAGE_CONFIG)
    assert len(shim.events("nbmon.model.rerouted")) == 1  # logged once; counted every time
    assert shim.value("nbmon_model_reroutes_total", requested=OLD, served=FLASH) == 2


def test_a_version_of_the_same_model_is_no_reroute(shim: Shim, gclient: genai.Client) -> None:
    gclient.models.generate_content(model=PRO, contents="a banana", config=IMAGE_CONFIG)
    assert shim.total("nbmon_model_reroutes_total") == 0
    assert "nbmon.model.rerouted" not in (shim.only_span().attributes or {})


def test_deprecated_and_retired_models_are_counted_when_called(shim_with: object) -> None:
    shim = shim_with(LIFECYCLE)  # type: ignore[operator]
    with SimulatorServer(serve_retired=True) as sim, genai_client(sim.url) as client:
        client.models.generate_content(model="legacy-image", contents="x", config=IMAGE_CONFIG)
        client.models.generate_content(model="gone-image", contents="x", config=IMAGE_CONFIG)
        client.models.generate_content(model="gone-image", contents="x", config=IMAGE_CONFIG)
        client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_deprecated_model_calls_total", model="legacy-image", lifecycle="deprecated") == 1
    assert shim.value("nbmon_deprecated_model_calls_total", model="gone-image", lifecycle="retired") == 2
    assert shim.total("nbmon_deprecated_model_calls_total", model=PRO) == 0
    warnings = {e["model"]: e for e in shim.events("nbmon.model.deprecated_call")}
    assert set(warnings) == {"legacy-image", "gone-image"}  # once each
    assert warnings["gone-image"]["replacement"] == PRO and warnings["gone-image"]["shutdown"] == "2000-01-02"
    spans = [
        s for s in shim.spans.get_finished_spans() if (s.attributes or {}).get("gen_ai.request.model") == "gone-image"
    ]
    assert {(s.attributes or {}).get("nbmon.model.lifecycle") for s in spans} == {"retired"}


def test_a_retired_model_gets_not_found_from_the_api(shim: Shim, gclient: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as caught:
        gclient.models.generate_content(model="gemini-3-pro-image-preview", contents="x", config=IMAGE_CONFIG)
    assert caught.value.code == 404
    assert (
        shim.value("nbmon_requests_total", model="gemini-3-pro-image-preview", code="404", error_class="not_found") == 1
    )


@pytest.mark.parametrize(
    ("outcome", "error_class", "cause"),
    [
        ("spend_cap", "billing_limited", "spend_cap"),
        ("prepaid_depleted", "billing_limited", "prepaid_credits"),
        ("capacity_exhausted", "overloaded", "capacity_exhausted"),
    ],
)
def test_refusal_causes(
    shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client, outcome: str, error_class: str, cause: str
) -> None:
    gemini_sim.set_profile(f"fixed:{outcome}")
    with pytest.raises(errors.APIError):
        gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_error_causes_total", model=PRO, error_class=error_class, cause=cause) == 1
    assert (shim.only_span().attributes or {})["nbmon.error.cause"] == cause
    (event,) = shim.events()
    assert (event["error_class"], event["cause"]) == (error_class, cause)


def test_a_lower_quota_limit_than_before_is_a_tier_drop(
    shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client
) -> None:
    gemini_sim.set_profile("sequence:rate_limited,tier_dropped,tier_dropped")
    for _ in range(3):
        with pytest.raises(errors.ClientError):
            gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_requests_total", model=PRO, code="429", error_class="rate_limited") == 3
    # Counted once: at the first 429 whose limit is lower than the one before; then it is the new limit.
    assert shim.value("nbmon_error_causes_total", model=PRO, error_class="rate_limited", cause="limit_lowered") == 1


def test_a_priority_call_served_at_standard_is_counted_and_priced_at_standard(
    shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client
) -> None:
    # The plain string, as callers write it; the SDK's TypedDict declares only the ServiceTier enum.
    config: types.GenerateContentConfigDict = {**IMAGE_CONFIG, "service_tier": "priority"}  # type: ignore[typeddict-item]
    gclient.models.generate_content(model=PRO, contents="x", config=config)
    assert shim.value("nbmon_estimated_cost_usd_total", model=PRO, image_size="1K", service_tier="priority") == (
        pytest.approx(0.268)
    )
    gemini_sim.set_profile("fixed:tier_downgraded")
    gclient.models.generate_content(model=PRO, contents="x", config=config)
    labels = {"model": PRO, "requested": "priority", "served": "standard"}
    assert shim.value("nbmon_service_tier_downgrades_total", **labels) == 1
    assert shim.value("nbmon_estimated_cost_usd_total", model=PRO, image_size="1K", service_tier="standard") == (
        pytest.approx(0.134)
    )
    last = shim.events()[-1]
    assert (last["service_tier"], last["requested_service_tier"]) == ("standard", "priority")


def test_instrument_warns_once_about_a_deprecated_configured_model(
    registry: CollectorRegistry, uninstrumented: None
) -> None:
    document = {
        "models": {
            "fallback": "instrument-once-image",  # a model no other test names: not announced yet in this process
            "instrument-once-image": {"family": "Once", "deprecated": "2001-01-01", "replacement": FLASH},
        }
    }
    capture = LogCapture()
    logger = structlog.wrap_logger(None, processors=[capture])
    assert monitor.instrument(registry=registry, logger=logger, config=config_from_document(document, environ={}))
    monitor.uninstrument()
    assert monitor.instrument(registry=registry, logger=logger, config=config_from_document(document, environ={}))
    warnings = [e for e in capture.entries if e["event"] == "nbmon.model.lifecycle"]
    assert len(warnings) == 1
    assert (warnings[0]["model"], warnings[0]["lifecycle"], warnings[0]["replacement"]) == (
        "instrument-once-image",
        "deprecated",
        FLASH,
    )
