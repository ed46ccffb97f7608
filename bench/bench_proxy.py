"""`nbmon proxy` against a direct call, LiteLLM's Gemini pass-through and three bare pass-throughs, in one run.

Every process is a child of this one except the load, which this process makes (aiohttp client, keep-alive):
- the upstream: an aiohttp server (`--serve upstream`) answering precomputed bodies: `generateContent` with a
  ~1.5 MB Pro response (`_common.response_body`: thought image + final image, base64), and
  `streamGenerateContent?alt=sse` with the same parts as six SSE events (~1.5 MB), or ~10 MB of them (`&bench=big`);
- `nbmon proxy --upstream` (telemetry on: metrics, one JSON log line per request; no OTEL_* variable, so no span is
  exported, as in a default deployment);
- LiteLLM's `/gemini/{endpoint}` pass-through (`litellm --config`, second virtualenv bench/.venv-litellm): its
  upstream is GEMINI_API_BASE, its key to the upstream GEMINI_API_KEY (it replaces the client's), and the client
  authenticates with LITELLM_MASTER_KEY (it refuses to start without one); no database;
- the stack baseline, no telemetry: the same forwarding written on aiohttp server + client (`--serve aiohttp`) on
  the standard asyncio loop, as nbmon runs it, and on uvloop; and on uvicorn (httptools, uvloop) + Starlette + httpx
  (`--serve asgi`), LiteLLM's stack. The uvloop and uvicorn ones run on the LiteLLM virtualenv's Python, which has
  them (and the same aiohttp).

Measured, per payload (JSON, SSE) and concurrency (1, 16, 64): latency of each request from sending it to its last
byte, p50 and p99, direct and through each pass-through; "added" is a pass-through's percentile minus the direct
one's. Time to first body byte for the SSE payload. Each cell is cut into rounds and the rounds of the targets are
interleaved (order rotated), so a slow moment of this shared machine hits all alike; each worker's first request
of a round is a warm-up, not timed. CPU: the pass-through process's utime + stime (/proc/PID/stat, its threads and
children included) over the rounds it served, per request; requests per second per core is its inverse. RSS:
/proc/PID/status VmRSS of each pass-through, sampled every 50 ms while 64 streams of ~10 MB are in flight at once,
read slowly by the client (64 KiB per 50 ms each), so a pass-through that buffers shows it; the upstream sends at
full speed. Not a test: `make bench` runs it; `--quick` for a short run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
PATH = "/v1beta/models/{model}:{method}"
CONCURRENCY = (1, 16, 64)
BIG_STREAMS = 64
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
KEEPALIVE_S = 30  # every server keeps an idle connection this long (nbmon's own default); the client drops at 25 s
REQUEST = json.dumps(
    {
        "contents": [{"role": "user", "parts": [{"text": "a banana on a marble table, studio light"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"imageSize": "2K"}},
    }
).encode()
# RFC 9110 hop-by-hop fields, and host: what a pass-through does not forward (as monitor.proxy.routes does).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
)
TARGETS = {
    "nbmon": "nbmon proxy",
    "litellm": "LiteLLM /gemini",
    "aiohttp": "bare aiohttp server + client (asyncio loop, as nbmon runs)",
    "aiouv": "the same on uvloop",
    "asgi": "bare uvicorn (httptools) + Starlette + httpx",
}
TARGET_P50_C1_MS = 1.0
TARGET_P99_C64_MS = 10.0
TARGET_RSS_MB = 100.0


# --- the bodies ------------------------------------------------------------------------------------------------


def sse_events(image_bytes: int) -> list[bytes]:
    """The parts of `_common.response_body(image_bytes)` as Gemini streams them: one SSE event per part, a text
    event between the images, the finish reason and usage in the last event (CRLF framing, as Google sends)."""
    from _common import response_body

    document = json.loads(response_body(image_bytes))
    parts = document["candidates"][0]["content"]["parts"]
    meta = {"modelVersion": document["modelVersion"], "responseId": document["responseId"]}

    def event(content: list[dict[str, Any]], last: bool = False) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": content}, "index": 0}
        chunk: dict[str, Any] = {"candidates": [candidate], **meta}
        if last:
            candidate["finishReason"] = "STOP"
            chunk["usageMetadata"] = document["usageMetadata"]
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\r\n\r\n"

    return [
        event([parts[0]]),
        event([parts[1]]),
        event([{"text": "placing the light", "thought": True}]),
        event([parts[2]]),
        event([{"text": "Here is your banana."}]),
        event([{"text": ""}], last=True),
    ]


@dataclass(frozen=True)
class Payload:
    name: str
    method: str
    query: str
    body: bytes  # what the upstream sends, and so what every client must receive

    def path(self, model: str) -> str:
        path = PATH.format(model=model, method=self.method)
        return f"{path}?{self.query}" if self.query else path


def payloads() -> dict[str, Payload]:
    from _common import response_body

    return {
        "json": Payload("json", "generateContent", "", response_body(900_000)),
        "sse": Payload("sse", "streamGenerateContent", "alt=sse", b"".join(sse_events(900_000))),
        "big": Payload("big", "streamGenerateContent", "alt=sse&bench=big", b"".join(sse_events(6_000_000))),
    }


# --- the servers (child processes) ----------------------------------------------------------------------------


def serve_upstream() -> int:
    """A fast stand-in for Google: precomputed bodies, SSE written event by event."""
    from aiohttp import web

    json_body = payloads()["json"].body
    events = {"sse": sse_events(900_000), "big": sse_events(6_000_000)}

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if request.path.endswith(":generateContent"):
            return web.Response(body=json_body, content_type="application/json", charset="UTF-8")
        if request.path.endswith(":streamGenerateContent"):
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for event in events["big" if request.query.get("bench") == "big" else "sse"]:
                await response.write(event)
            await response.write_eof()
            return response
        return web.Response(status=404)

    return _serve_aiohttp(handle)


def _serve_aiohttp(
    handle: Callable[[Any], Any], on_startup: Callable[[Any], Any] | None = None, loop: str = "asyncio"
) -> int:
    from aiohttp import web

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        if on_startup is not None:
            app.on_startup.append(on_startup)
        runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_S, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0, backlog=1024)
        await site.start()
        print(f"port {runner.addresses[0][1]}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())
    return 0


def serve_bare_aiohttp(upstream: str, loop: str) -> int:
    """The stack baseline on aiohttp: nbmon's forwarding (same client session settings) without its telemetry."""
    import aiohttp
    from aiohttp import web
    from multidict import CIMultiDict

    sessions: list[aiohttp.ClientSession] = []

    async def startup(_app: web.Application) -> None:
        sessions.append(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1024),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=300),
            )
        )

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP)
        async with sessions[0].request(
            request.method, upstream + request.raw_path, headers=headers, data=body, allow_redirects=False
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for name, value in answer.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value)
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    return _serve_aiohttp(handle, startup, loop)


