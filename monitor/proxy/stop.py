"""The proxy's side of a hard stop (`generation-allowed` false, e.g. a spent budget with `action = "stop"`).

While a stop holds, generate requests are answered by the proxy itself and never sent upstream: HTTP 429
`RESOURCE_EXHAUSTED` with a message naming a spend cap, the shape of Gemini's own spend-cap refusal, so every SDK
raises its usual error and nbmon's taxonomy (the app's shim, ImageGenerator) classifies it `billing_limited`: no
retry, no fallback. Every other route (countTokens, models, files, uploads, batches' status) passes as usual.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from monitor._safety import InternalErrors, report_internal_error
from monitor.proxy.metrics import ProxyMetrics
from monitor.proxy.routes import GeminiRoute, google_error
from monitor.proxy.steering import Route
from monitor.wire import PROXY_HEADER, ROUTE_HEADER

if TYPE_CHECKING:
    from monitor.flagstate.store import FlagStore

# The methods that generate (and spend): a stop refuses these, and only these.
STOPPED_METHODS = frozenset({"generateContent", "streamGenerateContent", "batchGenerateContent"})


@dataclass(frozen=True, slots=True)
class Stopped:
    """A stop in effect: until when (None: unknown, e.g. a standalone proxy's OFREP read without metadata), why."""

    until: datetime | str | None
    reason: str = ""


StopCheck = Callable[[], Awaitable[Stopped | None]]  # None: generation is allowed


class StopGate:
    """Asks `check` before each generate request; fail-static: a check that raises keeps the last answer."""

    def __init__(self, check: StopCheck | None, metrics: ProxyMetrics, internal_errors: InternalErrors) -> None:
        self._check, self._metrics, self._internal_errors = check, metrics, internal_errors
        self._last: Stopped | None = None

    async def refusal(self, route: GeminiRoute) -> web.Response | None:
        """None: forward the request; else the 429 its client gets instead (nothing is sent upstream)."""
        if self._check is None or route.method not in STOPPED_METHODS:
            return None
        try:
            self._last = await self._check()
        except Exception as error:  # noqa: BLE001 - a broken check must not break forwarding
            report_internal_error("proxy.stop", error, self._internal_errors.count)
        if self._last is None:
            return None
        try:
            self._metrics.stopped.labels(route.method_label).inc()
        except Exception as error:  # noqa: BLE001
            report_internal_error("proxy.metrics", error, self._internal_errors.count)
        return stopped_response(self._last)


def stopped_response(stop: Stopped) -> web.Response:
    """Gemini's spend-cap shape (429 RESOURCE_EXHAUSTED, no details), with nbmon's own words and `x-nbmon-route`."""
    return web.Response(
        status=429,
        body=google_error(429, stop_message(stop)),
        content_type="application/json",
        headers={PROXY_HEADER: "1", ROUTE_HEADER: Route.STOPPED.value},
    )


def stop_message(stop: Stopped) -> str:
    until = stop.until.isoformat().replace("+00:00", "Z") if isinstance(stop.until, datetime) else stop.until
    when = f"until {until}" if until else "until the stop is lifted"
    why = f" ({stop.reason})" if stop.reason else ""
    # "spend cap" is what Gemini's own refusal says: classifiers read this reply as billing_limited.
    return (
        f"nbmon: generation is stopped {when}: the project reached the spend cap of its nbmon budget{why}. "
        "The request was not sent to Gemini."
    )


def stop_check(store: FlagStore) -> StopCheck:
    """The stop of the daemon that holds `store`, read in-process (`nbmon run` with `[proxy]`): no OFREP round trip,
    and a stop whose `until` has passed is already ignored."""

    async def check() -> Stopped | None:
        stop = store.effective().stop
        return None if stop is None else Stopped(stop.until, stop.reason)

    return check


def ofrep_stop_check(url: str, *, ttl_s: float = 1.0) -> StopCheck:
    """The `generation-allowed` flag of the daemon at `url` over OFREP (cached, fail-static, allowed by default)."""
    from monitor.generator.flags import OfrepFlagSource

    source = OfrepFlagSource.generation_allowed(url, ttl_s=ttl_s)

    async def check() -> Stopped | None:
        if await source.adegraded():  # the flag's value: True while generation is allowed
            return None
        metadata = source.metadata
        until, detail = metadata.get("until"), metadata.get("detail")
        return Stopped(until if isinstance(until, str) else None, detail if isinstance(detail, str) else "")

    return check
