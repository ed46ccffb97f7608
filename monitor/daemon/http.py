"""The daemon's HTTP API on one port: /metrics, /healthz, /readyz, /v1/state, OFREP, and the admin API.

Read endpoints need no credentials; the admin API (overrides) needs the bearer token. Malformed requests
get a 4xx with a reason and change nothing. Standard library server: the traffic is a sidecar's
(an app polling a flag every few seconds, Prometheus scraping), and it keeps the image small.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from monitor.logs import redact_text

MAX_BODY = 1024 * 1024  # an Alertmanager group can carry many alerts
OFREP_PREFIX = "/ofrep/v1/evaluate/flags"
Reply = tuple[int, dict[str, str], bytes]


class DaemonAPI(Protocol):
    """What the HTTP layer asks of the daemon; the daemon implements it (no HTTP there)."""

    admin_token: str | None

    def metrics_exposition(self) -> tuple[bytes, str]: ...  # (body, content type)
    def ready(self) -> tuple[bool, list[str]]: ...
    def readiness_notes(self) -> list[str]: ...  # informational (e.g. quota polling disabled), never "not ready"
    def state(self) -> dict[str, Any]: ...
    def ofrep_flag(self, key: str, body: bytes) -> Reply: ...
    def ofrep_bulk(self, body: bytes, if_none_match: str | None) -> Reply: ...
    def set_override(self, request: dict[str, Any]) -> dict[str, Any]: ...  # ValueError -> 400
    def clear_override(self) -> dict[str, Any]: ...
    def alertmanager(self, payload: Any) -> dict[str, Any]: ...  # PayloadError (a ValueError) -> 400


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(body, default=str).encode()


def _error(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


class _Handler(BaseHTTPRequestHandler):
    api: DaemonAPI
    on_error: Callable[[str, Exception], None]
    server_version = "nbmon"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return  # request logs would repeat every flag poll; metrics count what matters

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        try:
            reply = self._route("GET" if method == "HEAD" else method, self.path.split("?", 1)[0])
        except Exception as exc:  # noqa: BLE001 - one bad request never takes the daemon down
            self.on_error(self.path, exc)
            reply = _error(500, "internal error")
        status, headers, body = reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _body(self) -> bytes | None:
        length = self.headers.get("content-length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            return None
        if size < 0 or size > MAX_BODY:
            return None
        return self.rfile.read(size)

    def _route(self, method: str, path: str) -> Reply:
        api = self.api
        if path == "/metrics" and method == "GET":
            body, content_type = api.metrics_exposition()
            return 200, {"content-type": content_type}, body
        if path == "/healthz" and method == "GET":
            return json_reply(200, {"status": "ok"})
        if path == "/readyz" and method == "GET":
            ok, reasons = api.ready()
            return json_reply(200 if ok else 503, {"ready": ok, "reasons": reasons, "notes": api.readiness_notes()})
        if path == "/v1/state" and method == "GET":
            return json_reply(200, api.state())
        if path.startswith(OFREP_PREFIX):
            if method != "POST":
                return _error(405, "OFREP evaluation is POST")
            payload = self._body()
            if payload is None:
                return _error(413, f"body missing a valid content-length or over {MAX_BODY} bytes")
            if path in (OFREP_PREFIX, OFREP_PREFIX + "/"):
                return api.ofrep_bulk(payload, self.headers.get("if-none-match"))
            key = path[len(OFREP_PREFIX) + 1 :]
            return api.ofrep_flag(key, payload)
        if path == "/v1/override":
            return self._admin(method)
        if path == "/v1/alertmanager":
            return self._alertmanager(method)
        return _error(404, f"no such endpoint: {redact_text(path)[:200]}")

    def _check_token(self) -> Reply | None:
        token = self.api.admin_token
        if token is None:
            return _error(403, "the admin API is disabled: set NBMON_ADMIN_TOKEN (or admin.token_file)")
        sent = self.headers.get("authorization", "")
        scheme, _, credentials = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return json_reply(401, {"error": "a valid bearer token is required"}, {"www-authenticate": "Bearer"})
        return None

    def _alertmanager(self, method: str) -> Reply:
        if method != "POST":
            return _error(405, "Alertmanager posts its webhook: use POST")
        denied = self._check_token()
        if denied is not None:
            return denied
        body = self._body()
        if body is None:
            return _error(413, f"body missing a valid content-length or over {MAX_BODY} bytes")
        try:
            payload = json.loads(body or b"null")
        except ValueError as exc:
            return _error(400, f"body is not JSON: {exc}")
        try:
            return json_reply(200, self.api.alertmanager(payload))
        except ValueError as exc:
            return _error(400, str(exc))

    def _admin(self, method: str) -> Reply:
        denied = self._check_token()
        if denied is not None:
            return denied
        if method == "DELETE":
            return json_reply(200, self.api.clear_override())
        if method not in ("POST", "PUT"):
            return _error(405, "use POST to set an override, DELETE to clear it")
        body = self._body()
        if body is None:
            return _error(413, f"body missing a valid content-length or over {MAX_BODY} bytes")
        try:
            request = json.loads(body or b"null")
        except ValueError as exc:
            return _error(400, f"body is not JSON: {exc}")
        if not isinstance(request, dict):
            return _error(400, 'body must be a JSON object like {"value": true, "reason": "...", "expires_in": "30m"}')
        try:
            return json_reply(200, self.api.set_override(request))
        except ValueError as exc:
            return _error(400, str(exc))


class DaemonServer:
    """The HTTP server in a background thread; port 0 picks a free one."""

    def __init__(self, api: DaemonAPI, host: str, port: int, on_error: Callable[[str, Exception], None]) -> None:
        handler = type("Handler", (_Handler,), {"api": api, "on_error": staticmethod(on_error)})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nbmon-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self._httpd.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