def serve_asgi(upstream: str, loop: str) -> int:
    """The stack baseline on uvicorn + Starlette + httpx (LiteLLM's stack), no telemetry."""
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    client = httpx.AsyncClient(
        base_url=upstream,
        limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024),
        timeout=httpx.Timeout(300.0, connect=10.0),
    )

    async def forward(request: Request) -> Response:
        body = await request.body()
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP]
        url = httpx.URL(path=request.url.path, query=request.url.query.encode())
        answer = await client.send(
            client.build_request(request.method, url, headers=headers, content=body), stream=True
        )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code, headers=kept, background=BackgroundTask(answer.aclose)
        )

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{tail:path}", forward, methods=methods)])
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(1024)
    print(f"port {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(
        app,
        loop=loop,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEPALIVE_S,
        lifespan="off",
        backlog=1024,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


# --- child processes, seen from here ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


class Child:
    """A server process of the benchmark: its port, its CPU time and RSS (with its own children). Its output goes
    to a file, as a container runtime would take it: a pipe drained by this busy process could fill and block the
    server's log writes, which would time this benchmark, not the server."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, port: int | None = None):
        self.name = name
        self.output = Path(tempfile.gettempdir()) / f"nbmon-bench-proxy-{os.getpid()}-{name}.log"
        with self.output.open("w") as sink:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the benchmark, which stops its children
            )
        self.port = port or 0
        self.pids = [self.proc.pid]

    def lines(self) -> list[str]:
        return self.output.read_text(errors="replace").splitlines()

    def wait_port(self, timeout: float) -> int:
        """The port the server says it listens on: `port N` (this file's servers) or nbmon's `listening on URL`."""
        deadline = time.monotonic() + timeout
        while not self.port and time.monotonic() < deadline and self.proc.poll() is None:
            for line in self.lines()[:20]:
                if line.startswith("port "):
                    self.port = int(line.split()[1])
                elif "listening on http://" in line:
                    self.port = int(line.split("listening on http://", 1)[1].split()[0].rsplit(":", 1)[1])
            time.sleep(0.05)
        if not self.port or self.proc.poll() is not None:
            self.fail("did not start")
        return self.port

    def fail(self, why: str) -> None:
        tail = "\n".join(self.lines()[-40:])
        raise SystemExit(f"{self.name} {why} (exit {self.proc.poll()}); its last output:\n{tail}")

    def refresh_pids(self) -> None:
        self.pids = descendants(self.proc.pid)

    def cpu_seconds(self) -> float:
        """utime + stime of the process and its children known at the last refresh_pids(), all threads."""
        total = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / TICK

    def rss_bytes(self) -> int:
        total = 0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def remove_output(self) -> None:
        self.output.unlink(missing_ok=True)


@dataclass
class Target:
    name: str
    label: str
    base: str  # the URL the client's paths are appended to
    key: str  # sent as x-goog-api-key
    child: Child | None  # None: the direct call (the upstream is no pass-through)
    rss_start: int = 0  # once ready, before any load
    cpu_cells: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict)


async def wait_ready(url: str, seconds: float, child: Child) -> None:
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                child.fail("exited while starting")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.25)
    child.fail(f"was not ready at {url} in {seconds:.0f} s")


def child_env(**extra: str) -> dict[str, str]:
    """The environment, minus OTEL_* (no span export anywhere) and proxy variables (loopback only)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.update(extra)
    return env


# --- the load -----------------------------------------------------------------------------------------------------


@dataclass
class Timing:
    total: float
    first_byte: float


async def one_request(session: Any, target: Target, payload: Payload, model: str) -> Timing:
    started = time.perf_counter()
    first = 0.0
    size = 0
    headers = {"x-goog-api-key": target.key, "content-type": "application/json"}
    async with session.post(target.base + payload.path(model), data=REQUEST, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status}: {(await response.read())[:300]!r}")
        async for chunk in response.content.iter_any():
            if not first:
                first = time.perf_counter()
            size += len(chunk)
    ended = time.perf_counter()
    if size != len(payload.body):
        raise RuntimeError(f"{target.name}: {size} bytes received, {len(payload.body)} sent by the upstream")
    return Timing(ended - started, first - started)


async def round_of(
    session: Any, target: Target, payload: Payload, model: str, concurrency: int, count: int
) -> list[Timing]:
    """`count` timed requests by `concurrency` workers; each worker's first request is an untimed warm-up."""
    import aiohttp

    timings: list[Timing] = []
    left = count

    async def worker() -> None:
        nonlocal left
        for attempt in range(3):  # a keep-alive connection the server closed meanwhile: reconnect, untimed
            try:
                await one_request(session, target, payload, model)
                break
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise
        while left > 0:
            left -= 1
            timings.append(await one_request(session, target, payload, model))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Cell:
    totals: dict[str, list[float]] = field(default_factory=dict)
    first_bytes: dict[str, list[float]] = field(default_factory=dict)
    served: dict[str, tuple[int, float]] = field(default_factory=dict)  # requests (warm-ups too), wall seconds
    seconds: float = 0.0

    def rate(self, name: str) -> float:
        """Requests per second through `name` while its rounds ran (all the load there was then)."""
        done, wall = self.served[name]
        return done / wall if wall else 0.0


async def measure_cell(
    sessions: dict[str, Any],
    targets: list[Target],
    payload: Payload,
    model: str,
    concurrency: int,
    requests: int,
    rounds: int,
) -> Cell:
    cell = Cell({t.name: [] for t in targets}, {t.name: [] for t in targets})
    per_round = max(requests // rounds, 1)
    started = time.perf_counter()
    for index in range(rounds):
        shift = index % len(targets)
        for target in targets[shift:] + targets[:shift]:  # the order rotates: no target always goes first
            cpu = target.child.cpu_seconds() if target.child is not None else 0.0
            began = time.perf_counter()
            timings = await round_of(sessions[target.name], target, payload, model, concurrency, per_round)
            done, wall = cell.served.get(target.name, (0, 0.0))
            cell.served[target.name] = (done + per_round + concurrency, wall + time.perf_counter() - began)
            if target.child is not None:
                spent = target.child.cpu_seconds() - cpu
                done, total = target.cpu_cells.get((payload.name, concurrency), (0, 0.0))
                target.cpu_cells[(payload.name, concurrency)] = (done + per_round + concurrency, total + spent)
            cell.totals[target.name].extend(t.total for t in timings)
            cell.first_bytes[target.name].extend(t.first_byte for t in timings)
    cell.seconds = time.perf_counter() - started
    return cell


@dataclass
class Memory:
    before: int
    peak: int
    after: int
    overlap: int  # most streams in flight at one moment (64: all of them at once)
    seconds: float


async def big_streams(target: Target, payload: Payload, model: str, read_bytes: int, pause_s: float) -> Memory:
    """BIG_STREAMS slow readers at once through `target`, its RSS sampled meanwhile."""
    import aiohttp

    assert target.child is not None
    child = target.child
    child.refresh_pids()
    before = child.rss_bytes()
    peak = before
    in_flight = overlap = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, child.rss_bytes())
            await asyncio.sleep(0.05)

    async def reader(session: aiohttp.ClientSession) -> None:
        nonlocal in_flight, overlap
        headers = {"x-goog-api-key": target.key, "content-type": "application/json"}
        size = 0
        async with session.post(target.base + payload.path(model), data=REQUEST, headers=headers) as response:
            if response.status != 200:
                raise RuntimeError(f"{target.name}: HTTP {response.status}")
            in_flight += 1
            overlap = max(overlap, in_flight)
            while chunk := await response.content.read(read_bytes):
                size += len(chunk)
                await asyncio.sleep(pause_s)
            in_flight -= 1
        if size != len(payload.body):
            raise RuntimeError(f"{target.name}: {size} bytes of a big stream, {len(payload.body)} sent")

    connector = aiohttp.TCPConnector(limit=BIG_STREAMS)
    timeout = aiohttp.ClientTimeout(total=600)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(reader(session) for _ in range(BIG_STREAMS)))
        done.set()
        await sampler
    seconds = time.perf_counter() - started
    await asyncio.sleep(2.0)
    return Memory(before, peak, child.rss_bytes(), overlap, seconds)


async def identical(session: Any, target: Target, payload: Payload, model: str) -> str:
    """Whether the client gets the upstream's bytes, exactly."""
    headers = {"x-goog-api-key": target.key, "content-type": "application/json"}
    async with session.post(target.base + payload.path(model), data=REQUEST, headers=headers) as response:
        body = await response.read()
        status = response.status
    if status != 200:
        return f"HTTP {status}"
    if hashlib.sha256(body).digest() == hashlib.sha256(payload.body).digest():
        return "identical"
    return f"DIFFERENT ({len(body)} bytes, upstream sent {len(payload.body)})"


# --- the run ------------------------------------------------------------------------------------------------------


def start_targets(args: argparse.Namespace, upstream: str) -> list[Target]:
    """Start every pass-through asked for (those whose virtualenv is missing are skipped, with a note)."""
    targets = [Target("direct", "direct", upstream, "bench-client-key", None)]
    litellm_python = Path(args.litellm_venv) / "bin" / "python"
    wanted = [name for name in TARGETS if name not in args.skip]
    for name in wanted:
        if name in ("litellm", "asgi", "aiouv") and not litellm_python.exists():
            print(f"note: {litellm_python} missing (make bench builds it): {TARGETS[name]} skipped", file=sys.stderr)
            continue
        if name == "nbmon":
            argv = [str(Path(sys.executable).parent / "nbmon"), "proxy", "--port", "0", "--upstream", upstream]
            child = Child(name, [*argv, "--log-format", "json"], env=child_env())
            port = child.wait_port(60)
            targets.append(Target(name, TARGETS[name], f"http://{HOST}:{port}", "bench-client-key", child))
        elif name == "litellm":
            master_key = "sk-" + secrets.token_hex(32)
            port = free_port()
            env = child_env(
                GEMINI_API_BASE=upstream,  # where /gemini/{endpoint} forwards (default Google's)
                GEMINI_API_KEY="bench-upstream-key",  # the key it puts on the upstream request (?key=)
                LITELLM_MASTER_KEY=master_key,  # required: it refuses to start unauthenticated
                LITELLM_OFFLINE_MODE="true",  # no fetch of its model price map from the internet
                LITELLM_LOCAL_MODEL_COST_MAP="true",
                LITELLM_TELEMETRY_DISABLED="true",
            )
            config = Path(args.workdir) / "litellm.yaml"
            config.write_text("model_list: []\ngeneral_settings: {}\n")
            argv = [str(Path(args.litellm_venv) / "bin" / "litellm"), "--config", str(config)]
            argv += ["--host", HOST, "--port", str(port), "--num_workers", "1", "--keepalive_timeout", str(KEEPALIVE_S)]
            child = Child(name, argv, env=env, port=port)
            targets.append(Target(name, TARGETS[name], f"http://{HOST}:{port}/gemini", master_key, child))
        else:
            # The bare pass-throughs; uvloop and uvicorn are in LiteLLM's virtualenv (with the same aiohttp).
            argv = {
                "aiohttp": [sys.executable, __file__, "--serve", "aiohttp"],
                "aiouv": [str(litellm_python), __file__, "--serve", "aiohttp", "--loop", "uvloop"],
                "asgi": [str(litellm_python), __file__, "--serve", "asgi", "--loop", args.asgi_loop],
            }[name]
            child = Child(name, [*argv, "--upstream", upstream], env=child_env())
            port = child.wait_port(60)
            label = TARGETS[name] + (f" on {args.asgi_loop}" if name == "asgi" else "")
            targets.append(Target(name, label, f"http://{HOST}:{port}", "bench-client-key", child))
    return targets


async def readiness(targets: list[Target]) -> None:
    for target in targets:
        if target.child is None:
            continue
        path = {"nbmon": "/healthz", "litellm": "/health/liveliness"}.get(target.name)
        if path is not None:
            await wait_ready(f"http://{HOST}:{target.child.port}{path}", 120, target.child)
        target.child.refresh_pids()
        target.rss_start = target.child.rss_bytes()


def plan(quick: bool, scale: float) -> dict[int, tuple[int, int]]:
    """Timed requests per target and rounds per cell, by concurrency."""
    base = {1: (300, 6), 16: (480, 4), 64: (768, 2)} if not quick else {1: (40, 2), 16: (96, 2), 64: (256, 1)}
    return {c: (max(int(n * scale), c), rounds) for c, (n, rounds) in base.items()}


async def run(args: argparse.Namespace) -> int:
    import aiohttp
    from _common import MODEL

    bodies = payloads()
    upstream_child = Child("upstream", [sys.executable, __file__, "--serve", "upstream"])
    upstream = f"http://{HOST}:{upstream_child.wait_port(120)}"
    children = [upstream_child]
    started = time.perf_counter()
    try:
        targets = start_targets(args, upstream)
        children += [t.child for t in targets if t.child is not None]
        await readiness(targets)
        print(f"servers up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        sessions = {
            t.name: aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(CONCURRENCY), keepalive_timeout=KEEPALIVE_S - 5),
                timeout=aiohttp.ClientTimeout(total=120),
                auto_decompress=False,
            )
            for t in targets
        }
        try:
            checks = {
                (t.name, p): await identical(sessions[t.name], t, bodies[p], MODEL)
                for t in targets
                for p in ("json", "sse")
            }
            cells: dict[tuple[str, int], Cell] = {}
            for payload_name in ("json", "sse"):
                for concurrency, (requests, rounds) in plan(args.quick, args.scale).items():
                    cell = await measure_cell(
                        sessions, targets, bodies[payload_name], MODEL, concurrency, requests, rounds
                    )
                    cells[(payload_name, concurrency)] = cell
                    print(f"{payload_name} c={concurrency}: {cell.seconds:.1f} s", file=sys.stderr)
        finally:
            for session in sessions.values():
                await session.close()
        memory: dict[str, Memory] = {}
        pause = args.read_pause_ms / 1000
        for target in targets:
            if target.child is not None and not args.no_rss:
                memory[target.name] = await big_streams(target, bodies["big"], MODEL, 64 * 1024, pause)
                print(f"{target.name}: 64 big streams in {memory[target.name].seconds:.1f} s", file=sys.stderr)
        telemetry = await nbmon_counts(targets)
    finally:
        for child in reversed(children):
            child.stop()
            child.remove_output()
    report(args, targets, bodies, checks, cells, memory, telemetry, time.perf_counter() - started)
    return 0


