"""The real google-genai SDK, instrumented, against the simulator over real HTTP: sync calls."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from monitor.simulator import SimulatorServer
from tests.support.constants import API_KEY, FLASH, IMAGE_CONFIG, PRO
from tests.support.shim import Shim, genai_client

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_ok_call_metrics_span_and_log(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    response = gclient.models.generate_content(model=PRO, contents="a banana", config=IMAGE_CONFIG)

    assert type(response) is types.GenerateContentResponse
    final = [p for p in response.candidates[0].content.parts if p.inline_data and not p.thought]  # type: ignore[index, union-attr]
    assert final[-1].inline_data.data.startswith(PNG_SIGNATURE)  # type: ignore[union-attr]

    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="final") == 1
    assert shim.value("nbmon_images_total", model=PRO, image_size="1K", kind="thought") == 2
    assert shim.value(
        "nbmon_estimated_cost_usd_total", model=PRO, image_size="1K", service_tier="standard"
    ) == pytest.approx(0.134)
    assert shim.value("nbmon_tokens_total", model=PRO, type="output") == 1120
    assert shim.value("nbmon_tokens_total", model=PRO, type="input") > 0
    assert shim.value("nbmon_tokens_total", model=PRO, type="thoughts") > 0
    assert shim.value("nbmon_request_duration_seconds_count", model=PRO, error_class="ok") == 1
    assert shim.total("nbmon_blocks_total") == 0

    span = shim.only_span()
    attrs = dict(span.attributes or {})
    assert span.name == f"generate_content {PRO}"
    assert span.kind.name == "CLIENT"
    assert attrs["gen_ai.operation.name"] == "generate_content"
    assert attrs["gen_ai.provider.name"] == "gcp.gemini"
    assert attrs["gen_ai.request.model"] == PRO
    assert attrs["gen_ai.response.model"] == PRO
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.output_tokens"] == 1120
    assert attrs["nbmon.error_class"] == "ok"
    assert attrs["nbmon.images.final"] == 1
    assert attrs["nbmon.images.thought"] == 2
    assert attrs["nbmon.image.size"] == "1K"
    assert attrs["nbmon.image.aspect_ratio"] == "16:9"
    assert attrs["nbmon.cost.estimated_usd"] == pytest.approx(0.134)
    assert attrs["server.address"] == "127.0.0.1"
    assert "error.type" not in attrs
    assert [e.name for e in span.events] == ["nbmon.http_attempt"]

    (event,) = shim.events()
    assert event["log_level"] == "info"
    assert (event["model"], event["error_class"], event["code"], event["attempts"]) == (PRO, "ok", "200", 1)
    assert (event["final_images"], event["thought_images"], event["cost_usd"]) == (1, 2, pytest.approx(0.134))


def test_flash_price_and_no_thought_images(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gclient.models.generate_content(model=FLASH, contents="a banana", config=IMAGE_CONFIG)
    assert shim.value(
        "nbmon_estimated_cost_usd_total", model=FLASH, image_size="1K", service_tier="standard"
    ) == pytest.approx(0.0336)
    assert shim.value("nbmon_images_total", model=FLASH, image_size="1K", kind="thought") == 0


ERRORS = [
    # outcome, SDK exception type, code label, error class
    ("overloaded", errors.ServerError, "503", "overloaded"),
    ("server_error", errors.ServerError, "500", "server_error"),
    ("bad_gateway", errors.ServerError, "502", "bad_gateway"),
    ("bad_gateway_json", errors.ServerError, "502", "bad_gateway"),
    ("deadline_exceeded", errors.ServerError, "504", "deadline_exceeded"),
    ("rate_limited", errors.ClientError, "429", "rate_limited"),
    ("rate_limited_legacy", errors.ClientError, "429", "rate_limited"),
    ("rate_limited_no_details", errors.ClientError, "429", "rate_limited"),
    ("quota_exhausted", errors.ClientError, "429", "quota_exhausted"),
    ("invalid_argument", errors.ClientError, "400", "invalid_argument"),
    ("missing_thought_signature", errors.ClientError, "400", "invalid_argument"),
    ("failed_precondition", errors.ClientError, "400", "failed_precondition"),
    ("permission_denied", errors.ClientError, "403", "permission_denied"),
    ("not_found", errors.ClientError, "404", "not_found"),
    ("high_demand", errors.ServerError, "503", "overloaded"),
    ("capacity_exhausted", errors.ServerError, "503", "overloaded"),
    ("spend_cap", errors.ClientError, "429", "billing_limited"),
    ("prepaid_depleted", errors.ClientError, "429", "billing_limited"),
    ("tier_dropped", errors.ClientError, "429", "rate_limited"),
]


@pytest.mark.parametrize(("outcome", "exc_type", "code", "error_class"), ERRORS, ids=[e[0] for e in ERRORS])
def test_http_errors(
    shim: Shim,
    gemini_sim: SimulatorServer,
    outcome: str,
    exc_type: type[Exception],
    code: str,
    error_class: str,
    gclient: genai.Client,
) -> None:
    gemini_sim.set_profile(f"fixed:{outcome}")
    with pytest.raises(exc_type) as caught:
        gclient.models.generate_content(model=PRO, contents="a banana", config=IMAGE_CONFIG)
    assert type(caught.value) is exc_type  # the SDK's own exception, not a wrapper
    assert caught.value.code == int(code)  # type: ignore[attr-defined]
    assert caught.value.__cause__ is None

    assert shim.value("nbmon_requests_total", model=PRO, code=code, error_class=error_class) == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class=error_class) == 1
    assert shim.total("nbmon_images_total") == 0
    assert shim.total("nbmon_estimated_cost_usd_total") == 0  # failures are not billed
    span = shim.only_span()
    assert span.attributes["error.type"] == error_class  # type: ignore[index]
    assert span.status.status_code.name == "ERROR"
    (event,) = shim.events()
    assert (event["log_level"], event["error_class"], event["code"]) == ("warning", error_class, code)


def test_429_figures_reach_span_and_log(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:quota_exhausted")
    with pytest.raises(errors.ClientError):
        gclient.models.generate_content(model=PRO, contents="a banana", config=IMAGE_CONFIG)
    attrs = shim.only_span().attributes or {}
    assert attrs["nbmon.quota.id"] == "GenerateRequestsPerDayPerProjectPerModel"
    assert attrs["nbmon.retry_after_s"] == 6 * 3600 + 34 * 60 + 53
    assert attrs["nbmon.grpc_status"] == "RESOURCE_EXHAUSTED"
    (event,) = shim.events()
    assert event["quota_id"] == "GenerateRequestsPerDayPerProjectPerModel"


CONTENT = [
    # outcome, error class, block stage, block reason
    ("safety_block", "safety_block", "output", "IMAGE_SAFETY"),
    ("prompt_block", "safety_block", "input", "SAFETY"),
    ("policy_block", "policy_block", "output", "IMAGE_PROHIBITED_CONTENT"),
    ("prompt_policy_block", "policy_block", "input", "PROHIBITED_CONTENT"),
    ("recitation", "recitation", "output", "IMAGE_RECITATION"),
    ("no_image", "no_image", None, None),
    ("no_image_stop", "no_image", None, None),
    ("thought_only", "no_image", None, None),
    ("image_other", "no_image", None, None),
]


@pytest.mark.parametrize(("outcome", "error_class", "stage", "reason"), CONTENT, ids=[c[0] for c in CONTENT])
def test_failures_returned_as_http_200(
    shim: Shim,
    gemini_sim: SimulatorServer,
    outcome: str,
    error_class: str,
    stage: str | None,
    reason: str | None,
    gclient: genai.Client,
) -> None:
    gemini_sim.set_profile(f"fixed:{outcome}")
    response = gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert type(response) is types.GenerateContentResponse  # no exception: the SDK returns these
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class=error_class) == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class=error_class) == 1
    assert shim.total("nbmon_images_total", kind="final") == 0
    assert shim.total("nbmon_estimated_cost_usd_total") == 0
    if stage is None:
        assert shim.total("nbmon_blocks_total") == 0
    else:
        assert shim.value("nbmon_blocks_total", model=PRO, stage=stage, reason=reason or "") == 1
        assert (shim.only_span().attributes or {})["nbmon.block.reason"] == reason


@pytest.mark.filterwarnings("ignore:SOME_FUTURE_REASON is not a valid:UserWarning")
def test_unknown_finish_reason_with_image_is_ok(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:unknown_finish")
    gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    assert (shim.only_span().attributes or {})["gen_ai.response.finish_reasons"] == ("some_future_reason",)


def test_text_only_call_is_ok(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gclient.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert shim.value("nbmon_generations_total", model="gemini-2.5-flash", error_class="ok") == 1
    assert "gen_ai.output.type" not in (shim.only_span().attributes or {})


def test_sdk_retries_count_every_attempt_and_the_call_once(shim: Shim, gemini_sim: SimulatorServer) -> None:
    gemini_sim.set_profile("sequence:overloaded,rate_limited,ok")
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    client = genai_client(gemini_sim.url, retry_options=retry)
    client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert gemini_sim.stats()["requests"] == 3
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 1
    assert shim.value("nbmon_requests_total", model=PRO, code="429", error_class="rate_limited") == 1
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 1
    assert shim.total("nbmon_generations_total") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 1
    span = shim.only_span()
    assert [e.attributes["nbmon.error_class"] for e in span.events] == ["overloaded", "rate_limited", "ok"]  # type: ignore[index]
    assert span.events[1].attributes["nbmon.retry_after_s"] == 36.0  # type: ignore[index]
    assert (span.attributes or {})["nbmon.attempts"] == 3
    assert shim.events()[0]["attempts"] == 3


def test_sdk_retries_exhausted(shim: Shim, gemini_sim: SimulatorServer) -> None:
    gemini_sim.set_profile("fixed:overloaded")
    retry = types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)
    client = genai_client(gemini_sim.url, retry_options=retry)
    with pytest.raises(errors.ServerError):
        client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_requests_total", model=PRO, code="503", error_class="overloaded") == 3
    assert shim.value("nbmon_generations_total", model=PRO, error_class="overloaded") == 1


def test_connection_reset_is_a_network_error(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    gemini_sim.set_profile("fixed:reset")
    with pytest.raises(Exception) as caught:
        gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert type(caught.value).__module__.startswith(("httpx", "httpcore"))
    assert shim.value("nbmon_requests_total", model=PRO, code="none", error_class="network_error") == 1
    assert shim.value("nbmon_generations_total", model=PRO, error_class="network_error") == 1


def test_client_timeout(shim: Shim) -> None:
    with SimulatorServer(profile="fixed:slow", slow_seconds=2.0) as sim:
        client = genai_client(sim.url, timeout=300)  # milliseconds
        with pytest.raises(Exception) as caught:
            client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert "Timeout" in type(caught.value).__name__
    assert shim.value("nbmon_requests_total", model=PRO, code="none", error_class="timeout") == 1


def test_vertex_provider(shim: Shim, gemini_sim: SimulatorServer) -> None:
    from google import genai

    client = genai.Client(vertexai=True, api_key="k", http_options=types.HttpOptions(base_url=gemini_sim.url))
    client.models.generate_content(model=FLASH, contents="x", config=IMAGE_CONFIG)
    assert (shim.only_span().attributes or {})["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert shim.value("nbmon_generations_total", model=FLASH, error_class="ok") == 1


def test_chat_turns_are_counted_once_each(shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client) -> None:
    chat = gclient.chats.create(model=PRO, config=types.GenerateContentConfig.model_validate(IMAGE_CONFIG))
    chat.send_message("a banana")
    chat.send_message("now make it blue")
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 2
    assert shim.value("nbmon_requests_total", model=PRO, code="200", error_class="ok") == 2


def test_model_name_forms_share_one_label(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    client.models.generate_content(model=f"models/{PRO}", contents="x", config=IMAGE_CONFIG)
    client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert shim.value("nbmon_generations_total", model=PRO, error_class="ok") == 2


def test_unexpected_model_names_cannot_explode_cardinality(shim: Shim, gemini_sim: SimulatorServer) -> None:
    client = genai_client(gemini_sim.url)
    for i in range(25):
        client.models.generate_content(model=f"gemini-x-image-{i}", contents="x", config=IMAGE_CONFIG)
    models = {
        s.labels["model"] for f in shim.registry.collect() for s in f.samples if s.name == "nbmon_generations_total"
    }
    assert len(models) == 21  # 20 admitted + "other"
    assert shim.value("nbmon_generations_total", model="other", error_class="ok") == 5


def test_secrets_and_content_stay_out_of_telemetry(
    shim: Shim, gemini_sim: SimulatorServer, gclient: genai.Client
) -> None:
    from prometheus_client import generate_latest

    prompt = "a secret banana recipe"
    gclient.models.generate_content(model=PRO, contents=prompt, config=IMAGE_CONFIG)
    exposition = generate_latest(shim.registry).decode()
    span = shim.only_span()
    texts = [exposition, repr(span.attributes), repr([e.attributes for e in span.events]), repr(shim.logs.entries)]
    for text in texts:
        assert API_KEY not in text
        assert prompt not in text
        assert "iVBOR" not in text  # base64 of a PNG


def test_the_app_gets_the_sdks_own_objects(shim: Shim, gclient: genai.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity, not equality: what the SDK built is what the app receives (spy on an SDK internal)."""
    from google.genai import models

    built: list[object] = []
    inner = models.Models._generate_content_with_continuation

    def spy(self: object, *args: object, **kwargs: object) -> object:
        built.append(inner(self, *args, **kwargs))  # type: ignore[arg-type]
        return built[-1]

    monkeypatch.setattr(models.Models, "_generate_content_with_continuation", spy)
    response = gclient.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert built and response is built[0]


def test_the_app_gets_the_sdks_own_exception_object(shim: Shim) -> None:
    import httpx2

    error = httpx2.ConnectError("refused by test")

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error

    client = genai.Client(
        api_key="k", http_options=types.HttpOptions(httpx_client=httpx2.Client(transport=httpx2.MockTransport(handler)))
    )
    with pytest.raises(httpx2.ConnectError) as caught:
        client.models.generate_content(model=PRO, contents="x", config=IMAGE_CONFIG)
    assert caught.value is error
    assert shim.value("nbmon_requests_total", model=PRO, code="none", error_class="network_error") == 1
