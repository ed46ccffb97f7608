"""Error bodies as the Gemini API sends them (gemini-api.md §7), keyed by outcome. Pure functions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from monitor.simulator.outcomes import SimOutcome

JSON_TYPE: Final = "application/json; charset=UTF-8"
HTML_TYPE: Final = "text/html; charset=UTF-8"

OVERLOADED_MESSAGE: Final = "The model is overloaded. Please try again later."
INTERNAL_MESSAGE: Final = (
    "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)
UNREGISTERED_MESSAGE: Final = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
VERTEX_UNAUTHENTICATED_MESSAGE: Final = (
    "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
    "or other valid authentication credential. "
    "See https://developers.google.com/identity/sign-in/web/devconsole-project."
)
VERTEX_429_MESSAGE: Final = (
    "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
)
HIGH_DEMAND_MESSAGE: Final = (
    "This model is currently experiencing high demand. Spikes in demand are usually temporary. Please try again later."
)
SPEND_CAP_MESSAGE: Final = (
    "Your project has exceeded its monthly spending cap. Please go to AI Studio at https://ai.studio/spend to "
    "manage your project spend cap."
)
PREPAID_MESSAGE: Final = (
    "Your prepayment credits are depleted. Please go to AI Studio at https://ai.studio/projects to manage your "
    "project and billing. Learn more at https://ai.google.dev/gemini-api/docs/billing#prepay. "
)
RATE_LIMIT_DOCS: Final = "https://ai.google.dev/gemini-api/docs/rate-limits"
DAILY_RETRY_DELAY: Final = "6h34m53s"

# What a proxy (nginx, a load balancer) in front of the API returns: HTML, not JSON.
BAD_GATEWAY_HTML: Final = (
    "<html><head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

_TYPE: Final = "type.googleapis.com/google.rpc."


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """One complete non-200 (or in-stream) error: HTTP status, content type and body."""

    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def api_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The google.rpc.Status envelope: {"error": {code, message, status[, details]}}."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


def _reply(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> ErrorReply:
    body = json.dumps(api_error(code, status, message, details), indent=2).encode()
    return ErrorReply(code, JSON_TYPE, body)


def delay_seconds_text(delay: str) -> str:
    """ "36s" -> "36", "6h34m53s" -> "23693": the number quoted in the 429 message ("Please retry in Ns")."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", delay):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return f"{total:g}"


MINUTE_LIMIT: Final = 10
DROPPED_MINUTE_LIMIT: Final = 2  # tier_dropped: the same quota at a lower tier's limit
DAY_LIMIT: Final = 250


def _quota_details(model: str, *, per_day: bool, retry_delay: str, limit: int | None = None) -> list[dict[str, Any]]:
    window = "Day" if per_day else "Minute"
    metric = "generate_requests_per_model_per_day" if per_day else "generate_requests_per_model"
    violation = {
        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
        "quotaId": f"GenerateRequestsPer{window}PerProjectPerModel",
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": str(limit if limit is not None else DAY_LIMIT if per_day else MINUTE_LIMIT),
    }
    return [
        {"@type": _TYPE + "QuotaFailure", "violations": [violation]},
        {
            "@type": _TYPE + "Help",
            "links": [{"description": "Learn more about Gemini API quotas", "url": RATE_LIMIT_DOCS}],
        },
        {"@type": _TYPE + "RetryInfo", "retryDelay": retry_delay},
    ]


def _quota_message(model: str, *, per_day: bool, retry_delay: str, limit: int | None = None) -> str:
    metric = "generate_requests_per_model_per_day" if per_day else "generate_requests_per_model"
    limit = limit if limit is not None else DAY_LIMIT if per_day else MINUTE_LIMIT
    return (
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        f"this error, head to: {RATE_LIMIT_DOCS}. To monitor your current usage, head to: "
        "https://ai.dev/usage?tab=rate-limit. \n"
        f"* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, limit: {limit}, model: {model}\n"
        f"Please retry in {delay_seconds_text(retry_delay)}s."
    )


