"""The proxy's side of shared pacing: wait for the slot, or answer a Google-shaped 429 that SDKs understand.

A refused request is never sent upstream (it would be sure to get a 429 there); the client gets RetryInfo and
Retry-After with the wait a slot needs, so an SDK or ImageGenerator behind the proxy backs off as long as needed.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from monitor.pacing import Decision, Pacer, requested_images
from monitor.wire import PROXY_HEADER

_TYPE = "type.googleapis.com/google.rpc."
_POLL_S = 0.25  # how often a waiting request looks whether its client is still there
_QUOTA_IDS = {  # what Google names its per-minute quotas, so classifiers read the refusal as rate_limited
    "rpm": ("generate_requests_per_model", "GenerateRequestsPerMinutePerProjectPerModel"),
    "ipm": ("generate_images_per_model", "GenerateImagesPerMinutePerProjectPerModel"),
    "tpm": ("generate_content_input_token_count", "GenerateContentInputTokensPerModelPerMinute"),
}


async def pace_request(
    pacer: Pacer,
    model: str,
    parsed: dict[str, Any] | None,
    time_left_s: float | None,
    min_call_s: float,
    sleep: Callable[[float], Awaitable[None]],
    request: web.BaseRequest | None = None,
) -> web.Response | None:
    """None once the request may go (its slot reserved, the wait slept); else the 429 to answer with (499 should the
    client leave while it waits: its slot is given back).

    `time_left_s` is what the request's deadline leaves; the wait keeps `min_call_s` of it for the call itself, as
    ImageGenerator does. The request costs its estimated input tokens and the images its generationConfig asks for.
    """
    contents = parsed.get("contents") if parsed is not None else None
    tokens = pacer.estimate(contents) if contents is not None else 0
    settings = parsed.get("generationConfig", parsed.get("generation_config")) if parsed is not None else None
    images = requested_images(settings) if isinstance(settings, dict) else 1
    bound = None if time_left_s is None else max(time_left_s - min_call_s, 0.0)
    decision = await pacer.aacquire(model, max_wait_s=bound, images=images, tokens=tokens)
    if not decision.admitted:
        return refused_response(model, decision)
    try:
        left = decision.wait_s
        while left > 0:  # in steps, to see a client that leaves: aiohttp does not cancel the handler then
            step = min(left, _POLL_S)
            await sleep(step)
            left -= step
            if request is not None and request.transport is None:
                await pacer.arelease(decision)
                return web.Response(status=499)
    except asyncio.CancelledError:
        await pacer.arelease(decision)
        raise
    return None


def refused_response(model: str, decision: Decision) -> web.Response:
    quota = decision.quota or "rpm"
    metric, quota_id = _QUOTA_IDS.get(quota, _QUOTA_IDS["rpm"])
    limit = f"{decision.limit:g}" if decision.limit is not None else "unknown"
    retry = decision.retry_after_s
    details: list[dict[str, Any]] = [
        {
            "@type": _TYPE + "QuotaFailure",
            "violations": [
                {
                    "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                    "quotaId": quota_id,
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": limit,
                }
            ],
        }
    ]
    headers = {PROXY_HEADER: "1"}
    if retry is not None:
        seconds = max(math.ceil(retry), 1)
        details.append({"@type": _TYPE + "RetryInfo", "retryDelay": f"{seconds}s"})
        headers["Retry-After"] = str(seconds)
        when = f"Please retry in {seconds}s."
    else:
        when = "The request costs more than the limit: it never fits."
    message = (
        f"nbmon pacing: not sent: the {quota} limit of {model} ({limit} per minute) has no slot within this "
        f"request's timeout. {when}"
    )
    body = {"error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED", "details": details}}
    return web.Response(status=429, body=json.dumps(body).encode(), content_type="application/json", headers=headers)
