"""Classifier tables over the real error bodies in shared/reference/gemini-api.md, plus malformed ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from monitor.taxonomy import Category, ErrorClass, QuotaWindow, classify_http

BODY_503 = {
    "error": {
        "code": 503,
        "message": "The model is overloaded. Please try again later.",
        "status": "UNAVAILABLE",
        "details": [{"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": "backend_error"}],
    }
}
BODY_503_NO_DETAILS = {
    "error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}
}
BODY_429_MINUTE = {
    "error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
                        "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "250000",
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "26s"},
        ],
    }
}
BODY_429_RETRY_ONLY = {  # the article's 429
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}],
    }
}
BODY_429_DAY_AND_MINUTE = {  # several violations, details in another order, a per-day cap advertising hours
    "error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": "Quota exceeded for metric: generate_requests_per_model_per_day, limit: 250. Please retry in 6h.",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "6h34m53s"},
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {"quotaMetric": "m/minute", "quotaId": "GenerateRequestsPerMinutePerProjectPerModel"},
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model_per_day",
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel",
                        "quotaValue": "250",
                    },
                ],
            },
        ],
    }
}
BODY_429_LEGACY = {  # google/generative-ai-docs#236
    "error": {
        "code": 429,
        "message": "Quota exceeded for quota metric 'Generate Content API requests per minute'",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {
                    "quota_metric": "generativelanguage.googleapis.com/generate_content_requests",
                    "quota_limit": "GenerateContentRequestsPerMinutePerProjectPerRegion",
                    "service": "generativelanguage.googleapis.com",
                },
            }
        ],
    }
}
BODY_429_VERTEX_DSQ = {
    "error": {
        "code": 429,
        "message": "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
        "status": "RESOURCE_EXHAUSTED",
    }
}
BODY_429_MESSAGE_HINT = {
    "error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": "Quota exceeded for metric: x, limit: 10, model: gemini-3-pro-image. Please retry in 37.36s.",
    }
}
HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
)


def _err(code: int, status: str, message: str = "m") -> dict[str, object]:
    return {"error": {"code": code, "message": message, "status": status}}


CASES = [
    # (id, status, body, expected class, grpc status)
    ("503 article", 503, BODY_503, ErrorClass.OVERLOADED, "UNAVAILABLE"),
    ("503 no details", 503, BODY_503_NO_DETAILS, ErrorClass.OVERLOADED, "UNAVAILABLE"),
    ("500", 500, _err(500, "INTERNAL"), ErrorClass.SERVER_ERROR, "INTERNAL"),
    ("502 html", 502, HTML_502, ErrorClass.BAD_GATEWAY, None),
    ("502 json", 502, _err(502, "UNAVAILABLE"), ErrorClass.BAD_GATEWAY, "UNAVAILABLE"),
    ("504", 504, _err(504, "DEADLINE_EXCEEDED"), ErrorClass.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
    ("429 per minute", 429, BODY_429_MINUTE, ErrorClass.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
    ("429 retry only", 429, BODY_429_RETRY_ONLY, ErrorClass.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
    ("429 per day wins", 429, BODY_429_DAY_AND_MINUTE, ErrorClass.QUOTA_EXHAUSTED, "RESOURCE_EXHAUSTED"),
    ("429 legacy ErrorInfo", 429, BODY_429_LEGACY, ErrorClass.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
    ("429 vertex no details", 429, BODY_429_VERTEX_DSQ, ErrorClass.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
    ("429 message hint", 429, BODY_429_MESSAGE_HINT, ErrorClass.RATE_LIMITED, "RESOURCE_EXHAUSTED"),
    ("400", 400, _err(400, "INVALID_ARGUMENT"), ErrorClass.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (
        "400 precondition",
        400,
        _err(400, "FAILED_PRECONDITION", "User location is not supported for the API use."),
        ErrorClass.FAILED_PRECONDITION,
        "FAILED_PRECONDITION",
    ),
    ("403", 403, _err(403, "PERMISSION_DENIED"), ErrorClass.PERMISSION_DENIED, "PERMISSION_DENIED"),
    ("401", 401, _err(401, "UNAUTHENTICATED"), ErrorClass.PERMISSION_DENIED, "UNAUTHENTICATED"),
    ("404", 404, _err(404, "NOT_FOUND"), ErrorClass.NOT_FOUND, "NOT_FOUND"),
    ("418 unknown", 418, _err(418, "I_AM_A_TEAPOT"), ErrorClass.UNKNOWN, "I_AM_A_TEAPOT"),
    ("599 unknown grpc", 599, _err(599, "UNAVAILABLE"), ErrorClass.OVERLOADED, "UNAVAILABLE"),
    ("empty body 503", 503, b"", ErrorClass.OVERLOADED, None),
    ("garbage 500", 500, b"\xff\xfe not json", ErrorClass.SERVER_ERROR, None),
    ("list-wrapped body", 503, [BODY_503], ErrorClass.OVERLOADED, "UNAVAILABLE"),
    ("json string body", 400, '"just a string"', ErrorClass.INVALID_ARGUMENT, None),
    ("weird status type", 503, {"error": {"status": 7, "details": "nope"}}, ErrorClass.OVERLOADED, None),
]


@pytest.mark.parametrize(("status", "body", "expected", "grpc"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_bodies(status: int, body: object, expected: ErrorClass, grpc: str | None) -> None:
    raw = body if isinstance(body, bytes | str) else json.dumps(body)
    outcome = classify_http(status, raw)
    assert outcome.error_class is expected
    assert outcome.http_code == status
    assert outcome.code_label == str(status)
    assert outcome.grpc_status == grpc


def test_429_extracts_quota_and_retry_delay() -> None:
    outcome = classify_http(429, json.dumps(BODY_429_MINUTE))
    assert outcome.retry_after_s == 26.0
    assert outcome.category is Category.RATE_LIMITED
    (violation,) = outcome.quota
    assert violation.quota_id == "GenerateContentInputTokensPerModelPerMinute-FreeTier"
    assert violation.quota_metric == "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count"
    assert violation.quota_value == 250000
    assert violation.window is QuotaWindow.MINUTE


def test_per_day_wins_over_retry_info_and_reports_hours() -> None:
    outcome = classify_http(429, json.dumps(BODY_429_DAY_AND_MINUTE))
    assert outcome.retry_after_s == 6 * 3600 + 34 * 60 + 53
    assert outcome.quota_id == "GenerateRequestsPerDayPerProjectPerModel"
    assert [v.window for v in outcome.quota] == [QuotaWindow.MINUTE, QuotaWindow.DAY]
    assert outcome.quota[1].quota_value == 250
    assert outcome.quota[0].quota_value is None  # quotaValue missing


def test_legacy_error_info_quota() -> None:
    outcome = classify_http(429, json.dumps(BODY_429_LEGACY))
    (violation,) = outcome.quota
    assert violation.quota_metric == "generativelanguage.googleapis.com/generate_content_requests"
    assert violation.quota_id == "GenerateContentRequestsPerMinutePerProjectPerRegion"
    assert violation.window is QuotaWindow.MINUTE


def test_message_hint_is_the_last_resort_for_retry_delay() -> None:
    assert classify_http(429, json.dumps(BODY_429_MESSAGE_HINT)).retry_after_s == pytest.approx(37.36)
    assert classify_http(429, json.dumps(BODY_429_VERTEX_DSQ)).retry_after_s is None


def test_bare_429_mentioning_a_daily_limit_is_exhaustion() -> None:
    body = _err(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'requests per day'")
    assert classify_http(429, json.dumps(body)).error_class is ErrorClass.QUOTA_EXHAUSTED


def test_retry_after_header_seconds_and_http_date() -> None:
    body = json.dumps(_err(429, "RESOURCE_EXHAUSTED"))
    assert classify_http(429, body, {"Retry-After": "12"}).retry_after_s == 12.0
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    dated = classify_http(503, "", {"retry-after": "Fri, 27 Nov 2026 12:01:30 GMT"}, now=now)
    assert dated.retry_after_s == 90.0
    assert classify_http(503, "", {"retry-after": "soon"}).retry_after_s is None
    # RetryInfo in the body wins over the header
    assert classify_http(429, json.dumps(BODY_429_RETRY_ONLY), {"retry-after": "5"}).retry_after_s == 36.0


@pytest.mark.parametrize("delay", ["", "s", "-5s", "abc", "10x", "99999999s", None, {"seconds": "x"}, ["36s"], True])
def test_malformed_retry_delays_are_ignored(delay: object) -> None:
    body = {
        "error": {"code": 429, "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}
    }
    outcome = classify_http(429, json.dumps(body))
    assert outcome.retry_after_s is None
    assert outcome.error_class is ErrorClass.RATE_LIMITED


@pytest.mark.parametrize(
    "details",
    [
        "not a list",
        [None, 1, "x"],
        [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": "nope"}],
        [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [None, {"quotaId": 5}]}],
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "metadata": "nope"}],
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "metadata": {}}],
        [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaValue": "lots"}]}],
    ],
)
def test_malformed_details_never_raise(details: object) -> None:
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": details}}
    outcome = classify_http(429, json.dumps(body))
    assert outcome.error_class is ErrorClass.RATE_LIMITED
    assert all(v.quota_id is None or isinstance(v.quota_id, str) for v in outcome.quota)


def test_error_event_inside_a_200_stream() -> None:
    outcome = classify_http(200, json.dumps(BODY_503_NO_DETAILS))
    assert outcome.error_class is ErrorClass.OVERLOADED
    assert outcome.http_code == 503


def test_200_garbage_is_no_image_not_a_crash() -> None:
    assert classify_http(200, b"<html>").error_class is ErrorClass.NO_IMAGE
    assert classify_http(200, b"<html>", image_expected=False).error_class is ErrorClass.OK


def test_every_class_has_a_category() -> None:
    from monitor.taxonomy import CATEGORY_OF

    assert set(CATEGORY_OF) == set(ErrorClass)


def test_absurdly_nested_json_never_raises() -> None:
    body = "[" * 100_000 + "]" * 100_000
    assert classify_http(503, body).error_class is ErrorClass.OVERLOADED


def test_message_retry_hint_is_capped() -> None:
    body = _err(429, "RESOURCE_EXHAUSTED", "Please retry in 99999999s.")
    assert classify_http(429, json.dumps(body)).retry_after_s is None
