"""The daemon's HTTP API as an aiohttp application: routes, JSON answers for every error, auth and bodies.

DaemonAPI calls take the daemon's lock, which an evaluation tick holds for ~20 ms: they run on a small thread
pool, never on the event loop. Two answers stay on the loop: /healthz, and OFREP evaluations of small bodies
(the flag's decision is a lock-free read), so flag polls never queue behind the lock or a slow /metrics.
aiohttp's router answers unknown paths (404) and methods (405 with `Allow`; HEAD wherever GET is served);
everything under /ofrep/ goes to `monitor.flagstate.ofrep.dispatch`, the one OFREP router.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.daemon.http_conn import Connection, ErrorSink, one_line
from monitor.flagstate.ofrep import OfrepResponse, dispatch, json_nesting_error
from monitor.logs import redact_text

if TYPE_CHECKING:
    from monitor.daemon.http import DaemonAPI, HttpLimits

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INLINE_OFREP_BODY = 16 * 1024  # parsing more than this would hold the event loop: the pool does it
_JSON = {"Content-Type": "application/json"}
_WRONG_METHOD = {  # the old server's hints, kept
    "/v1/override": "use POST to set an override, DELETE to clear it",
    "/v1/alertmanager": "Alertmanager posts its webhook: use POST",
}


class HttpError(Exception):
    """An answer decided while reading a request: status and a one-line reason."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.close = status, message, close


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body, default=str).encode(), headers={**_JSON, **(headers or {})}
    )


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(status, {"error": message}, headers)


def build_app(api: DaemonAPI, limits: HttpLimits, pool: Executor, on_error: ErrorSink) -> web.Application:
    routes = _Routes(api, limits, pool, on_error)
    app = web.Application(middlewares=[routes.middleware], client_max_size=limits.max_body)
    router = app.router
    router.add_get("/healthz", routes.healthz)
    router.add_get("/metrics", routes.metrics)
    router.add_get("/readyz", routes.readyz)
    router.add_get("/v1/state", routes.state)
    router.add_route("*", "/ofrep/{tail:.*}", routes.ofrep)  # dispatch decides the method, path and key
    router.add_route("POST", "/v1/override", routes.set_override)
    router.add_route("PUT", "/v1/override", routes.set_override)
    router.add_route("DELETE", "/v1/override", routes.clear_override)
    router.add_post("/v1/alertmanager", routes.alertmanager)
    return app


class _Routes:
    def __init__(self, api: DaemonAPI, limits: HttpLimits, pool: Executor, on_error: ErrorSink) -> None:
        self._api, self._limits, self._pool, self._on_error = api, limits, pool, on_error

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if isinstance(request.protocol, Connection):
            request.protocol.request_started()
        try:
            response = await handler(request)
        except HttpError as exc:
            response = error(exc.status, exc.message)
            if exc.close:
                response.force_close()
        except web.HTTPException as exc:
            response = self._http_exception(request, exc)
        except Exception as exc:  # noqa: BLE001 - one bad request never takes the daemon down
            self._on_error(request.path, exc)
            response = error(500, "internal error")
        if not request.content.is_eof():
            # A body left unread (refused before reading): aiohttp drains it for `lingering_time`, then closes,
            # rather than read its rest as the next request's head.
            response.force_close()
        response.headers["Server"] = "nbmon"
        return response

    def _http_exception(self, request: web.Request, exc: web.HTTPException) -> web.Response:
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        if exc.status == 404:
            message = f"no such endpoint: {redact_text(request.raw_path.split('?', 1)[0])[:200]}"
        elif isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = _WRONG_METHOD.get(request.path, f"{request.method} not allowed here; use {allowed}")
        else:
            message = exc.reason
        return error(exc.status, message, headers)

    # --- reading requests ---------------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes:
        limit = self._limits.max_body
        if request.content_length is not None and request.content_length > limit:
            raise HttpError(413, f"body over {limit} bytes", close=True)
        try:
            async with asyncio.timeout(self._limits.body_timeout):
                return await request.read()  # Content-Length or chunked; over client_max_size: 413
        except web.HTTPRequestEntityTooLarge:
            raise HttpError(413, f"body over {limit} bytes", close=True) from None
        except TimeoutError:
            raise HttpError(408, f"body not received within {self._limits.body_timeout:g} s", close=True) from None
        except (HttpProcessingError, web.RequestPayloadError) as exc:  # broken chunked framing, bad encoding
            raise HttpError(400, f"malformed body: {one_line(str(exc))}", close=True) from None
        except ConnectionError:  # the client hung up mid-body: nobody will read this answer
            raise HttpError(400, "the client went away", close=True) from None

    @staticmethod
    def _json(body: bytes) -> Any:
        nesting = json_nesting_error(body)
        if nesting is not None:
            raise HttpError(400, f"body is not JSON: {nesting}")
        try:
            # UTF-8 (RFC 8259), so the byte-level nesting check above is exact; a BOM is tolerated.
            return json.loads(body.decode("utf-8-sig") if body else "null")
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; deep: see above
            raise HttpError(400, f"body is not JSON: {one_line(str(exc))}") from None

    def _denied(self, request: web.Request) -> web.Response | None:
        token = self._api.admin_token
        if token is None:
            return error(403, "the admin API is disabled: set NBMON_ADMIN_TOKEN (or admin.token_file)")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return error(401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"})
        return None

    # --- read endpoints -----------------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = await self._call(self._api.metrics_exposition)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def readyz(self, request: web.Request) -> web.Response:
        def ready() -> tuple[bool, dict[str, Any]]:
            ok, reasons = self._api.ready()
            return ok, {"ready": ok, "reasons": reasons, "notes": self._api.readiness_notes()}

        ok, body = await self._call(ready)
        return json_response(200 if ok else 503, body)

    async def state(self, request: web.Request) -> web.Response:
        return await self._call(lambda: json_response(200, self._api.state()))

    async def ofrep(self, request: web.Request) -> web.Response:
        body = await self._body(request) if request.method == "POST" else None
        method, path, if_none_match = request.method, request.raw_path, request.headers.get("If-None-Match")
        api = self._api

        def evaluate() -> OfrepResponse | None:
            return dispatch(method, path, body, if_none_match, api.store.effective(), api.models)

        answer = evaluate() if len(body or b"") <= INLINE_OFREP_BODY else await self._call(evaluate)
        if answer is None:
            raise web.HTTPNotFound()
        return web.Response(status=answer.status, body=answer.content(), headers=answer.headers)

    # --- the admin API ------------------------------------------------------------------------------------

    async def set_override(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        payload = self._json(await self._body(request))
        if not isinstance(payload, dict):
            return error(400, 'body must be a JSON object like {"value": true, "reason": "...", "expires_in": "30m"}')
        try:
            return await self._call(lambda: json_response(200, self._api.set_override(payload)))
        except ValueError as exc:
            return error(400, str(exc))

    async def clear_override(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        return await self._call(lambda: json_response(200, self._api.clear_override()))

    async def alertmanager(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        payload = self._json(await self._body(request))
        try:
            return await self._call(lambda: json_response(200, self._api.alertmanager(payload)))
        except ValueError as exc:  # PayloadError
            return error(400, str(exc))
