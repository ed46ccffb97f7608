"""Forwarding one request to the upstream and its response back, watched (and, opt-in, steered and retried).

Generate requests (`:generateContent`, `:streamGenerateContent`) are read whole, bounded: a retry or a steer sends
them again, and the shim's request reader learns the model, modalities and image size from them. Every other
request body (uploads) and every response body is streamed: the response goes out chunk by chunk as it comes
in, and `ResponseReader` learns what it says from a copy without its images. Retries and steering act before
the first byte of a response reaches the client; after that the bytes are the upstream's, untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from yarl import URL

from monitor import labels
from monitor._safety import InternalErrors, guarded, report_internal_error
from monitor.config import ShimConfig
from monitor.generator.metrics import GeneratorMetrics
from monitor.generator.policy import FallbackReason, RetryAction, decide
from monitor.generator.telemetry import GeneratorTelemetry
from monitor.pacing import Pacer
from monitor.proxy.config import ProxyConfig
from monitor.proxy.metrics import ProxyMetrics
from monitor.proxy.pacing import pace_request
from monitor.proxy.routes import GeminiRoute, forwarded_headers, gemini_route, google_error, server_timeout
from monitor.proxy.skeleton import ResponseReader, framing_for
from monitor.proxy.steering import Route, Steering, body_for, can_fall_back, steer
from monitor.proxy.stop import StopCheck, StopGate
from monitor.shim.recorder import Call, Recorder
from monitor.shim.request_info import read_json_request
from monitor.taxonomy import Outcome, classify_exception, classify_http
from monitor.wire import PROXY_HEADER, ROUTE_HEADER, SERVED_MODEL_HEADER

LARGE_BODY_BYTES = 1 << 20  # aiohttp warns above this for raw bytes (TOO_LARGE_BYTES_BODY)
MAX_ERROR_BODY = 1 << 20  # an error body is read whole to classify it; Google's are a few hundred bytes
_PROPAGATOR = TraceContextTextMapPropagator()
# Our span replaces the client's trace headers upstream; the body is re-framed by aiohttp.
_REQUEST_DROP = frozenset({"traceparent", "tracestate", "content-length"})
_TIMEOUTS = (asyncio.TimeoutError, aiohttp.ServerTimeoutError)
# Response fields that send the client to a URL of the upstream: a resumable upload's next requests.
_URL_HEADERS = frozenset({"x-goog-upload-url", "location", "content-location"})


class ClientGone(Exception):
    """The client closed its connection while its response was being written."""


@dataclass(slots=True)
class _Exchange:
    """One client request in flight: what is known so far (nothing of its content)."""

    request: web.Request
    route: GeminiRoute
    body: bytes
    parsed: dict[str, Any] | None
    call: Call | None
    steering: Steering
    started: float  # monotonic, for the deadline
    deadline_s: float | None


class Forwarder:
    """The proxy's request handler (`handle`), with everything it uses injected."""

    def __init__(
        self,
        config: ProxyConfig,
        shim: ShimConfig,
        recorder: Recorder,
        metrics: ProxyMetrics,
        generator_metrics: GeneratorMetrics,
        internal_errors: InternalErrors,
        degraded: Callable[[], Awaitable[bool]],
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
        stopped: StopCheck | None = None,
    ) -> None:
        self._stop = StopGate(stopped, metrics, internal_errors)  # generation-allowed false: generate refused
        self._pacer = pacer  # [proxy] pace: each upstream request of a generate call first waits for its slot
        self.config, self._shim, self._recorder, self._metrics = config, shim, recorder, metrics
        self._generator_metrics, self._internal_errors = generator_metrics, internal_errors
        self._degraded, self._rng, self._sleep, self._monotonic = degraded, rng or random.Random(), sleep, monotonic
        self._upstream = URL(config.upstream)
        self._origin = config.upstream  # upload URLs the upstream hands out start with it
        self._server = (self._upstream.host, self._upstream.port)
        self._model_label = labels.BoundedLabel(shim.known_models, shim.max_extra_model_labels)
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """On the server's loop, at start: the connection pool to the upstream."""
        from monitor.net import trust_env_for

        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.config.connect_timeout_s, sock_read=self.config.read_timeout_s
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            auto_decompress=False,  # the client gets the upstream's bytes, compressed or not
            trust_env=trust_env_for(self.config.upstream),  # HTTPS_PROXY for egress, never for loopback
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),  # only the client's own
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    # --- the handler ---------------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        route = gemini_route(request.raw_path.split("?", 1)[0])
        if route is None:
            return _error_response(404, "not a Gemini API path: nbmon forwards /v1.../ and /upload/v1.../ only")
        self._count(self._metrics.in_flight.inc)
        status = 499  # nginx's "client closed request": what the log and metric say when the client left
        try:
            refused = await self._stop.refusal(route)  # a stop holds: answered here, never sent upstream
            if refused is not None:
                response: web.StreamResponse = refused
            else:
                response = await (self._generate(request, route) if route.generates else self._pass(request, route))
            status = response.status
            return response
        finally:
            self._count(lambda: self._metrics.requests.labels(route.method_label, str(status)).inc())
            self._count(self._metrics.in_flight.dec)  # last: at 0, everything about the request is counted

    # --- any route: straight through ----------------------------------------------------------------------

    async def _pass(self, request: web.Request, route: GeminiRoute) -> web.StreamResponse:
        headers = forwarded_headers(request.headers.items(), drop=("traceparent", "tracestate"))
        data = request.content if request.body_exists else None
        try:
            upstream = await self._send(request.method, route.path, request.query_string, headers, data)
        except (aiohttp.ClientError, OSError, *_TIMEOUTS) as error:
            return self._upstream_failed(route, error)
        try:
            return await self._stream(request, route, upstream, None, None)
        except ClientGone:
            return web.Response(status=499)

    # --- generate routes: watched, maybe steered and retried ---------------------------------------------

    async def _generate(self, request: web.Request, route: GeminiRoute) -> web.StreamResponse:
        body = await self._read_body(request)
        if body is None:
            return _error_response(413, f"request body over {self.config.max_request_bytes} bytes")
        parsed = _json_object(body)
        assert route.model is not None
        degraded = self.config.steer and await self._flag()
        steering = steer(
            route.model, self._shim, degraded=degraded, canary_share=self.config.canary_share, draw=self._rng.random()
        )
        deadline = self.config.retry_policy.deadline_s if self.config.retry else None
        client_timeout = server_timeout(request.headers)
        if client_timeout is not None:
            deadline = client_timeout if deadline is None else min(deadline, client_timeout)
        exchange = _Exchange(request, route, body, parsed, None, steering, self._monotonic(), deadline)
        refused = await self._pace(exchange, steering.model)
        if refused is not None:  # never sent: it would be sure to get a 429 upstream
            return refused
        exchange.call = self._begin(exchange, steering.model)
        telemetry = self._telemetry(exchange.call)
        if steering.route is Route.DEGRADED:
            telemetry.routing("flash", steering.model)
            telemetry.fallback(route.model, steering.model, FallbackReason.DEGRADED_MODE, "degraded_mode")
        elif steering.route is Route.CANARY:
            telemetry.routing("canary", steering.model)
        try:
            return await self._attempts(exchange, telemetry)
        except ClientGone:
            self._client_gone(exchange)
            return web.Response(status=499)
        except asyncio.CancelledError:
            self._client_gone(exchange)
            raise

    async def _attempts(self, exchange: _Exchange, telemetry: GeneratorTelemetry) -> web.StreamResponse:
        """Each model called is a call of its own in the telemetry, as the shim counts ImageGenerator's fallback:
        a Pro attempt that failed is Pro's, the Flash answer Flash's (the primary's ratio stays the primary's)."""
        route, recorder = exchange.route, self._recorder
        model, attempt, label = exchange.steering.model, 0, exchange.steering.route
        while True:
            attempt += 1
            call = exchange.call
            started = recorder.attempt_started(call) if call is not None else 0.0
            path, body = route.path, exchange.body
            if model != route.model:
                path, body = route.with_model(model), body_for(model, body, exchange.parsed, self._shim)
            try:
                upstream = await self._send(
                    "POST", path, exchange.request.query_string, self._request_headers(exchange), body
                )
            except (aiohttp.ClientError, OSError, *_TIMEOUTS) as error:
                if call is not None:
                    recorder.attempt_failed(call, error, started)
                following = await self._next(exchange, telemetry, model, attempt, classify_exception(error))
                if following is None or following != model:
                    if call is not None:
                        recorder.finish_exception(call, error)
                    if following is None:
                        return self._upstream_failed(route, error)
                model, attempt, label = self._moved(exchange, model, following, attempt, label)
                continue
            if upstream.status == 200:
                if call is not None:
                    recorder.attempt_answered(call, 200, b"", upstream.headers, started)
                return await self._stream(exchange.request, route, upstream, call, model, route_label=label)
            error_body = await _read_bounded(upstream)
            decoded = _decoded(upstream, error_body)
            if call is not None:
                recorder.attempt_answered(call, upstream.status, decoded, upstream.headers, started)
            outcome = call.last_outcome if call is not None else None
            if outcome is None:
                outcome = classify_http(upstream.status, decoded, upstream.headers)
            following = await self._next(exchange, telemetry, model, attempt, outcome)
            if following is None or following != model:
                if call is not None:
                    recorder.finish_answered(call)
                if following is None:
                    return await self._stream(
                        exchange.request, route, upstream, None, model, prefix=error_body, route_label=label
                    )
            upstream.release()
            model, attempt, label = self._moved(exchange, model, following, attempt, label)

    def _moved(
        self, exchange: _Exchange, model: str, following: str, attempt: int, label: Route
    ) -> tuple[str, int, Route]:
        """(model, attempts on it, route header) after a retry decision: a new model is a new call."""
        if following == model:
            return model, attempt, label
        exchange.call = self._begin(exchange, following)
        return following, 0, Route.FALLBACK

    async def _next(
        self, exchange: _Exchange, telemetry: GeneratorTelemetry, model: str, attempt: int, outcome: Outcome
    ) -> str | None:
        """After a failed attempt, with `retry` on: the model to try next, once the policy's wait is over; None
        to answer the client with this failure (retry off, a class not retried, attempts or deadline spent)."""
        if not self.config.retry:
            return None
        policy = self.config.retry_policy
        canary = exchange.steering.route is Route.CANARY and model == exchange.route.model
        if canary:  # a canary measures the primary; its user must not sit through its backoff in an outage
            policy = replace(policy, max_attempts=1)
        time_left = None
        if exchange.deadline_s is not None:
            time_left = exchange.deadline_s - (self._monotonic() - exchange.started)
        assert exchange.route.model is not None
        decision = decide(
            policy,
            outcome,
            attempt=attempt,
            rerolls_used=0,  # a 200 is on its way to the client: its content is never retried here
            time_left_s=time_left,
            can_fallback=can_fall_back(exchange.route.model, model, self._shim),
            jitter_draw=self._rng.uniform(-1.0, 1.0),
        )
        if decision.action is RetryAction.RETRY:
            telemetry.retry(model, outcome.error_class, decision.wait_s, attempt)
            await self._sleep(decision.wait_s)
            return model if await self._pace(exchange, model) is None else None
        if decision.action is RetryAction.FALLBACK:
            reason = decision.fallback_reason or FallbackReason.RETRIES_EXHAUSTED
            if canary and reason is FallbackReason.RETRIES_EXHAUSTED:
                reason = FallbackReason.DEGRADED_MODE
            telemetry.fallback(model, self._shim.fallback_model, reason, decision.why)
            fallback = self._shim.fallback_model
            return fallback if await self._pace(exchange, fallback) is None else None
        return None

    async def _pace(self, exchange: _Exchange, model: str) -> web.Response | None:
        """None: send (the slot's wait slept, leaving min_call_s of the deadline); else the 429 the client gets."""
        if self._pacer is None:
            return None
        left = None if exchange.deadline_s is None else exchange.deadline_s - (self._monotonic() - exchange.started)
        min_call_s, request = self.config.retry_policy.min_call_s, exchange.request
        return await pace_request(self._pacer, model, exchange.parsed, left, min_call_s, self._sleep, request)

    # --- pieces ---------------------------------------------------------------------------------------------

    def _begin(self, exchange: _Exchange, model: str) -> Call | None:
        """A call record for the request as sent to `model` (the one asked for, or the one steered to)."""
        try:
            parsed = exchange.parsed
            if model != exchange.route.model and parsed is not None:
                parsed = _json_object(body_for(model, exchange.body, parsed, self._shim))  # what the model is sent
            info = read_json_request(model, parsed or {}, self._shim, self._server)
            context: Context = _PROPAGATOR.extract(exchange.request.headers)
        except Exception as error:  # noqa: BLE001 - telemetry never stops a request
            report_internal_error("proxy.begin", error, self._internal_errors.count)
            return None
        return self._recorder.begin(info, stream=exchange.route.streams, context=context)

    def _telemetry(self, call: Call | None) -> GeneratorTelemetry:
        span = call.span if call is not None else INVALID_SPAN
        return GeneratorTelemetry(self._generator_metrics, self._internal_errors, self._shim, span, self._model_label)

    def _request_headers(self, exchange: _Exchange) -> list[tuple[str, str]]:
        headers = forwarded_headers(exchange.request.headers.items(), drop=_REQUEST_DROP)
        if exchange.call is not None and exchange.call.attach:
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier, context=set_span_in_context(exchange.call.span))
            headers.extend(carrier.items())
        return headers

    async def _send(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], data: Any
    ) -> aiohttp.ClientResponse:
        assert self.session is not None
        url = self._upstream.with_path(self._upstream.path.rstrip("/") + path, encoded=True)
        if query:
            url = url.with_query(query)
        if isinstance(data, bytes) and len(data) > LARGE_BODY_BYTES:
            # An edit request with a reference image is megabytes: aiohttp writes raw bytes that large in one go (and
            # warns about it); from a BytesIO it writes in chunks, yielding to the loop, Content-Length kept. A new one
            # per attempt: the payload closes it when sent.
            data = aiohttp.BytesIOPayload(io.BytesIO(data))
        return await self.session.request(
            method, url, headers=CIMultiDict(headers), data=data, allow_redirects=False, compress=None
        )

    async def _read_body(self, request: web.Request) -> bytes | None:
        limit = self.config.max_request_bytes
        if request.content_length is not None and request.content_length > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _flag(self) -> bool:
        try:
            return bool(await self._degraded())
        except Exception as error:
            with guarded("proxy.flag", self._internal_errors.count):
                raise error
            return False

    def _count(self, update: Callable[[], object]) -> None:
        with guarded("proxy.metrics", self._internal_errors.count):
            update()

    def _upstream_failed(self, route: GeminiRoute, error: BaseException) -> web.Response:
        timeout = isinstance(error, _TIMEOUTS)
        reason = "timeout" if timeout else "connect"
        self._count(lambda: self._metrics.upstream_failures.labels(route.method_label, reason).inc())
        if timeout:
            return _error_response(504, "nbmon proxy: the upstream did not answer in time")
        return _error_response(502, f"nbmon proxy: the upstream could not be reached ({type(error).__name__})")

    def _client_gone(self, exchange: _Exchange) -> None:
        self._count(lambda: self._metrics.client_disconnects.labels(exchange.route.method_label).inc())
        if exchange.call is not None:
            self._recorder.finish_stream(exchange.call, closed_early=True)

    async def _stream(
        self,
        request: web.Request,
        route: GeminiRoute,
        upstream: aiohttp.ClientResponse,
        call: Call | None,
        served_model: str | None,
        *,
        prefix: bytes = b"",
        route_label: Route | None = None,
    ) -> web.StreamResponse:
        """The upstream's response to the client as it arrives; `call` watches it (a 200 of a generate route)."""
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        here = f"{request.scheme}://{request.host}"
        for name, value in forwarded_headers(upstream.headers.items()):
            if name.lower() in _URL_HEADERS and value.startswith(self._origin):
                # The next request of a resumable upload comes back through the proxy, not around it.
                response.headers.add(name, here + value[len(self._origin) :])
            else:
                response.headers.add(name, value)
        response.headers[PROXY_HEADER] = "1"
        if served_model is not None:
            response.headers[SERVED_MODEL_HEADER] = served_model
        if route_label is not None:
            response.headers[ROUTE_HEADER] = route_label.value
        reader = self._reader(route, upstream, call) if call is not None else None
        try:
            try:
                await response.prepare(request)
                if prefix:
                    await response.write(prefix)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    if reader is not None:
                        reader.feed(chunk)
            except (ConnectionResetError, aiohttp.ClientConnectionResetError) as gone:
                raise ClientGone from gone
            except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, *_TIMEOUTS) as broken:
                self._count(lambda: self._metrics.upstream_failures.labels(route.method_label, "broken").inc())
                if call is not None:
                    self._recorder.finish_exception(call, broken)
                response.force_close()  # the status is sent: a cut connection is how the client learns
                return response
        finally:
            upstream.release()
        if reader is not None and call is not None:
            reader.close()
            self._recorder.finish_stream(call)
        # Everything was sent; a client that did not wait for the end of the exchange is no failure.
        with contextlib.suppress(ConnectionResetError, aiohttp.ClientConnectionResetError):
            await response.write_eof()
        return response

    def _reader(self, route: GeminiRoute, upstream: aiohttp.ClientResponse, call: Call) -> _Watch:
        framing = framing_for(route.method, upstream.url.query_string, upstream.headers.get("content-type", ""))
        reader = ResponseReader(framing, lambda document: self._recorder.add_chunk(call, document))
        return _Watch(reader, upstream.headers.get("content-encoding", ""), self._internal_errors)


