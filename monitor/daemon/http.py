"""The daemon's HTTP API on one port: /metrics, /healthz, /readyz, /v1/state, OFREP, and the admin API.

Read endpoints need no credentials; the admin API (overrides, Alertmanager) needs the bearer token. Malformed
requests get a 4xx with a reason in JSON and change nothing. aiohttp serves it from one event loop in one
background thread (no thread per connection), with everything bounded: the listen backlog, the connections,
the time and size of a request head and body, and the threads that call into the daemon (see `HttpLimits`).
Routes are in `http_routes`, the connection guards in `http_conn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from monitor.daemon.http_conn import ConnectionGuard
from monitor.daemon.http_routes import build_app
from monitor.flagstate import Decision, Models

MAX_BODY = 1024 * 1024  # an Alertmanager group can carry many alerts


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Every bound of the server; tests shorten the timeouts."""

    backlog: int = 1024  # the kernel caps it at net.core.somaxconn; 5 (the old server) overflowed at 100 clients
    max_connections: int = 512  # an fd each, well under a container's 1024; beyond: close the oldest idle, else 503
    keepalive_timeout: float = 30.0  # idle keep-alive connections are closed after this
    header_timeout: float = 10.0  # a request head must be complete this long after its first byte (slowloris)
    body_timeout: float = 10.0  # and its body this long after the handler starts reading it
    max_head_bytes: int = 16 * 1024  # request line and headers together
    max_line: int = 8190  # the request line, and each header line
    max_field: int = 8190
    max_headers: int = 100  # as the standard library's server allowed
    max_body: int = MAX_BODY
    workers: int = 4  # DaemonAPI calls queue on one lock anyway; 4 keep /metrics and /readyz going meanwhile
    shutdown_timeout: float = 0.5  # for requests in flight at stop (aiohttp may wait it twice): SIGTERM has 5 s


class FlagDecisions(Protocol):
    def effective(self) -> Decision: ...  # lock-free: the current immutable state


class DaemonAPI(Protocol):
    """What the HTTP layer asks of the daemon; the daemon implements it (no HTTP there)."""

    admin_token: str | None

    @property
    def models(self) -> Models: ...
    @property
    def store(self) -> FlagDecisions: ...  # OFREP reads the decision here and evaluates it with ofrep.dispatch
    def metrics_exposition(self) -> tuple[bytes, str]: ...  # (body, content type)
    def ready(self) -> tuple[bool, list[str]]: ...
    def readiness_notes(self) -> list[str]: ...  # informational (e.g. quota polling disabled), never "not ready"
    def state(self) -> dict[str, Any]: ...
    def set_override(self, request: dict[str, Any]) -> dict[str, Any]: ...  # ValueError -> 400
    def clear_override(self) -> dict[str, Any]: ...
    def alertmanager(self, payload: Any) -> dict[str, Any]: ...  # PayloadError (a ValueError) -> 400


class AppServer:
    """An aiohttp application on its own event loop in a background thread, behind the connection guard;
    port 0 picks a free one. The daemon's API and the proxy are both served this way.

    The port is bound here, so a taken port fails at construction (OSError), as `nbmon run` expects.
    """

    def __init__(
        self,
        build: Callable[[], web.Application],
        host: str,
        port: int,
        on_error: Callable[[str, Exception], None],
        *,
        limits: HttpLimits | None = None,
        name: str = "nbmon-http",
        cancel_on_disconnect: bool = False,
    ) -> None:
        """`build` makes the application, on the server's loop (aiohttp binds some objects to the loop).
        `cancel_on_disconnect`: a handler is cancelled when its client goes (the proxy stops its upstream)."""
        self.limits = limits or HttpLimits()
        self._cancel_on_disconnect = cancel_on_disconnect
        self._build, self._on_error = build, on_error
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # names resolve to IPv4, as before
        self._sock = socket.create_server((host, port), family=family, backlog=self.limits.backlog)
        self._address: tuple[str, int] = self._sock.getsockname()[:2]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    @property
    def port(self) -> int:
        return self._address[1]

    @property
    def url(self) -> str:
        host = self._address[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._failed is not None:
            raise self._failed

    def stop(self) -> None:
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(Exception):  # a stop never fails; what is left is closed below
                done.result(timeout=self.limits.shutdown_timeout + 2)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        else:
            self._sock.close()
            self._loop.close()

    # --- the loop's thread --------------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._loop_error)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._failed = exc
            self._sock.close()
        self._ready.set()
        try:
            if self._failed is None:
                loop.run_forever()
        finally:
            self._close_loop()

    async def _setup(self) -> None:
        app = self._build()
        runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.limits.shutdown_timeout,
            handler_cancellation=self._cancel_on_disconnect,
        )
        await runner.setup()
        assert runner.server is not None
        self._runner, self.guard = runner, ConnectionGuard(runner.server, self.limits, self._on_error)
        # Our own listener, not a TCPSite: the guard is the protocol factory (connection cap, head guards).
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self.guard, sock=self._sock, backlog=self.limits.backlog)

    async def _shutdown(self) -> None:
        if self._listener is not None:
            self._listener.close()  # stop accepting first
        if self.guard is not None:
            self.guard.close_refusals()
        if self._runner is not None:
            await self._runner.cleanup()  # idle connections closed, requests in flight given shutdown_timeout

    def _close_loop(self) -> None:
        loop = self._loop
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*tasks, asyncio.sleep(0), return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio's default handler prints tracebacks on stderr; a client resetting a connection is not news.
        error = context.get("exception")
        if isinstance(error, ConnectionError | TimeoutError):
            return
        if not isinstance(error, Exception):
            error = RuntimeError(str(context.get("message", "asyncio error")))
        self._on_error("http", error)


class DaemonServer(AppServer):
    """The daemon's API (`DaemonAPI`), whose calls run on a small thread pool: they take the daemon's lock."""

    def __init__(
        self,
        api: DaemonAPI,
        host: str,
        port: int,
        on_error: Callable[[str, Exception], None],
        *,
        limits: HttpLimits | None = None,
    ) -> None:
        limits = limits or HttpLimits()
        self._pool = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="nbmon-http-api")
        super().__init__(lambda: build_app(api, limits, self._pool, on_error), host, port, on_error, limits=limits)

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
