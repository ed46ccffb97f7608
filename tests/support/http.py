"""One loopback HTTP server for the tests' fakes (Prometheus, OFREP, /metrics targets, webhook receivers, ...).

Each fake is a function from a `Request` to a `Reply`; `LoopbackServer` serves it with the standard library's
ThreadingHTTPServer (HTTP/1.0, a thread per request) on a free 127.0.0.1 port until it is closed.

    with LoopbackServer(lambda request: Reply.json({"status": "success"})) as server:
        httpx.get(server.url + "/api/v1/query")
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """One request as the server read it."""

    method: str
    path: str  # as sent: the query string included
    headers: Message[str, str]  # case-insensitive
    body: bytes

    @property
    def route(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def form(self) -> dict[str, list[str]]:
        """An application/x-www-form-urlencoded body."""
        return parse_qs(self.body.decode())

    def json(self) -> Any:
        """The body as JSON; an empty body is null."""
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Reply:
    """What the server answers. Content-Length is sent unless `send_length` is false (then the close ends it)."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    send_length: bool = True

    @classmethod
    def json(cls, document: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(document).encode(), "application/json")


Respond = Callable[[Request], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        super().__init__((HOST, 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.respond(Request(self.command, self.path, self.headers, body))
        try:
            self.send_response(reply.status)
            if reply.content_type is not None:
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.send_length:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)
        except OSError:  # the client gave up (the timeout tests)
            pass

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_CONNECT = _any

    def log_message(self, format: str, *args: Any) -> None:
        return


class LoopbackServer:
    """`respond` served over real HTTP on a free loopback port, from a daemon thread; a context manager."""

    def __init__(self, respond: Respond, *, poll_interval: float = 0.02) -> None:
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default) in every teardown.
        self._httpd = _Server(respond)
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(poll_interval,), name="loopback-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def free_port() -> int:
    """A loopback port nothing listens on (just now): for a process to bind, or a URL where the server is down."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])