class _Watch:
    """A ResponseReader behind the body's content coding; a body it cannot decode is left unwatched."""

    def __init__(self, reader: ResponseReader, coding: str, internal_errors: InternalErrors) -> None:
        self._reader, self._internal_errors = reader, internal_errors
        coding = coding.strip().lower()
        self._inflate = zlib.decompressobj(47) if coding in ("gzip", "deflate", "x-gzip") else None
        self._off = coding not in ("", "identity", "gzip", "deflate", "x-gzip")

    def feed(self, chunk: bytes) -> None:
        if self._off:
            return
        with guarded("proxy.watch", self._internal_errors.count):
            self._reader.feed(self._inflate.decompress(chunk) if self._inflate is not None else chunk)

    def close(self) -> None:
        if self._off:
            return
        with guarded("proxy.watch", self._internal_errors.count):
            self._reader.close()


async def _read_bounded(upstream: aiohttp.ClientResponse) -> bytes:
    """An error response's body (a small JSON document), at most MAX_ERROR_BODY of it."""
    chunks, size = [], 0
    while size < MAX_ERROR_BODY:
        chunk = await upstream.content.read(MAX_ERROR_BODY - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _decoded(upstream: aiohttp.ClientResponse, body: bytes) -> bytes:
    coding = upstream.headers.get("content-encoding", "").strip().lower()
    if coding in ("gzip", "deflate", "x-gzip"):
        try:
            return zlib.decompressobj(47).decompress(body)
        except zlib.error:
            return b""
    return body


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _error_response(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, body=google_error(status, message), content_type="application/json", headers={PROXY_HEADER: "1"}
    )
