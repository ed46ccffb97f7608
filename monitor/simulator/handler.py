"""HTTP handling: routing, auth, body parsing, and writing JSON, SSE or a connection reset.

The Files API is only routed here; its wire rules are in files_api.py and its state in files.py.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Final
from urllib.parse import parse_qs, urlsplit

from monitor.simulator import errors
from monitor.simulator.engine import Simulator
from monitor.simulator.errors import ErrorReply
from monitor.simulator.files_api import FILES_PATH, UPLOAD_PATH, BodyStream, FilesApi, base_url
from monitor.simulator.outcomes import HTTP_200_OUTCOMES, SimOutcome, to_outcome
from monitor.simulator.responses import applied_tier, build_response, parse_request, sse_chunks, stream_error_chunks
from monitor.simulator.specs import parse_profile
from monitor.wire import SERVICE_TIER_HEADER

logger = logging.getLogger("monitor.simulator")

OVERRIDE_HEADER: Final = "x-nbmon-sim-outcome"
_GEMINI_PATH: Final = re.compile(r"^/(?:v1|v1beta|v1alpha)/(?:models|tunedModels)/([^/:]+):(\w+)$")
_VERTEX_PATH: Final = re.compile(
    r"^/(?:v1|v1beta1)/(?:projects/[^/]+/locations/[^/]+/)?publishers/google/models/([^/:]+):(\w+)$"
)
_METHODS: Final = ("generateContent", "streamGenerateContent")
_SECRET_QUERY: Final = re.compile(r"(?i)\b(key|access_token)=[^&\s]*")


@dataclass(frozen=True, slots=True)
class GenerateCall:
    """A recognised generate call."""

    model: str
    stream: bool
    vertex: bool


def match_generate(path: str) -> GenerateCall | None:
    for pattern, vertex in ((_GEMINI_PATH, False), (_VERTEX_PATH, True)):
        found = pattern.match(path)
        if found and found.group(2) in _METHODS:
            return GenerateCall(found.group(1), found.group(2) == "streamGenerateContent", vertex)
    return None


class SimHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its Simulator and can drop open keep-alive connections on stop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], simulator: Simulator, stopping: threading.Event) -> None:
        self.simulator, self.stopping = simulator, stopping
        self.files = FilesApi(simulator.files)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SimHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._connections_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    logger.debug("connection already closed")

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are routine here (resets, cancelled streams): keep stderr quiet.
        logger.debug("simulator connection error", exc_info=True)


class SimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nbmon-simulator"
    sys_version = ""
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms each.
    disable_nagle_algorithm = True
    server: SimHTTPServer
    _GET: ClassVar[dict[str, str]] = {
        "/healthz": "_health",
        "/_sim/profile": "_get_profile",
        "/_sim/stats": "_stats",
        "/_sim/models": "_get_models",
    }
    _PUT: ClassVar[dict[str, str]] = {"/_sim/profile": "_put_profile", "/_sim/models": "_put_models"}
    _POST: ClassVar[dict[str, str]] = {"/_sim/reset": "_reset"}

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    def log_message(self, format: str, *args: Any) -> None:
        # Never log an API key: the request line may carry ?key=...
        logger.debug("simulator: %s", _SECRET_QUERY.sub(r"\1=REDACTED", format % args))

    # -- dispatch ---------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._files():
            self._dispatch(self._GET)

    def do_PUT(self) -> None:
        if not self._files():
            self._dispatch(self._PUT)

    def do_POST(self) -> None:
        route = match_generate(urlsplit(self.path).path)
        if route is not None:
            self._generate(route)
        elif not self._files():
            self._dispatch(self._POST)

    def do_DELETE(self) -> None:
        if not self._files():
            self._dispatch({})

    def _dispatch(self, table: dict[str, str]) -> None:
        body = self._read_body()
        path = urlsplit(self.path).path
        if path in table:
            handler: Callable[[bytes], None] = getattr(self, table[path])
            handler(body)
        elif path in {**self._GET, **self._PUT, **self._POST} or match_generate(path):
            self._send_error(errors.method_not_allowed_reply(self.command, path))
        else:
            self._send_error(errors.not_found_reply(path))

    # -- control endpoints ----------------------------------------------------------------------------------

    def _health(self, _body: bytes) -> None:
        self._send_json(200, {"status": "ok"})

    def _get_profile(self, _body: bytes) -> None:
        self._send_json(200, self.sim.profile.spec())

    def _put_profile(self, body: bytes) -> None:
        try:
            spec = json.loads(body or b"null")
            if not isinstance(spec, str | dict):
                raise ValueError(f"profile: the body must be a JSON object or a profile string, got {spec!r}")
            profile = parse_profile(spec)
        except ValueError as exc:  # JSONDecodeError is a ValueError too
            self._send_json(400, errors.api_error(400, "INVALID_ARGUMENT", str(exc)))
            return
        self.sim.set_profile(profile)
        self._send_json(200, profile.spec())

    def _get_models(self, _body: bytes) -> None:
        self._send_json(200, {"reroutes": self.sim.reroutes})

    def _put_models(self, body: bytes) -> None:
        """{"reroutes": {"requested-id": "model-that-answers"}}: script silent reroutes (replaces the last set)."""
        try:
            spec = json.loads(body or b"null")
            reroutes = spec.get("reroutes") if isinstance(spec, dict) and set(spec) == {"reroutes"} else None
            if not isinstance(reroutes, dict) or not all(
                isinstance(k, str) and k and isinstance(v, str) and v for k, v in reroutes.items()
            ):
                raise ValueError('models: the body must be {"reroutes": {"<requested id>": "<answering id>", ...}}')
        except ValueError as exc:
            self._send_json(400, errors.api_error(400, "INVALID_ARGUMENT", str(exc)))
            return
        self.sim.set_reroutes(reroutes)
        self._send_json(200, {"reroutes": self.sim.reroutes})

    def _stats(self, _body: bytes) -> None:
        self._send_json(200, self.sim.stats())

    def _reset(self, _body: bytes) -> None:
        self.sim.reset()
        self._send_json(200, {"status": "reset"})

    # -- Files API --------------------------------------------------------------------------------------------

    def _files(self) -> bool:
        """Answer a Files API request; False when the path is not one. An upload chunk is streamed, not held."""
        parts = urlsplit(self.path)
        upload = UPLOAD_PATH.match(parts.path) if self.command == "POST" else None
        resource = FILES_PATH.match(parts.path)
        if upload is None and resource is None:
            return False
        headers = {name.lower(): value for name, value in self.headers.items()}
        body, query = BodyStream(self.rfile, headers), parse_qs(parts.query)
        authorized = not self.sim.config.require_key or self._has_credentials()
        if upload is not None:
            host, port = self.server.server_address[:2]
            base = base_url(self.headers.get("host"), f"http://{host!s}:{port}")
            reply = self.server.files.upload(upload.group(1), query, headers, body, base=base, authorized=authorized)
        else:
            version, file_id = resource.groups() if resource else ("v1beta", None)
            reply = self.server.files.resource(self.command, version, file_id, query, authorized=authorized)
        body.drain()
        self._send(reply.status, reply.content_type, reply.body, dict(reply.headers))
        return True

    # -- generateContent --------------------------------------------------------------------------------------

    def _has_credentials(self) -> bool:
        query = parse_qs(urlsplit(self.path).query)
        bearer = self.headers.get("authorization", "")
        return bool(
            self.headers.get("x-goog-api-key", "").strip()
            or any(v.strip() for v in query.get("key", []))
            or (bearer.lower().startswith("bearer ") and bearer[7:].strip())
        )

    def _generate(self, route: GenerateCall) -> None:
        body = self._read_body()
        sim = self.sim
        sim.admit(route.model, stream=route.stream, api="vertex" if route.vertex else "gemini")
        rejection: tuple[str, ErrorReply] | None = None
        served, retired = sim.route(route.model)
        if sim.config.require_key and not self._has_credentials():
            rejection = ("unauthenticated", errors.unauthenticated_reply(vertex=route.vertex))
        elif retired:
            method = "streamGenerateContent" if route.stream else "generateContent"
            rejection = ("retired", errors.model_not_found_reply(route.model, method, vertex=route.vertex))
        else:
            try:
                req = parse_request(
                    route.model, json.loads(body), model_tier=sim.models.line(served), model_version=served
                )
                sizes = sim.models.sizes(served)
                if req.image_size_given and sizes and req.image_size not in sizes:
                    raise ValueError(
                        f"* GenerateContentRequest.generation_config.image_config.image_size: {req.image_size} is not"
                        f" supported by {served} (supported: {', '.join(sizes)})"
                    )
            except json.JSONDecodeError as exc:
                rejection = ("malformed", errors.malformed_reply(f"{exc.msg} at line {exc.lineno} column {exc.colno}."))
            except ValueError as exc:
                rejection = ("invalid", errors.invalid_request_reply(str(exc)))
        forced: SimOutcome | None = None
        override = self.headers.get(OVERRIDE_HEADER)
        if rejection is None and override and sim.config.allow_override_header:
            try:
                forced = to_outcome(override.strip(), f"header {OVERRIDE_HEADER}")
            except ValueError as exc:
                rejection = ("bad_override", errors.invalid_request_reply(str(exc)))
        if rejection is not None:
            sim.reject(rejection[0], rejection[1].status)
            self._send_error(rejection[1])
            return
        over = sim.over_rate_limit(route.model)
        if over is not None:  # the rolling window is full: Google's per-minute 429, before any outcome is drawn
            sim.served(429)
            self._send_error(errors.rate_limit_reply(route.model, *over))
            return

        if forced is None and sim.config.require_thought_signatures and req.unsigned_model_images:
            forced = SimOutcome.MISSING_THOUGHT_SIGNATURE
        outcome = sim.decide(served, forced)  # the model that answers: a rerouted ID gets its successor's weather
        delay = sim.delay(served, outcome)
        if outcome is SimOutcome.RESET:
            self._wait(delay)
            sim.served("reset")
            self._reset_connection()
        elif outcome in HTTP_200_OUTCOMES or (outcome is SimOutcome.STREAM_ERROR and route.stream):
            media = sim.media(req)
            response = build_response(SimOutcome.OK if outcome is SimOutcome.STREAM_ERROR else outcome, req, media)
            if not route.stream:
                self._wait(delay)
                sim.served(200)
                # The applied tier: in this header on non-streaming responses only (usageMetadata has it always).
                self._send_json(200, response, {SERVICE_TIER_HEADER: applied_tier(outcome, req)})
                return
            chunks = stream_error_chunks(response) if outcome is SimOutcome.STREAM_ERROR else sse_chunks(response)
            sim.served(200)
            if parse_qs(urlsplit(self.path).query).get("alt") == ["sse"]:
                self._send_sse(chunks, delay)
            else:  # without alt=sse the API streams one JSON array
                self._wait(delay)
                self._send_json(200, chunks)
        else:
            reply = errors.error_reply(outcome, route.model, sim.config.retry_delay)
            self._wait(delay)
            sim.served(reply.status)
            self._send_error(reply)

    # -- wire helpers -----------------------------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        # Interruptible, so stop() does not wait for slow responses.
        if seconds > 0:
            self.server.stopping.wait(seconds)

    def _read_body(self) -> bytes:
        # Always drain the body, so the next request on a keep-alive connection starts at a request line.
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(parts)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, errors.JSON_TYPE, json.dumps(payload).encode(), headers)

    def _send_error(self, reply: ErrorReply) -> None:
        self._send(reply.status, reply.content_type, reply.body)

    def _send_sse(self, chunks: list[dict[str, Any]], delay: float) -> None:
        # Half the latency before the first event (time to first chunk), the rest spread between events.
        self._wait(delay / 2)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        gap = delay / 2 / max(1, len(chunks) - 1)
        for i, chunk in enumerate(chunks):
            if i:
                self._wait(gap)
            event = b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN: the client sees a reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
