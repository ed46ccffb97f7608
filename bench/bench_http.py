"""The daemon's HTTP server: the old standard-library one against the aiohttp one, in the same run.

Each server runs in its own process (`--serve old|new`) over a real Daemon; the load comes from this process,
an asyncio client on 127.0.0.1 (keep-alive when the server allows it: the old one answers HTTP/1.0 and closes).
Measured: p50/p99 latency of GET /v1/state and POST OFREP flag at concurrency 1, 16 and 100; a burst of 100
new connections at once (the listen backlog); threads and RSS with 1,000 idle connections, and a request's
latency meanwhile. Prints a table, old and new side by side with their ratio. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
STATE = b"GET /v1/state HTTP/1.1\r\nHost: nbmon\r\n\r\n"
OFREP_BODY = b'{"context": {"targetingKey": "app-1"}}'
OFREP = (
    b"POST /ofrep/v1/evaluate/flags/degraded-mode HTTP/1.1\r\nHost: nbmon\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(OFREP_BODY), OFREP_BODY)
)
CONCURRENCY = (1, 16, 100)
TIMEOUT = 10.0  # a request not answered by then counts as failed
SECONDS = 4.0  # per level: the old server's SYN retries (1 s, 3 s, ...) would make a fixed count take minutes


# --- the old server, as it was before the move to aiohttp (kept here, not in monitor/) ------------------------

MAX_BODY = 1024 * 1024
OFREP_PREFIX = "/ofrep/v1/evaluate/flags"
Reply = tuple[int, dict[str, str], bytes]


def _json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(body, default=str).encode()


def _error(status: int, message: str) -> Reply:
    return _json_reply(status, {"error": message})


class _OldHandler(BaseHTTPRequestHandler):
    api: Any
    on_error: Callable[[str, Exception], None]
    server_version = "nbmon"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        return

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
        except Exception as exc:  # noqa: BLE001
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
        from monitor.flagstate import evaluate_bulk, evaluate_flag

        api = self.api
        if path == "/metrics" and method == "GET":
            body, content_type = api.metrics_exposition()
            return 200, {"content-type": content_type}, body
        if path == "/healthz" and method == "GET":
            return _json_reply(200, {"status": "ok"})
        if path == "/readyz" and method == "GET":
            ok, reasons = api.ready()
            return _json_reply(200 if ok else 503, {"ready": ok, "reasons": reasons, "notes": api.readiness_notes()})
        if path == "/v1/state" and method == "GET":
            return _json_reply(200, api.state())
        if path.startswith(OFREP_PREFIX):
            if method != "POST":
                return _error(405, "OFREP evaluation is POST")
            payload = self._body()
            if payload is None:
                return _error(413, f"body missing a valid content-length or over {MAX_BODY} bytes")
            # As Daemon.ofrep_bulk / ofrep_flag did: the store's decision, evaluated by the pure handlers.
            if path in (OFREP_PREFIX, OFREP_PREFIX + "/"):
                response = evaluate_bulk(payload, self.headers.get("if-none-match"), api.store.effective(), api.models)
            else:
                key = path[len(OFREP_PREFIX) + 1 :]
                response = evaluate_flag(key, payload, api.store.effective(), api.models)
            return response.status, response.headers, response.content()
        if path == "/v1/override":
            return self._admin(method)
        return _error(404, "no such endpoint")

    def _admin(self, method: str) -> Reply:
        token = self.api.admin_token
        if token is None:
            return _error(403, "the admin API is disabled")
        scheme, _, credentials = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(), token.encode()):
            return _json_reply(401, {"error": "a valid bearer token is required"}, {"www-authenticate": "Bearer"})
        if method == "DELETE":
            return _json_reply(200, self.api.clear_override())
        body = self._body()
        if body is None:
            return _error(413, "body too large")
        return _json_reply(200, self.api.set_override(json.loads(body or b"null")))


class OldDaemonServer:
    """The old DaemonServer: ThreadingHTTPServer (a thread per connection, backlog 5, HTTP/1.0)."""

    def __init__(self, api: Any, host: str, port: int, on_error: Callable[[str, Exception], None]) -> None:
        handler = type("Handler", (_OldHandler,), {"api": api, "on_error": staticmethod(on_error)})
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="nbmon-http", daemon=True)
        self.port = int(self._httpd.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# --- a server process ------------------------------------------------------------------------------------------


def serve(kind: str) -> int:
    """Serve a real Daemon with the old or the new server; print the port; stop at EOF on stdin."""
    from prometheus_client import CollectorRegistry

    from monitor.daemon.app import Daemon
    from monitor.daemon.config import DaemonConfig
    from monitor.daemon.http import DaemonServer
    from monitor.signals import Reading

    class QuietSource:
        name = "quiet"

        def read(self) -> Reading:
            return Reading(at=0.0, values={})

    with tempfile.TemporaryDirectory() as tmp:
        config = DaemonConfig(state_path=Path(tmp) / "state.json", admin_token="bench-admin-token-0123456789")
        daemon = Daemon(config, source=QuietSource(), registry=CollectorRegistry())
        factory = OldDaemonServer if kind == "old" else DaemonServer
        server = factory(daemon, HOST, 0, lambda path, exc: print(f"error {exc!r}", file=sys.stderr))
        server.start()
        print(server.port, flush=True)
        sys.stdin.read()
        server.stop()
    return 0


class ServerProcess:
    def __init__(self, kind: str) -> None:
        self.stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 - read back in close()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def status(self) -> tuple[int, float]:
        """(threads, RSS in MiB) of the server process, from /proc."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024

    def close(self) -> int:
        """Stop the server; the number of lines it wrote to stderr (tracebacks, for the old one)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        started = time.perf_counter()
        self.proc.wait(timeout=60)
        print(f"server stopped in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        self.proc.stdout.close()
        self.stderr.seek(0)
        lines = len(self.stderr.read().splitlines())
        self.stderr.close()
        return lines


# --- the load ------------------------------------------------------------------------------------------------


async def exchange(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes) -> bool:
    """One request and its answer; True when the server keeps the connection open."""
    reader, writer = connection
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").lower().split("\r\n")
    if lines[0].split()[1] != "200":
        raise RuntimeError(f"unexpected answer {lines[0]!r}")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.startswith("content-length:"))
    await reader.readexactly(length)
    return lines[0].startswith("http/1.1") and "connection: close" not in lines


async def load(port: int, request: bytes, concurrency: int, seconds: float) -> tuple[list[float], int]:
    """Latencies of the requests made in `seconds`, each retried on a new connection until answered (as a client
    would; a reset or a 10 s wait is one failure), and the number of failures."""
    latencies: list[float] = []
    failures = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal failures
        connection = None
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            answered = False
            while not answered:
                try:
                    if connection is None:
                        connection = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)
                    kept = await asyncio.wait_for(exchange(connection, request), TIMEOUT)
                    answered = True
                except (OSError, asyncio.IncompleteReadError, TimeoutError):
                    failures += 1
                    kept = False
                if not kept and connection is not None:
                    connection[1].close()
                    connection = None
            latencies.append(time.perf_counter() - started)
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures


async def burst(port: int, clients: int = 100) -> tuple[list[float], int]:
    """`clients` new connections at once, one request each: what the listen backlog decides."""

    async def one() -> float | None:
        started = time.perf_counter()
        try:
            connection = await asyncio.wait_for(asyncio.open_connection(HOST, port), TIMEOUT)
            await asyncio.wait_for(exchange(connection, STATE), TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            return None
        connection[1].close()
        return time.perf_counter() - started

    answers = await asyncio.gather(*(one() for _ in range(clients)))
    latencies = [answer for answer in answers if answer is not None]
    return latencies, clients - len(latencies)


async def idle(server: ServerProcess, count: int = 1000) -> dict[str, float]:
    """With `count` idle connections (connected, nothing sent yet): threads and RSS added, how many the server
    holds open, and one more request's latency meanwhile."""
    threads, rss = server.status()
    started = time.perf_counter()
    connections = [await asyncio.open_connection(HOST, server.port) for _ in range(count)]
    opening = time.perf_counter() - started
    await asyncio.sleep(1.0)
    with_threads, with_rss = server.status()
    started = time.perf_counter()
    request = await asyncio.open_connection(HOST, server.port)
    await asyncio.wait_for(exchange(request, STATE), 30)
    latency = time.perf_counter() - started
    request[1].close()
    held = sum(not reader.at_eof() and reader.exception() is None for reader, _ in connections)
    for _, writer in connections:
        writer.close()
    await asyncio.sleep(0.5)
    return {"threads": with_threads - threads, "rss": with_rss - rss, "latency": latency, "held": held, "open": opening}


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


