"""Every outcome over real HTTP: status code, content type and body shape as the Gemini API sends them."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from monitor.simulator import HTTP_200_OUTCOMES, OUTCOMES, SimOutcome, SimulatorServer, png_size
from tests.support.constants import FLASH, IMAGE_REQUEST, KEY_HEADER, PRO

Gen = Callable[..., httpx.Response]
RPC = "type.googleapis.com/google.rpc."

ERRORS: dict[str, tuple[int, str]] = {
    "overloaded": (503, "UNAVAILABLE"),
    "server_error": (500, "INTERNAL"),
    "bad_gateway_json": (502, "BAD_GATEWAY"),
    "deadline_exceeded": (504, "DEADLINE_EXCEEDED"),
    "rate_limited": (429, "RESOURCE_EXHAUSTED"),
    "rate_limited_legacy": (429, "RESOURCE_EXHAUSTED"),
    "rate_limited_no_details": (429, "RESOURCE_EXHAUSTED"),
    "quota_exhausted": (429, "RESOURCE_EXHAUSTED"),
    "invalid_argument": (400, "INVALID_ARGUMENT"),
    "failed_precondition": (400, "FAILED_PRECONDITION"),
    "permission_denied": (403, "PERMISSION_DENIED"),
    "not_found": (404, "NOT_FOUND"),
    "missing_thought_signature": (400, "INVALID_ARGUMENT"),
    "stream_error": (503, "UNAVAILABLE"),  # a non-streaming request gets the plain 503
    "high_demand": (503, "UNAVAILABLE"),
    "capacity_exhausted": (503, "UNAVAILABLE"),
    "spend_cap": (429, "RESOURCE_EXHAUSTED"),
    "prepaid_depleted": (429, "RESOURCE_EXHAUSTED"),
    "tier_dropped": (429, "RESOURCE_EXHAUSTED"),
}


def details_by_type(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["@type"].removeprefix(RPC): d for d in body["error"].get("details", [])}


def candidate(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["candidates"]) == 1
    cand: dict[str, Any] = body["candidates"][0]
    return cand


def image_parts(cand: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in cand.get("content", {}).get("parts", []) if "inlineData" in p]


def test_every_outcome_is_covered_by_these_tests() -> None:
    covered = set(ERRORS) | {"bad_gateway", "reset", "slow", "stream_error"} | {o.value for o in HTTP_200_OUTCOMES}
    assert covered == set(OUTCOMES)
    assert len(OUTCOMES) == len(set(OUTCOMES)) == 34


@pytest.mark.parametrize("outcome", sorted(ERRORS))
def test_json_error_outcomes(generate: Gen, outcome: str) -> None:
    code, status = ERRORS[outcome]
    resp = generate(outcome)
    assert resp.status_code == code
    assert resp.headers["content-type"].startswith("application/json")
    assert "retry-after" not in resp.headers
    error = resp.json()["error"]
    assert (error["code"], error["status"]) == (code, status)
    assert error["message"]


def test_overloaded_body_matches_the_real_one(generate: Gen) -> None:
    body = generate("overloaded").json()
    assert body["error"]["message"] == "The model is overloaded. Please try again later."
    assert details_by_type(body) == {"DebugInfo": {"@type": RPC + "DebugInfo", "detail": "backend_error"}}


def test_server_error_message(generate: Gen) -> None:
    message = generate("server_error").json()["error"]["message"]
    assert message.startswith("An internal error has occurred. Please retry or report in https://developers.")


def test_rate_limited_has_quota_failure_help_and_retry_info(generate: Gen) -> None:
    body = generate("rate_limited", model=FLASH).json()
    details = details_by_type(body)
    assert set(details) == {"QuotaFailure", "Help", "RetryInfo"}
    violation = details["QuotaFailure"]["violations"][0]
    assert violation == {
        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": FLASH},
        "quotaValue": "10",
    }
    assert details["RetryInfo"]["retryDelay"] == "36s"
    assert details["Help"]["links"][0]["url"].startswith("https://")
    assert "Please retry in 36s" in body["error"]["message"]


def test_retry_delay_is_configurable() -> None:
    with SimulatorServer(profile="fixed:rate_limited", retry_delay="7s") as sim:
        body = httpx.post(
            f"{sim.url}/v1beta/models/{PRO}:generateContent", json=IMAGE_REQUEST, headers=KEY_HEADER
        ).json()
    assert details_by_type(body)["RetryInfo"]["retryDelay"] == "7s"


def test_quota_exhausted_is_a_daily_cap_with_hours_of_delay(generate: Gen) -> None:
    details = details_by_type(generate("quota_exhausted").json())
    violation = details["QuotaFailure"]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel"
    assert violation["quotaMetric"] == "generativelanguage.googleapis.com/generate_requests_per_model_per_day"
    assert violation["quotaValue"] == "250"
    assert details["RetryInfo"]["retryDelay"] == "6h34m53s"


def test_the_2026_shapes(generate: Gen) -> None:
    """Bodies as captured in 2026 (docs/models.md, "Today's error and response shapes", has the sources)."""
    spend = generate("spend_cap").json()["error"]
    assert "details" not in spend and "monthly spending cap" in spend["message"]
    prepaid = generate("prepaid_depleted").json()["error"]
    assert "details" not in prepaid and prepaid["message"].startswith("Your prepayment credits are depleted.")
    high = generate("high_demand").json()["error"]
    assert "details" not in high and "experiencing high demand" in high["message"]
    capacity = generate("capacity_exhausted").json()
    assert details_by_type(capacity)["ErrorInfo"]["reason"] == "MODEL_CAPACITY_EXHAUSTED"
    assert capacity["error"]["message"] == f"No capacity available for model {PRO} on the server"
    dropped = details_by_type(generate("tier_dropped").json())["QuotaFailure"]["violations"][0]
    normal = details_by_type(generate("rate_limited").json())["QuotaFailure"]["violations"][0]
    assert dropped["quotaId"] == normal["quotaId"]
    assert int(dropped["quotaValue"]) < int(normal["quotaValue"])  # the same quota at a lower tier's limit


def test_image_other_has_empty_content_and_a_finish_message(generate: Gen) -> None:
    cand = candidate(generate("image_other").json())
    assert cand["content"] == {} and cand["finishReason"] == "IMAGE_OTHER"
    assert "You will not be charged" in cand["finishMessage"]


def test_the_applied_service_tier_is_in_the_header_and_the_usage(generate: Gen) -> None:
    plain = generate()
    assert plain.headers["x-gemini-service-tier"] == "standard"
    assert plain.json()["usageMetadata"]["serviceTier"] == "standard"
    priority = {**IMAGE_REQUEST, "serviceTier": "priority"}
    served = generate(json=priority)
    assert served.headers["x-gemini-service-tier"] == "priority"
    downgraded = generate("tier_downgraded", json=priority)
    assert downgraded.headers["x-gemini-service-tier"] == "standard"
    assert downgraded.json()["usageMetadata"]["serviceTier"] == "standard"
    assert generate(json={**IMAGE_REQUEST, "serviceTier": "gold"}).status_code == 400


def test_a_retired_model_is_not_found_as_the_api_says_it(generate: Gen) -> None:
    resp = generate(model="gemini-3-pro-image-preview")
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert error["status"] == "NOT_FOUND"
    assert error["message"].startswith(
        "models/gemini-3-pro-image-preview is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels"
    )
    assert generate(model="gemini-3.1-flash-image").status_code == 200  # deprecated, still served


def test_a_size_the_model_does_not_take_is_refused(generate: Gen) -> None:
    body = {
        **IMAGE_REQUEST,
        "generationConfig": {**IMAGE_REQUEST["generationConfig"], "imageConfig": {"imageSize": "512px"}},
    }
    refused = generate(model=FLASH, json=body)
    assert refused.status_code == 400
    assert "512px" in refused.json()["error"]["message"]
    assert generate(model="gemini-3.1-flash-image", json=body).status_code == 200


def test_reroutes_answer_with_the_successors_model_version() -> None:
    old = "gemini-3.1-flash-image"
    with SimulatorServer(reroutes={old: FLASH}, latency={"pro": 0.0}) as sim:
        url = f"{sim.url}/v1beta/models/{old}:generateContent"
        assert httpx.post(url, json=IMAGE_REQUEST, headers=KEY_HEADER).json()["modelVersion"] == FLASH
        assert httpx.put(f"{sim.url}/_sim/models", json={"reroutes": {}}).json() == {"reroutes": {}}
        assert httpx.post(url, json=IMAGE_REQUEST, headers=KEY_HEADER).json()["modelVersion"] == old
        assert httpx.put(f"{sim.url}/_sim/models", json={"reroutes": [1]}).status_code == 400
        assert sim.stats()["rerouted"] == {f"{old}->{FLASH}": 1}
    # A retired ID the catalog routes answers as its successor; serve_retired answers it as itself.
    with SimulatorServer(serve_retired=True) as sim:
        body = httpx.post(
            f"{sim.url}/v1beta/models/gemini-3-pro-image-preview:generateContent",
            json=IMAGE_REQUEST,
            headers=KEY_HEADER,
        ).json()
        assert body["modelVersion"] == "gemini-3-pro-image-preview"


def test_rate_limited_legacy_uses_error_info(generate: Gen) -> None:
    details = details_by_type(generate("rate_limited_legacy").json())
    info = details["ErrorInfo"]
    assert (info["reason"], info["domain"]) == ("RATE_LIMIT_EXCEEDED", "googleapis.com")
    assert info["metadata"]["quota_limit"] == "GenerateRequestsPerMinutePerProjectPerModel"
    assert info["metadata"]["quota_metric"].startswith("generativelanguage.googleapis.com/")
    assert "QuotaFailure" not in details and "RetryInfo" not in details


def test_rate_limited_no_details_is_the_vertex_shared_quota_body(generate: Gen) -> None:
    error = generate("rate_limited_no_details").json()["error"]
    assert "details" not in error
    assert error["message"].startswith("Resource exhausted. Please try again later.")


def test_failed_precondition_and_thought_signature_messages(generate: Gen) -> None:
    assert generate("failed_precondition").json()["error"]["message"] == (
        "User location is not supported for the API use."
    )
    assert "thought_signature" in generate("missing_thought_signature").json()["error"]["message"]


def test_bad_gateway_is_html_from_a_proxy(generate: Gen) -> None:
    resp = generate("bad_gateway")
    assert resp.status_code == 502
    assert resp.headers["content-type"].startswith("text/html")
    assert resp.text.startswith("<html><head><title>502 Bad Gateway</title>")
    with pytest.raises(json.JSONDecodeError):
        resp.json()


def test_reset_closes_the_connection_without_a_response(generate: Gen) -> None:
    with pytest.raises(httpx.TransportError):
        generate("reset")
    assert generate("ok").status_code == 200  # the server keeps serving


def test_ok_pro_image_response(generate: Gen) -> None:
    resp = generate("ok")
    assert resp.status_code == 200
    body = resp.json()
    cand = candidate(body)
    assert (cand["finishReason"], cand["index"], cand["content"]["role"]) == ("STOP", 0, "model")
    parts = cand["content"]["parts"]
    assert parts[0]["thought"] is True and parts[0]["text"]
    thought_images = [p for p in parts if "inlineData" in p and p.get("thought")]
    assert len(thought_images) == 2
    final = [p for p in parts if "inlineData" in p and not p.get("thought")]
    assert len(final) == 1 and base64.b64decode(final[0]["thoughtSignature"])
    image = base64.b64decode(final[0]["inlineData"]["data"])
    assert final[0]["inlineData"]["mimeType"] == "image/png"
    assert png_size(image) == (64, 64)
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1120
    assert usage["thoughtsTokenCount"] > 0
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 1120 + usage["thoughtsTokenCount"]
    assert usage["candidatesTokensDetails"] == [{"modality": "IMAGE", "tokenCount": 1120}]
    assert body["modelVersion"] == PRO and body["responseId"]


def test_ok_pro_4k_and_flash_token_counts(generate: Gen) -> None:
    request_4k = {
        **IMAGE_REQUEST,
        "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"imageSize": "4K"}},
    }
    assert generate("ok", json=request_4k).json()["usageMetadata"]["candidatesTokenCount"] == 2000
    flash = generate("ok", model=FLASH).json()
    assert flash["usageMetadata"]["candidatesTokenCount"] == 1290
    assert "thoughtsTokenCount" not in flash["usageMetadata"]
    parts = candidate(flash)["content"]["parts"]
    assert [("text" in p, "inlineData" in p) for p in parts] == [(True, False), (False, True)]
    assert not any(p.get("thought") for p in parts)


def test_text_only_request_to_a_text_model(generate: Gen) -> None:
    body = generate("ok", model="gemini-2.5-flash", json={"contents": [{"parts": [{"text": "hi"}]}]}).json()
    cand = candidate(body)
    assert cand["finishReason"] == "STOP"
    assert [set(p) for p in cand["content"]["parts"]] == [{"text"}]


@pytest.mark.parametrize(
    ("outcome", "finish"),
    [
        ("safety_block", "IMAGE_SAFETY"),
        ("policy_block", "IMAGE_PROHIBITED_CONTENT"),
        ("recitation", "IMAGE_RECITATION"),
    ],
)
def test_output_blocks_are_http_200_without_content(generate: Gen, outcome: str, finish: str) -> None:
    resp = generate(outcome)
    assert resp.status_code == 200
    cand = candidate(resp.json())
    assert cand["finishReason"] == finish
    assert "content" not in cand
    if outcome == "safety_block":
        assert cand["safetyRatings"] == [
            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "MEDIUM", "blocked": True}
        ]


@pytest.mark.parametrize(
    ("outcome", "reason"), [("prompt_block", "SAFETY"), ("prompt_policy_block", "PROHIBITED_CONTENT")]
)
def test_prompt_blocks_have_no_candidates(generate: Gen, outcome: str, reason: str) -> None:
    resp = generate(outcome)
    assert resp.status_code == 200
    body = resp.json()
    assert "candidates" not in body
    assert body["promptFeedback"]["blockReason"] == reason
    assert any(r.get("blocked") for r in body["promptFeedback"]["safetyRatings"])


@pytest.mark.parametrize(("outcome", "finish"), [("no_image", "NO_IMAGE"), ("no_image_stop", "STOP")])
def test_no_image_outcomes_have_text_only(generate: Gen, outcome: str, finish: str) -> None:
    cand = candidate(generate(outcome).json())
    assert cand["finishReason"] == finish
    assert cand["content"]["parts"] and not image_parts(cand)


def test_thought_only_has_only_thought_images(generate: Gen) -> None:
    cand = candidate(generate("thought_only").json())
    assert cand["finishReason"] == "STOP"
    images = image_parts(cand)
    assert len(images) == 2 and all(p["thought"] is True for p in images)


def test_unknown_finish_reason_still_carries_an_image(generate: Gen) -> None:
    cand = candidate(generate("unknown_finish").json())
    assert cand["finishReason"] == "SOME_FUTURE_REASON"
    assert [p for p in image_parts(cand) if not p.get("thought")]


def test_slow_waits_slow_seconds_then_succeeds() -> None:
    with SimulatorServer(profile="fixed:slow", slow_seconds=0.3) as sim:
        resp = httpx.post(f"{sim.url}/v1beta/models/{PRO}:generateContent", json=IMAGE_REQUEST, headers=KEY_HEADER)
    assert resp.status_code == 200
    assert resp.elapsed.total_seconds() >= 0.3
    assert candidate(resp.json())["finishReason"] == "STOP"


def test_unknown_override_header_is_a_400_listing_valid_names(generate: Gen) -> None:
    resp = generate("meltdown")
    assert resp.status_code == 400
    assert "meltdown" in resp.json()["error"]["message"] and "overloaded" in resp.json()["error"]["message"]


def test_override_header_can_be_disabled() -> None:
    with SimulatorServer(allow_override_header=False) as sim:
        headers = {**KEY_HEADER, "x-nbmon-sim-outcome": SimOutcome.OVERLOADED.value}
        resp = httpx.post(f"{sim.url}/v1beta/models/{PRO}:generateContent", json=IMAGE_REQUEST, headers=headers)
    assert resp.status_code == 200
