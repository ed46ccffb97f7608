"""The proxy on its port: every Gemini route forwarded, plus its own /metrics, /healthz and /readyz.

One aiohttp event loop in one background thread serves every client (no thread per connection), behind the
daemon's connection guard (connection cap, request-head size and deadline). A handler is cancelled when its
client goes, which cancels its upstream request.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace

import structlog
from aiohttp import web
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor._safety import InternalErrors, report_internal_error
from monitor.config import ShimConfig
from monitor.daemon.http import AppServer, HttpLimits
from monitor.daemon.http_conn import Connection
from monitor.generator.metrics import GeneratorMetrics
from monitor.pacing import Pacer
from monitor.proxy.config import ProxyConfig
from monitor.proxy.forward import Forwarder
from monitor.proxy.metrics import ProxyMetrics
from monitor.proxy.routes import google_error
from monitor.proxy.stop import StopCheck
from monitor.shim.metrics import ShimMetrics
from monitor.shim.recorder import Recorder
from monitor.wire import PROXY_HEADER

_log = structlog.get_logger("nbmon.proxy")
Handler = Callable[[web.Request], "web.StreamResponse"]


def build_forwarder(
    config: ProxyConfig,
    shim: ShimConfig,
    registry: CollectorRegistry,
    degraded: Callable[[], Awaitable[bool]],
    *,
    tracer_provider: TracerProvider | None = None,
    rng: random.Random | None = None,
    pacer: Pacer | None = None,
    stopped: StopCheck | None = None,
) -> Forwarder:
    """The forwarder with the shim's telemetry on `registry`: the same metrics, spans and log event per call.

    `stopped` says whether generation is stopped (None: it never is); while it is, generate requests get a 429."""
    from opentelemetry import trace

    metrics = ShimMetrics.for_registry(registry)
    metrics.model_info.use(shim)
    provider = tracer_provider or trace.get_tracer_provider()
    recorder = Recorder(metrics, provider.get_tracer("nbmon.proxy"), _log, shim, own_logger=True)
    return Forwarder(
        config,
        shim,
        recorder,
        ProxyMetrics.for_registry(registry),
        GeneratorMetrics.for_registry(registry),
        InternalErrors.for_registry(registry),
        degraded,
        rng=rng,
        pacer=pacer,
        stopped=stopped,
    )


def build_proxy_app(
    forwarder: Forwarder, registry: CollectorRegistry, on_error: Callable[[str, Exception], None]
) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], object]) -> web.StreamResponse:
        if isinstance(request.protocol, Connection):
            request.protocol.request_started()
        try:
            response = await handler(request)  # type: ignore[misc]
        except web.HTTPException:
            raise
        except Exception as error:  # noqa: BLE001 - one bad request never takes the proxy down
            on_error(request.path, error)
            response = web.Response(
                status=500,
                body=google_error(500, "nbmon proxy: internal error"),
                content_type="application/json",
                headers={PROXY_HEADER: "1"},
            )
        assert isinstance(response, web.StreamResponse)
        return response

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        ready = forwarder.session is not None and not forwarder.session.closed
        return web.json_response({"ready": ready, "upstream": forwarder.config.upstream}, status=200 if ready else 503)

    async def opened(_app: web.Application) -> None:
        await forwarder.open()

    async def closed(_app: web.Application) -> None:
        await forwarder.close()

    # The body size is the forwarder's to check (generate requests read whole, uploads streamed).
    app = web.Application(middlewares=[guard], client_max_size=forwarder.config.max_request_bytes)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_route("*", "/{tail:.*}", forwarder.handle)
    app.on_startup.append(opened)
    app.on_cleanup.append(closed)
    return app


class ProxyServer(AppServer):
    """`nbmon proxy`, or the `[proxy]` of `nbmon run`: the forwarder served on its own port and loop."""

    def __init__(
        self,
        forwarder: Forwarder,
        registry: CollectorRegistry,
        *,
        on_error: Callable[[str, Exception], None] | None = None,
    ) -> None:
        config = forwarder.config
        limits = replace(
            HttpLimits(),
            max_connections=config.max_connections,
            header_timeout=config.header_timeout_s,
            max_body=config.max_request_bytes,
        )
        self.forwarder = forwarder
        report = on_error or _report
        super().__init__(
            lambda: build_proxy_app(forwarder, registry, report),
            config.host,
            config.port,
            report,
            limits=limits,
            name="nbmon-proxy",
            cancel_on_disconnect=True,
        )


def _report(path: str, error: Exception) -> None:
    report_internal_error("proxy.http", error, None)
