"""Connections of the daemon's HTTP server: bounded in number, with a deadline and a size cap on request heads.

aiohttp closes idle keep-alive connections and bounds each header line and the number of headers, but has no
cap on connections, no deadline for a request head sent byte by byte (slowloris) and no cap on a head's total
size. `Connection` (aiohttp's request handler, subclassed) adds them: it watches each head's bytes up to its
blank line, before aiohttp's parser sees them. `ConnectionGuard` is the protocol factory: at the cap it closes
the least recently used idle connection to make room (a client reopens one cheaply), and answers 503 when every
connection is busy. Errors aiohttp would log as tracebacks (a client hanging up, a malformed request) are answered
in JSON and kept off stderr; anything else goes to `on_error`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

if TYPE_CHECKING:
    from monitor.daemon.http import HttpLimits

ErrorSink = Callable[[str, Exception], None]
CLIENT_ERRORS = (ConnectionError, HttpProcessingError, TimeoutError)  # the client's doing: never reported
_LOG = logging.getLogger("nbmon.daemon.http")  # aiohttp's debug messages only: errors are handled below


def canned(status: int, message: str, **extra: str) -> bytes:
    """A complete JSON response that closes the connection, for answers written below aiohttp."""
    body = json.dumps({"error": message}).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close", **extra}
    head = "".join(f"{name}: {value}\r\n" for name, value in {**headers, "Server": "nbmon"}.items())
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n{head}\r\n".encode() + body


def one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


class ConnectionGuard:
    """The protocol factory for `loop.create_server`: counts connections and keeps the idle ones in LRU order."""

    def __init__(self, server: web.Server, limits: HttpLimits, on_error: ErrorSink) -> None:
        self._server = server
        self.limits = limits
        self.on_error = on_error
        self.open: set[Connection] = set()
        self._idle: dict[Connection, None] = {}  # insertion order: least recently idle first
        self._refusals: set[_Refusal] = set()
        self.evicted = 0
        self.refused = 0

    def __call__(self) -> asyncio.Protocol:
        if len(self.open) >= self.limits.max_connections and not self._evict_idle():
            self.refused += 1
            return _Refusal(self._refusals)
        limits = self.limits
        connection = Connection(
            self,
            self._server,
            loop=asyncio.get_running_loop(),
            keepalive_timeout=limits.keepalive_timeout,
            logger=_LOG,
            access_log=None,  # no request logs: every flag poll would repeat one
            max_line_size=limits.max_line,
            max_field_size=limits.max_field,
            max_headers=limits.max_headers,
            lingering_time=2.0,  # reading what a refused body still sends, so the client sees the answer
        )
        self.open.add(connection)
        return connection

    def idle(self, connection: Connection) -> None:
        self._idle.pop(connection, None)
        self._idle[connection] = None

    def busy(self, connection: Connection) -> None:
        self._idle.pop(connection, None)

    def closed(self, connection: Connection) -> None:
        self.open.discard(connection)
        self._idle.pop(connection, None)

    def close_refusals(self) -> None:
        for refusal in list(self._refusals):
            refusal.close()

    def _evict_idle(self) -> bool:
        if not self._idle:
            return False
        oldest = next(iter(self._idle))
        self.closed(oldest)
        oldest.force_close()
        self.evicted += 1
        return True


class Connection(web.RequestHandler):
    """aiohttp's request handler plus a deadline and a size cap on request heads, and JSON for its own errors."""

    def __init__(self, guard: ConnectionGuard, manager: web.Server, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = guard
        self._head: int | None = 0  # bytes of the request head so far; None while a request is in flight
        self._tail = b""  # the last bytes seen, so a blank line split across reads is still found
        self._deadline: asyncio.TimerHandle | None = None

    # --- the head guard -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._guard.idle(self)

    def data_received(self, data: bytes) -> None:
        if self._head is not None and data and not self._watch_head(data):
            return
        super().data_received(data)

    def _watch_head(self, data: bytes) -> bool:
        """False when the connection was answered and closed (head too large)."""
        assert self._head is not None
        if self._head == 0 and not self._tail:
            self._guard.busy(self)  # a request has begun: not idle any more
        window = self._tail + data
        end = _head_end(window)
        if end < 0:
            size = self._head = self._head + len(data)
            self._tail = window[-3:]
            if self._deadline is None:
                self._deadline = self._loop.call_later(self._guard.limits.header_timeout, self._head_too_slow)
        else:
            size = self._head + end - len(self._tail)
            self._head_done()
        if size > self._guard.limits.max_head_bytes:
            self._reject(431, f"request head over {self._guard.limits.max_head_bytes} bytes")
            return False
        return True

    def _head_done(self) -> None:
        self._head, self._tail = None, b""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        if self._head is not None:
            self._reject(408, f"request head not received within {self._guard.limits.header_timeout:g} s")

    def _reject(self, status: int, message: str) -> None:
        self._head_done()
        if self.transport is not None:
            self.transport.write(canned(status, message))
        self.force_close()  # the transport sends what it holds, then closes

    def request_started(self) -> None:
        """Called by the application's middleware: a request is being handled."""
        self._head_done()
        self._guard.busy(self)

    def log_access(self, request: web.BaseRequest, response: web.StreamResponse, time: float | None) -> None:
        # aiohttp calls this once a response is written: the next bytes begin a new head. (With a body left
        # unread the connection closes after the answer: its rest is not read as a head.)
        if request.content.is_eof() and response.keep_alive and self.transport is not None:
            self._head = 0
            self._guard.idle(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_done()
        self._guard.closed(self)
        super().connection_lost(exc)

    # --- errors: JSON answers, no tracebacks on stderr ---------------------------------------------------

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self._report(exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has begun; it cannot become an error")
        text = "internal error" if status >= 500 else one_line(message or HTTPStatus(status).phrase)
        response = web.Response(
            status=status,
            body=json.dumps({"error": text}).encode(),
            headers={"Content-Type": "application/json", "Server": "nbmon"},
        )
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        self._report(error if isinstance(error, BaseException) else sys.exc_info()[1])

    def _report(self, error: BaseException | None) -> None:
        if isinstance(error, Exception) and not isinstance(error, CLIENT_ERRORS):
            self._guard.on_error("http", error)


class _Refusal(asyncio.Protocol):
    """Every connection is busy: answer 503 and half-close, so the client reads the answer rather than a reset."""

    def __init__(self, registry: set[_Refusal]) -> None:
        self._registry = registry
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        transport.write(canned(503, "too many connections: retry shortly", **{"Retry-After": "1"}))
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = asyncio.get_running_loop().call_later(1.0, self.close)  # a client that never closes

    def data_received(self, data: bytes) -> None:
        return  # the request is not read: it was refused

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._registry.discard(self)
        self._transport = None


def _head_end(window: bytes) -> int:
    """The index just past the blank line ending a request head, or -1 (CRLF, or the bare LF parsers accept)."""
    ends = [i + 4 for i in (window.find(b"\r\n\r\n"),) if i >= 0] + [i + 2 for i in (window.find(b"\n\n"),) if i >= 0]
    return min(ends, default=-1)