async def measure(kind: str) -> dict[str, float]:
    server = ServerProcess(kind)
    figures: dict[str, float] = {}
    try:
        await load(server.port, STATE, 4, 0.5)  # warm up both routes
        await load(server.port, OFREP, 4, 0.5)
        for name, request in (("GET /v1/state", STATE), ("POST OFREP flag", OFREP)):
            for concurrency in CONCURRENCY:
                started = time.perf_counter()
                latencies, failures = await load(server.port, request, concurrency, SECONDS)
                elapsed = time.perf_counter() - started
                figures[f"{name} c={concurrency} p50 ms"] = quantile(latencies, 0.50) * 1e3
                figures[f"{name} c={concurrency} p99 ms"] = quantile(latencies, 0.99) * 1e3
                figures[f"{name} c={concurrency} requests/s"] = len(latencies) / elapsed
                figures[f"{name} c={concurrency} failures"] = failures
                print(f"{kind}: {name} c={concurrency}: {elapsed:.1f} s, {failures} failures", file=sys.stderr)
        started = time.perf_counter()
        latencies, failures = await burst(server.port)
        figures["burst of 100 new connections p90 ms"] = quantile(latencies, 0.90) * 1e3
        figures["burst of 100 new connections max ms"] = max(latencies) * 1e3
        figures["burst of 100 new connections failed"] = failures
        print(f"{kind}: burst {time.perf_counter() - started:.1f} s", file=sys.stderr)
        held = await idle(server)
        figures["1,000 idle connections: opening them s"] = held["open"]
        figures["1,000 idle connections: held open"] = held["held"]
        figures["1,000 idle connections: threads added"] = held["threads"]
        figures["1,000 idle connections: RSS added MiB"] = held["rss"]
        figures["1,000 idle connections: one request ms"] = held["latency"] * 1e3
        print(f"{kind}: idle connections", file=sys.stderr)
    finally:
        figures["lines the server wrote to stderr"] = server.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=("old", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    started = time.perf_counter()
    old = asyncio.run(measure("old"))
    print(f"old: {time.perf_counter() - started:.0f} s in all", file=sys.stderr)
    new = asyncio.run(measure("new"))
    width = max(map(len, old))
    print(f"{'':{width}}  {'old (stdlib)':>13}  {'new (aiohttp)':>13}  {'gain':>7}")
    for key, before in old.items():
        after = new[key]
        better, worse = (after, before) if key.endswith("requests/s") else (before, after)
        comparable = worse > 0 and better > 0 and not key.endswith("held open")  # held: capped by design
        gain = f"{better / worse:6.1f}x" if comparable else f"{'-':>7}"
        print(f"{key:{width}}  {before:13.2f}  {after:13.2f}  {gain}")
    print(
        "gain: how many times better the new server is (latency, failures, threads, RSS: old / new; rates: new / old)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
