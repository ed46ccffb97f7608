"""OFREP: the pure handlers, then a real HTTP server read by the real openfeature-sdk + OFREP provider and httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from monitor.flagstate import (
    DEGRADED_FLAG,
    IMAGE_MODEL_FLAG,
    Decision,
    FlagState,
    FlagStore,
    Models,
    bulk_etag,
    dispatch,
    evaluate_bulk,
    evaluate_flag,
)
from monitor.generator.flags import OfrepFlagSource
from tests.support.constants import FLASH, PRO
from tests.support.http import LoopbackServer, Reply, Request

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MODELS = Models(primary=PRO, fallback=FLASH)
FIGURES = {"ratio": 0.42, "numerator": 42, "denominator": 100, "window_s": 60, "threshold": 0.3}
FLAGS_URL = "/ofrep/v1/evaluate/flags"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def healthy() -> Decision:
    return FlagState.initial(T0).effective(at(1))


def degraded() -> Decision:
    state = FlagState.initial(T0).apply_transition(
        True, "degraded-mode", "503 ratio 0.42 > 0.30 for 5m", FIGURES, at(5)
    )
    return state.effective(at(6))


def overridden() -> Decision:
    state = FlagState.initial(T0).set_override(True, "drill", at(60), at(2), set_by="alice")
    return state.effective(at(3))


# --- pure handlers -------------------------------------------------------------------------------------------


def test_degraded_mode_flag_when_healthy() -> None:
    status, headers, body = evaluate_flag(DEGRADED_FLAG, b"{}", healthy(), MODELS)
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "key": "degraded-mode",
        "value": False,
        "reason": "STATIC",
        "variant": "off",
        "metadata": {
            "since": "2026-01-15T12:00:00Z",
            "rule": "initial",
            "source": "rule",
            "detail": "no rule has fired yet",
            "evaluated": False,
        },
    }


def test_both_flags_when_degraded_carry_the_figures() -> None:
    _, _, flag = evaluate_flag(DEGRADED_FLAG, None, degraded(), MODELS)
    _, _, model = evaluate_flag(IMAGE_MODEL_FLAG, None, degraded(), MODELS)
    assert flag is not None and model is not None
    assert (flag["value"], flag["variant"], flag["reason"]) == (True, "on", "STATIC")
    assert (model["value"], model["variant"]) == ("gemini-nano-banana-2.1", "fallback")
    metadata = flag["metadata"]
    assert metadata["since"] == "2026-01-15T12:05:00Z"
    assert metadata["rule"] == "degraded-mode"
    assert metadata["figures.ratio"] == 0.42
    assert metadata["figures.denominator"] == 100
    assert metadata["figures.threshold"] == 0.3
    assert model["metadata"] == metadata
    # OFREP metadata values: strings, numbers, booleans only.
    assert all(isinstance(value, str | int | float | bool) for value in metadata.values())


def test_image_model_is_the_primary_when_healthy() -> None:
    _, _, body = evaluate_flag(IMAGE_MODEL_FLAG, b"", healthy(), MODELS)
    assert body is not None
    assert (body["value"], body["variant"]) == ("gemini-3-pro-image", "primary")


def test_override_is_static_with_source_override_in_metadata() -> None:
    _, _, body = evaluate_flag(DEGRADED_FLAG, None, overridden(), MODELS)
    assert body is not None
    assert (body["value"], body["reason"], body["variant"]) == (True, "STATIC", "on")
    assert body["metadata"]["source"] == "override"
    assert body["metadata"]["rule"] == "override"
    assert body["metadata"]["evaluated"] is False
    assert body["metadata"]["override_set_by"] == "alice"
    assert body["metadata"]["override_expires_at"] == "2026-01-15T13:00:00Z"
    assert body["metadata"]["since"] == "2026-01-15T12:02:00Z"


@pytest.mark.parametrize(
    "request_body",
    [
        None,
        b"",
        b"  \n",
        b"{}",
        b'{"context": {}}',
        b'{"context": {"tier": "pro"}}',
        b'{"context": {"targetingKey": "app-1", "region": "eu"}}',
        b'{"context": {"targetingKey": "app-1"}, "extra": 1}',
    ],
)
def test_accepted_request_bodies(request_body: bytes | None) -> None:
    assert evaluate_flag(DEGRADED_FLAG, request_body, healthy(), MODELS).status == 200
    assert evaluate_bulk(request_body, None, healthy(), MODELS).status == 200


@pytest.mark.parametrize(
    ("request_body", "code", "detail"),
    [
        (b"{", "PARSE_ERROR", "not valid JSON"),
        (b'{"context": {"targetingKey": "a"}', "PARSE_ERROR", "not valid JSON"),
        (b"\xff\xfe", "PARSE_ERROR", "not valid JSON"),
        (b'{"context": NaN}', "PARSE_ERROR", "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "PARSE_ERROR", "not valid JSON"),
        (b"[]", "PARSE_ERROR", "must be a JSON object, got list"),
        (b'"context"', "PARSE_ERROR", "must be a JSON object, got str"),
        (b"null", "PARSE_ERROR", "must be a JSON object, got NoneType"),
        (b'{"context": []}', "INVALID_CONTEXT", "context must be a JSON object, got list"),
        (b'{"context": "app-1"}', "INVALID_CONTEXT", "got str"),
        (b'{"context": null}', "INVALID_CONTEXT", "got NoneType"),
        (b'{"context": {"targetingKey": 42}}', "INVALID_CONTEXT", "targetingKey must be a string"),
    ],
)
def test_malformed_requests_are_400_with_a_reason(request_body: bytes, code: str, detail: str) -> None:
    status, headers, body = evaluate_flag(DEGRADED_FLAG, request_body, healthy(), MODELS)
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert body is not None
    assert (body["key"], body["errorCode"]) == ("degraded-mode", code)
    assert detail in body["errorDetails"]
    status, _, body = evaluate_bulk(request_body, None, healthy(), MODELS)
    assert status == 400
    assert body is not None
    assert body["errorCode"] == code
    assert "key" not in body


def test_unknown_flag_is_404() -> None:
    status, _, body = evaluate_flag("dark-mode", b"{}", degraded(), MODELS)
    assert status == 404
    assert body is not None
    assert (body["key"], body["errorCode"]) == ("dark-mode", "FLAG_NOT_FOUND")
    assert "dark-mode" in body["errorDetails"]


def test_bulk_etag_and_not_modified() -> None:
    status, headers, body = evaluate_bulk(b"{}", None, degraded(), MODELS)
    assert status == 200
    assert body is not None
    assert [flag["key"] for flag in body["flags"]] == ["degraded-mode", "image-model", "generation-allowed"]
    assert body["flags"][0] == evaluate_flag(DEGRADED_FLAG, None, degraded(), MODELS).body
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")  # strong
    assert etag == bulk_etag(degraded(), MODELS)
    assert evaluate_bulk(None, None, degraded(), MODELS).headers["ETag"] == etag  # stable

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        not_modified = evaluate_bulk(b"{}", header, degraded(), MODELS)
        assert (not_modified.status, not_modified.body, not_modified.content()) == (304, None, b"")
        assert not_modified.headers["ETag"] == etag

    assert evaluate_bulk(b"{}", '"stale"', degraded(), MODELS).status == 200
    # Any change of the decision changes the ETag.
    tags = {bulk_etag(decision, MODELS) for decision in (healthy(), degraded(), overridden())}
    tags.add(bulk_etag(degraded(), Models("pro-2", "flash")))
    assert len(tags) == 4


def test_dispatch_routes() -> None:
    assert dispatch("POST", FLAGS_URL, None, None, degraded(), MODELS).status == 200  # type: ignore[union-attr]
    response = dispatch("POST", f"{FLAGS_URL}/image-model?x=1", b"{}", None, degraded(), MODELS)
    assert response is not None and response.body is not None
    assert response.body["value"] == "gemini-nano-banana-2.1"
    encoded = dispatch("POST", f"{FLAGS_URL}/degraded%2Dmode", None, None, degraded(), MODELS)
    assert encoded is not None and encoded.status == 200
    empty = dispatch("POST", f"{FLAGS_URL}/", None, None, degraded(), MODELS)
    assert empty is not None and empty.status == 404
    wrong_method = dispatch("GET", f"{FLAGS_URL}/degraded-mode", None, None, degraded(), MODELS)
    assert wrong_method is not None
    assert (wrong_method.status, wrong_method.headers["Allow"]) == (405, "POST")
    assert dispatch("GET", "/metrics", None, None, degraded(), MODELS) is None
    assert dispatch("POST", "/ofrep/v1/evaluate/flagsx", None, None, degraded(), MODELS) is None


# --- a real HTTP server --------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    store: FlagStore
    received: list[tuple[str, bytes | None]] = field(default_factory=list)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    store = FlagStore(tmp_path / "flag.json", clock=lambda: at(1))
    received: list[tuple[str, bytes | None]] = []

    def respond(request: Request) -> Reply:
        if request.method not in ("GET", "POST"):
            return Reply(501)
        body = request.body or None
        received.append((request.path, body))
        response = dispatch(
            request.method, request.path, body, request.headers.get("If-None-Match"), store.effective(), MODELS
        )
        if response is None:
            return Reply(404, b"not found\n", "text/plain")
        return Reply(response.status, response.content(), headers=response.headers)

    with LoopbackServer(respond) as httpd:
        yield Server(httpd.url, store, received)


@pytest.fixture
def of_client(server: Server) -> Iterator[Any]:
    provider = OFREPProvider(server.url, timeout=5.0)
    api.set_provider_and_wait(provider, "nbmon-flagstate-test")
    try:
        yield api.get_client("nbmon-flagstate-test")
    finally:
        api.clear_providers()
        provider.session.close()  # the provider never closes its requests.Session itself


def test_openfeature_sdk_reads_the_flags(server: Server, of_client: Any) -> None:
    details = of_client.get_boolean_details(DEGRADED_FLAG, True)
    assert (details.value, details.reason, details.variant, details.error_code) == (False, Reason.STATIC, "off", None)
    assert details.flag_metadata["rule"] == "initial"
    assert of_client.get_string_value(IMAGE_MODEL_FLAG, "code-default") == "gemini-3-pro-image"

    server.store.apply_transition(True, "degraded-mode", "503 ratio 0.42 > 0.30 for 5m", FIGURES, at(5))
    details = of_client.get_boolean_details(DEGRADED_FLAG, False)
    assert (details.value, details.reason, details.variant) == (True, Reason.STATIC, "on")
    metadata = details.flag_metadata
    assert metadata["since"] == "2026-01-15T12:05:00Z"
    assert metadata["rule"] == "degraded-mode"
    assert metadata["source"] == "rule"
    assert metadata["figures.ratio"] == 0.42
    assert metadata["figures.window_s"] == 60
    model = of_client.get_string_details(IMAGE_MODEL_FLAG, "code-default")
    assert (model.value, model.variant, model.reason) == ("gemini-nano-banana-2.1", "fallback", Reason.STATIC)

    server.store.set_override(False, "Pro is fine", at(60), at(1), set_by="alice")
    details = of_client.get_boolean_details(DEGRADED_FLAG, True)
    assert (details.value, details.variant) == (False, "off")
    assert details.flag_metadata["source"] == "override"
    assert details.flag_metadata["override_set_by"] == "alice"
    assert of_client.get_string_value(IMAGE_MODEL_FLAG, "code-default") == "gemini-3-pro-image"


def test_openfeature_sdk_context_and_errors(server: Server, of_client: Any) -> None:
    context = EvaluationContext(targeting_key="app-1", attributes={"region": "eu"})
    assert of_client.get_boolean_value(DEGRADED_FLAG, True, context) is False
    # Without a context the SDK still passes its (empty) merged context, so the provider posts an empty one.
    assert of_client.get_boolean_value(DEGRADED_FLAG, True) is False
    bodies = [json.loads(body or b"null") for path, body in server.received if path.endswith(DEGRADED_FLAG)]
    assert bodies == [{"context": {"targetingKey": "app-1", "region": "eu"}}, {"context": {}}]

    missing = of_client.get_boolean_details("dark-mode", True)
    assert (missing.value, missing.reason, missing.error_code) == (True, Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)
    # Asking for the boolean flag as a string is the provider's type check, not ours.
    mismatch = of_client.get_string_details(DEGRADED_FLAG, "code-default")
    assert (mismatch.value, mismatch.error_code) == ("code-default", ErrorCode.TYPE_MISMATCH)


def test_provider_without_context_posts_an_empty_object(server: Server) -> None:
    provider = OFREPProvider(server.url)
    try:
        resolution = provider.resolve_boolean_details(DEGRADED_FLAG, True)
    finally:
        provider.session.close()
    assert resolution.value is False
    assert server.received[-1][1] == b"{}"


def test_generator_flag_source_reads_the_flag(server: Server) -> None:
    source = OfrepFlagSource(server.url, ttl_s=0)
    assert source.degraded() is False
    server.store.apply_transition(True, "degraded-mode", "503s", FIGURES, at(5))
    assert source.degraded() is True
    assert source.errors == 0


def test_bulk_over_http_with_etag(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        first = client.post(FLAGS_URL, json={"context": {"targetingKey": "app-1"}})
        assert first.status_code == 200
        assert first.headers["content-type"] == "application/json"
        etag = first.headers["etag"]
        assert [flag["value"] for flag in first.json()["flags"]] == [False, "gemini-3-pro-image", True]

        again = client.post(FLAGS_URL, json={}, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag

        server.store.apply_transition(True, "degraded-mode", "503s", FIGURES, at(5))
        changed = client.post(FLAGS_URL, json={}, headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert [flag["value"] for flag in changed.json()["flags"]] == [True, "gemini-nano-banana-2.1", True]


def test_malformed_and_unknown_over_http(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        bad = client.post(
            f"{FLAGS_URL}/{DEGRADED_FLAG}", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400
        assert bad.json()["errorCode"] == "PARSE_ERROR"
        assert bad.json()["key"] == DEGRADED_FLAG
        assert "not valid JSON" in bad.json()["errorDetails"]

        bad_context = client.post(f"{FLAGS_URL}/{DEGRADED_FLAG}", json={"context": ["app-1"]})
        assert (bad_context.status_code, bad_context.json()["errorCode"]) == (400, "INVALID_CONTEXT")

        bad_bulk = client.post(FLAGS_URL, content=b"[1, 2]")
        assert (bad_bulk.status_code, bad_bulk.json()["errorCode"]) == (400, "PARSE_ERROR")

        unknown = client.post(f"{FLAGS_URL}/dark-mode", json={})
        assert unknown.status_code == 404
        assert unknown.json() == {
            "key": "dark-mode",
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": unknown.json()["errorDetails"],
        }

        no_body = client.post(f"{FLAGS_URL}/{IMAGE_MODEL_FLAG}")  # as flagd's docs do
        assert (no_body.status_code, no_body.json()["value"]) == (200, "gemini-3-pro-image")

        assert client.get(f"{FLAGS_URL}/{DEGRADED_FLAG}").status_code == 405