async def nbmon_counts(targets: list[Target]) -> str:
    """What nbmon's own /metrics counted: proof that its telemetry ran on every request."""
    import aiohttp

    for target in targets:
        if target.name == "nbmon" and target.child is not None:
            async with aiohttp.ClientSession() as session, session.get(f"{target.base}/metrics") as response:
                text = await response.text()
            sums: dict[str, float] = {}
            for line in text.splitlines():
                for metric in ("nbmon_proxy_requests_total", "nbmon_generations_total", "nbmon_requests_total"):
                    if line.startswith((metric + "{", metric + " ")):
                        sums[metric] = sums.get(metric, 0.0) + float(line.rsplit(" ", 1)[1])
            counted = ", ".join(f"{name} {value:,.0f}" for name, value in sums.items())
            return f"nbmon counted: {counted}; JSON log lines on its stdout: {len(target.child.lines()):,}"
    return ""


# --- the report ---------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(
    args: argparse.Namespace,
    targets: list[Target],
    bodies: dict[str, Payload],
    checks: dict[tuple[str, str], str],
    cells: dict[tuple[str, int], Cell],
    memory: dict[str, Memory],
    telemetry: str,
    seconds: float,
) -> None:
    import aiohttp

    proxies = [t for t in targets if t.child is not None]
    names = ", ".join(f"{t.name} = {t.label}" for t in proxies)
    sizes = ", ".join(f"{p.name} {len(p.body) / 1e6:.2f} MB" for p in bodies.values())
    print(
        f"nbmon proxy benchmark, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, aiohttp {aiohttp.__version__}, "
        f"Python {sys.version.split()[0]}; {seconds:.0f} s in all"
    )
    print(
        "NOTE: one shared machine: the load generator, the upstream and the pass-through all run on its cores at "
        "once; absolute times move with the neighbours' load, figures of one run compare better than across runs."
    )
    print(f"bodies: {sizes} (big: the RSS test); pass-throughs: {names}")
    for target in proxies:
        print(
            f"  bytes through {target.name}: json {checks[(target.name, 'json')]}, sse {checks[(target.name, 'sse')]}"
        )
    if telemetry:
        print(f"  {telemetry}")
    print()
    print("Latency, ms: direct p50/p99, then each pass-through's p50/p99 minus the direct one's (ratio of p50s)")
    head = f"{'payload':<7} {'c':>3} {'n':>5} {'direct p50/p99':>16}"
    for target in proxies:
        head += f" {target.name + ' +p50/+p99':>27}"
    print(head)
    for (payload_name, concurrency), cell in cells.items():
        direct = cell.totals["direct"]
        d50, d99 = percentile(direct, 0.5) * 1e3, percentile(direct, 0.99) * 1e3
        line = f"{payload_name:<7} {concurrency:>3} {len(direct):>5} {d50:>7.2f} / {d99:>6.2f}"
        for target in proxies:
            values = cell.totals[target.name]
            p50, p99 = percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3
            line += f" {p50 - d50:>+8.2f} / {p99 - d99:>+7.2f} ({p50 / d50:4.2f}x)"
        print(line)
        if payload_name == "sse":
            firsts = cell.first_bytes["direct"]
            f50 = percentile(firsts, 0.5) * 1e3
            line = f"{'  TTFB':<7} {concurrency:>3} {'':>5} {f50:>7.2f} / {percentile(firsts, 0.99) * 1e3:>6.2f}"
            for target in proxies:
                values = cell.first_bytes[target.name]
                p50, p99 = percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3
                line += f" {p50 - f50:>+8.2f} / {p99 - percentile(firsts, 0.99) * 1e3:>+7.2f}{'':8}"
            print(line)
    print()
    print("CPU of the pass-through process (utime+stime from /proc, warm-ups included): ms per request, req/s per core")
    print(f"{'payload':<7} {'c':>3}" + "".join(f" {t.name:>22}" for t in proxies))
    for key in cells:
        line = f"{key[0]:<7} {key[1]:>3}"
        for target in proxies:
            done, spent = target.cpu_cells[key]
            line += f" {spent / done * 1e3:>8.2f} ms {done / spent if spent else float('inf'):>7.0f}/s"
        print(line)
    print()
    print("Throughput, requests/s of wall time while each one's rounds ran (the whole machine: load, upstream, proxy)")
    print(f"{'payload':<7} {'c':>3}" + "".join(f" {t.name:>10}" for t in targets))
    for key, cell in cells.items():
        print(f"{key[0]:<7} {key[1]:>3}" + "".join(f" {cell.rate(t.name):>10.0f}" for t in targets))
    if memory:
        print()
        print(
            f"RSS with {BIG_STREAMS} streams of {len(bodies['big'].body) / 1e6:.1f} MB in flight "
            f"(client reads 64 KiB per {args.read_pause_ms:g} ms each), MB"
        )
        print(
            f"{'':<8} {'at start':>8} {'before':>8} {'peak':>8} {'growth':>8} {'2 s after':>9} "
            f"{'in flight at once':>18} {'s':>6}"
        )
        starts = {t.name: t.rss_start for t in targets}
        for name, m in memory.items():
            print(
                f"{name:<8} {starts[name] / 1e6:>8.1f} {m.before / 1e6:>8.1f} {m.peak / 1e6:>8.1f} "
                f"{(m.peak - m.before) / 1e6:>8.1f} {m.after / 1e6:>9.1f} {m.overlap:>18} {m.seconds:>6.1f}"
            )
    print()
    print_targets(targets, cells, memory)


