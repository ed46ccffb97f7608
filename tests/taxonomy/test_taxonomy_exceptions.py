"""Exceptions as the real SDK and transports raise them."""

from __future__ import annotations

import json

import httpx
import httpx2
import pytest
from google.genai import errors

from monitor.taxonomy import ErrorClass, classify_exception
from tests.taxonomy.test_taxonomy_http import BODY_429_DAY_AND_MINUTE, BODY_429_MINUTE, BODY_503, HTML_502


def sdk_error(status: int, body: str, headers: dict[str, str] | None = None) -> errors.APIError:
    """An APIError built by the SDK's own code from a real httpx2 response."""
    request = httpx2.Request("POST", "http://127.0.0.1/v1beta/models/m:generateContent")
    response = httpx2.Response(status, content=body.encode(), headers=headers or {}, request=request)
    with pytest.raises(errors.APIError) as caught:
        errors.APIError.raise_for_response(response)
    return caught.value


def test_sdk_503_is_a_server_error_classified_overloaded() -> None:
    error = sdk_error(503, json.dumps(BODY_503))
    assert isinstance(error, errors.ServerError)
    outcome = classify_exception(error)
    assert outcome.error_class is ErrorClass.OVERLOADED
    assert (outcome.http_code, outcome.grpc_status) == (503, "UNAVAILABLE")


def test_sdk_429_reads_details_from_the_whole_body() -> None:
    outcome = classify_exception(sdk_error(429, json.dumps(BODY_429_MINUTE)))
    assert outcome.error_class is ErrorClass.RATE_LIMITED
    assert outcome.retry_after_s == 26.0
    assert outcome.quota_id == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    daily = classify_exception(sdk_error(429, json.dumps(BODY_429_DAY_AND_MINUTE)))
    assert daily.error_class is ErrorClass.QUOTA_EXHAUSTED


def test_sdk_html_502_keeps_http_code_but_no_grpc_status() -> None:
    outcome = classify_exception(sdk_error(502, HTML_502, {"content-type": "text/html"}))
    assert outcome.error_class is ErrorClass.BAD_GATEWAY
    assert outcome.grpc_status is None  # the SDK puts the reason phrase "Bad Gateway" there


def test_retry_after_header_is_read_from_the_sdk_response() -> None:
    body = json.dumps({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}})
    outcome = classify_exception(sdk_error(429, body, {"Retry-After": "7"}))
    assert outcome.retry_after_s == 7.0


def test_pickled_sdk_error_still_classifies() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(sdk_error(503, json.dumps(BODY_503))))
    assert classify_exception(error).error_class is ErrorClass.OVERLOADED


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (httpx2.ConnectError("refused"), ErrorClass.NETWORK_ERROR),
        (httpx2.RemoteProtocolError("peer closed"), ErrorClass.NETWORK_ERROR),
        (httpx2.ReadError("reset"), ErrorClass.NETWORK_ERROR),
        (httpx.ConnectError("refused"), ErrorClass.NETWORK_ERROR),
        (ConnectionResetError(104, "Connection reset by peer"), ErrorClass.NETWORK_ERROR),
        (OSError("network unreachable"), ErrorClass.NETWORK_ERROR),
        (httpx2.ReadTimeout("slow"), ErrorClass.TIMEOUT),
        (httpx2.ConnectTimeout("slow"), ErrorClass.TIMEOUT),
        (httpx.ReadTimeout("slow"), ErrorClass.TIMEOUT),
        (TimeoutError(), ErrorClass.TIMEOUT),
        (TimeoutError(), ErrorClass.TIMEOUT),
        (ValueError("bad"), ErrorClass.UNKNOWN),
        (errors.UnknownApiResponseError("not json"), ErrorClass.UNKNOWN),
        (KeyboardInterrupt(), ErrorClass.UNKNOWN),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_transport_and_other_exceptions(error: BaseException, expected: ErrorClass) -> None:
    outcome = classify_exception(error)
    assert outcome.error_class is expected
    assert outcome.code_label == "none"
    assert outcome.reason == type(error).__name__


def test_asyncio_cancellation_is_a_client_timeout() -> None:
    import asyncio

    outcome = classify_exception(asyncio.CancelledError())
    assert (outcome.error_class, outcome.reason) == (ErrorClass.TIMEOUT, "CancelledError")