def _legacy_rate_limit(model: str) -> ErrorReply:
    # The older ErrorInfo shape (google/generative-ai-docs#236): no QuotaFailure, no RetryInfo.
    metadata = {
        "service": "generativelanguage.googleapis.com",
        "consumer": "projects/000000000000",
        "quota_metric": "generativelanguage.googleapis.com/generate_requests_per_model",
        "quota_limit": "GenerateRequestsPerMinutePerProjectPerModel",
        "quota_limit_value": "10",
        "quota_location": "global",
    }
    message = (
        "Quota exceeded for quota metric 'Generate requests per model' and limit 'GenerateRequestsPerMinute"
        "PerProjectPerModel' of service 'generativelanguage.googleapis.com' for consumer "
        f"'project_number:000000000000' (model: {model})."
    )
    details: list[dict[str, Any]] = [
        {
            "@type": _TYPE + "ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": metadata,
        },
        {"@type": _TYPE + "Help", "links": [{"description": "Request a higher quota limit.", "url": RATE_LIMIT_DOCS}]},
    ]
    return _reply(429, "RESOURCE_EXHAUSTED", message, details)


def error_reply(outcome: SimOutcome, model: str, retry_delay: str = "36s") -> ErrorReply:
    """The reply for an HTTP-error outcome; ValueError for outcomes that are not errors (ok, blocks, reset)."""
    match outcome:
        case SimOutcome.OVERLOADED | SimOutcome.STREAM_ERROR:
            debug = [{"@type": _TYPE + "DebugInfo", "detail": "backend_error"}]
            return _reply(503, "UNAVAILABLE", OVERLOADED_MESSAGE, debug)
        case SimOutcome.SERVER_ERROR:
            return _reply(500, "INTERNAL", INTERNAL_MESSAGE)
        case SimOutcome.BAD_GATEWAY:
            return ErrorReply(502, HTML_TYPE, BAD_GATEWAY_HTML.encode())
        case SimOutcome.BAD_GATEWAY_JSON:
            # No google.rpc.Code exists for 502; a gateway that speaks JSON invents one. "BAD_GATEWAY" is
            # deliberately not a canonical status, so classifiers must key on HTTP 502, not on the status text.
            return _reply(502, "BAD_GATEWAY", "Bad Gateway: the upstream server returned an invalid response.")
        case SimOutcome.DEADLINE_EXCEEDED:
            return _reply(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete.")
        case SimOutcome.RATE_LIMITED:
            return _reply(
                429,
                "RESOURCE_EXHAUSTED",
                _quota_message(model, per_day=False, retry_delay=retry_delay),
                _quota_details(model, per_day=False, retry_delay=retry_delay),
            )
        case SimOutcome.TIER_DROPPED:
            low = DROPPED_MINUTE_LIMIT
            return _reply(
                429,
                "RESOURCE_EXHAUSTED",
                _quota_message(model, per_day=False, retry_delay=retry_delay, limit=low),
                _quota_details(model, per_day=False, retry_delay=retry_delay, limit=low),
            )
        case SimOutcome.SPEND_CAP:
            return _reply(429, "RESOURCE_EXHAUSTED", SPEND_CAP_MESSAGE)
        case SimOutcome.PREPAID_DEPLETED:
            return _reply(429, "RESOURCE_EXHAUSTED", PREPAID_MESSAGE)
        case SimOutcome.HIGH_DEMAND:
            return _reply(503, "UNAVAILABLE", HIGH_DEMAND_MESSAGE)
        case SimOutcome.CAPACITY_EXHAUSTED:
            info = {
                "@type": _TYPE + "ErrorInfo",
                "reason": "MODEL_CAPACITY_EXHAUSTED",
                "domain": "generativelanguage.googleapis.com",
                "metadata": {"model": model},
            }
            return _reply(503, "UNAVAILABLE", f"No capacity available for model {model} on the server", [info])
        case SimOutcome.RATE_LIMITED_LEGACY:
            return _legacy_rate_limit(model)
        case SimOutcome.RATE_LIMITED_NO_DETAILS:
            return _reply(429, "RESOURCE_EXHAUSTED", VERTEX_429_MESSAGE)
        case SimOutcome.QUOTA_EXHAUSTED:
            return _reply(
                429,
                "RESOURCE_EXHAUSTED",
                _quota_message(model, per_day=True, retry_delay=DAILY_RETRY_DELAY),
                _quota_details(model, per_day=True, retry_delay=DAILY_RETRY_DELAY),
            )
        case SimOutcome.INVALID_ARGUMENT:
            return _reply(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        case SimOutcome.FAILED_PRECONDITION:
            return _reply(400, "FAILED_PRECONDITION", "User location is not supported for the API use.")
        case SimOutcome.PERMISSION_DENIED:
            return _reply(403, "PERMISSION_DENIED", "The caller does not have permission")
        case SimOutcome.NOT_FOUND:
            return _reply(404, "NOT_FOUND", "Requested entity was not found.")
        case SimOutcome.MISSING_THOUGHT_SIGNATURE:
            message = (
                "Image part is missing a thought_signature in content position 2, part position 1. "
                "Additional data, see https://ai.google.dev/gemini-api/docs/thought-signatures"
            )
            return _reply(400, "INVALID_ARGUMENT", message)
    raise ValueError(f"outcome {outcome.value!r} is not an HTTP error")


def rate_limit_reply(model: str, limit: int, retry_in_s: float) -> ErrorReply:
    """A per-minute quota refusal with the limit and the real wait until a slot frees (the rolling window)."""
    delay = f"{max(retry_in_s, 0.0):.0f}s" if retry_in_s >= 1 else f"{max(retry_in_s, 0.0):.3f}s"
    return _reply(
        429,
        "RESOURCE_EXHAUSTED",
        _quota_message(model, per_day=False, retry_delay=delay, limit=limit),
        _quota_details(model, per_day=False, retry_delay=delay, limit=limit),
    )


def model_not_found_reply(model: str, method: str, *, vertex: bool = False) -> ErrorReply:
    """A model the API does not serve (retired, or never existed), as the Gemini API words it."""
    version = "v1beta1" if vertex else "v1beta"
    message = (
        f"models/{model} is not found for API version {version}, or is not supported for {method}. "
        "Call ListModels to see the list of available models and their supported methods."
    )
    return _reply(404, "NOT_FOUND", message)


def unauthenticated_reply(*, vertex: bool) -> ErrorReply:
    """No credentials: 403 on the Gemini API; Vertex answers 401 UNAUTHENTICATED."""
    if vertex:
        return _reply(401, "UNAUTHENTICATED", VERTEX_UNAUTHENTICATED_MESSAGE)
    return _reply(403, "PERMISSION_DENIED", UNREGISTERED_MESSAGE)


def malformed_reply(reason: str) -> ErrorReply:
    return _reply(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {reason}")


def not_found_reply(path: str) -> ErrorReply:
    return _reply(404, "NOT_FOUND", f"The requested URL {path} was not found on this server.")


def method_not_allowed_reply(method: str, path: str) -> ErrorReply:
    return _reply(405, "METHOD_NOT_ALLOWED", f"Method {method} is not allowed on {path}.")


def stream_error_event() -> dict[str, Any]:
    """The in-stream error event a 200 SSE stream can end with; the SDK raises APIError when it sees it."""
    return api_error(503, "UNAVAILABLE", OVERLOADED_MESSAGE)


def invalid_request_reply(message: str) -> ErrorReply:
    return _reply(400, "INVALID_ARGUMENT", message)