def print_targets(targets: list[Target], cells: dict[tuple[str, int], Cell], memory: dict[str, Memory]) -> None:
    """Issue 17's targets, each beside its figure."""
    names = {t.name for t in targets}
    if "nbmon" not in names:
        return

    def added(name: str, key: tuple[str, int], q: float) -> float:
        cell = cells[key]
        return (percentile(cell.totals[name], q) - percentile(cell.totals["direct"], q)) * 1e3

    print("Issue 17's targets (2-core machine)")
    lines: list[tuple[str, float, str, bool]] = []
    for payload_name in ("json", "sse"):
        if (payload_name, 1) in cells:
            value = added("nbmon", (payload_name, 1), 0.5)
            lines.append((f"p50 added, {payload_name}, c=1", value, f"<= {TARGET_P50_C1_MS:g} ms", value <= 1.0))
        if (payload_name, 64) in cells:
            value = added("nbmon", (payload_name, 64), 0.99)
            lines.append((f"p99 added, {payload_name}, c=64", value, f"<= {TARGET_P99_C64_MS:g} ms", value <= 10.0))
    if "nbmon" in memory:
        growth = (memory["nbmon"].peak - memory["nbmon"].before) / 1e6
        lines.append((f"RSS growth, {BIG_STREAMS} big streams (MB)", growth, f"< {TARGET_RSS_MB:g} MB", growth < 100))
    for label, value, bar, ok in lines:
        print(f"  nbmon {label:<38} {value:>8.2f}   target {bar:<10} {verdict(ok)}")
    if "litellm" not in names:
        print("  below LiteLLM on every line: not measured (LiteLLM skipped)")
        return
    below: list[tuple[str, float, float]] = []
    for key in cells:
        for q, tag in ((0.5, "p50"), (0.99, "p99")):
            below.append((f"{tag} added, {key[0]}, c={key[1]} (ms)", added("nbmon", key, q), added("litellm", key, q)))
    by_name = {t.name: t for t in targets}
    for key in cells:
        ours, others = by_name["nbmon"].cpu_cells[key], by_name["litellm"].cpu_cells[key]
        below.append(
            (f"CPU per request, {key[0]}, c={key[1]} (ms)", ours[1] / ours[0] * 1e3, others[1] / others[0] * 1e3)
        )
    if "nbmon" in memory and "litellm" in memory:
        grow = {n: (memory[n].peak - memory[n].before) / 1e6 for n in ("nbmon", "litellm")}
        below.append(("RSS growth, big streams (MB)", grow["nbmon"], grow["litellm"]))
    met = sum(mine < theirs for _, mine, theirs in below)
    print(f"  below LiteLLM on every line: {met} of {len(below)} lines {verdict(met == len(below))}")
    for label, mine, theirs in below:
        print(f"    {label:<40} nbmon {mine:>9.2f}  LiteLLM {theirs:>9.2f}  {verdict(mine < theirs)}")


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per cell (a minute or two in all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the requests per cell")
    parser.add_argument(
        "--skip", action="append", default=[], choices=sorted(TARGETS), help="leave a pass-through out (repeatable)"
    )
    parser.add_argument("--no-rss", action="store_true", help="skip the 64 big streams")
    parser.add_argument("--read-pause-ms", type=float, default=50.0, help="big streams: pause per 64 KiB read")
    parser.add_argument("--litellm-venv", default=str(HERE / ".venv-litellm"), help="LiteLLM's virtualenv")
    parser.add_argument(
        "--asgi-loop", default="uvloop", choices=("asyncio", "uvloop"), help="the bare ASGI's loop (uvicorn's default)"
    )
    parser.add_argument("--serve", choices=("upstream", "aiohttp", "asgi"), help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.serve == "upstream":
        sys.path.insert(0, str(HERE))
        return serve_upstream()
    if args.serve == "aiohttp":
        return serve_bare_aiohttp(args.upstream, args.loop)
    if args.serve == "asgi":
        return serve_asgi(args.upstream, args.loop)
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory() as workdir:
        args.workdir = workdir
        return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
