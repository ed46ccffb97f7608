"""The daemon's HTTP server under hostile or sloppy clients, over real sockets on 127.0.0.1.

Clients hanging up, 100 clients at once, 1,000 idle keep-alive connections, the connection cap, slow request
heads and bodies (slowloris), stop with connections open. The timeouts are shortened through HttpLimits.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.daemon.http import DaemonServer, HttpLimits
from monitor.signals import Reading

TOKEN = "http-admin-token-0123456789"
Answer = tuple[int, dict[str, str], bytes]


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    """A real daemon, not started: the tests serve it with the limits they need."""
    config = DaemonConfig(state_path=tmp_path / "state.json", admin_token=TOKEN)
    return Daemon(config, source=QuietSource(), registry=CollectorRegistry())


@contextmanager
def serving(daemon: Daemon, errors: list[tuple[str, Exception]] | None = None, **limits: Any) -> Iterator[DaemonServer]:
    sink = errors if errors is not None else []
    server = DaemonServer(
        daemon, "127.0.0.1", 0, lambda path, exc: sink.append((path, exc)), limits=HttpLimits(**limits)
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def connect(server: DaemonServer, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def get(path: str, *, close: bool = False) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: nbmon\r\n{'Connection: close' if close else ''}\r\n\r\n".encode()


def read_answer(sock: socket.socket, method: str = "GET") -> Answer:
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    body = response.read()
    response.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes `sock` within `within` s (whatever it sent before)."""
    deadline = time.monotonic() + within
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            if sock.recv(65536) == b"":
                return True
    except TimeoutError:
        return False
    except OSError:  # reset
        return True
    return False


def reset(sock: socket.socket) -> None:
    """Close with an RST, as a crashed client or a proxy giving up does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# --- clients that hang up ---------------------------------------------------------------------------------


def test_clients_hanging_up_write_nothing_to_stderr(daemon: Daemon, capfd: pytest.CaptureFixture[str]) -> None:
    errors: list[tuple[str, Exception]] = []
    post_head = (
        f"POST /v1/override HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1000\r\n\r\n"
    )
    with serving(daemon, errors) as server:
        for _ in range(10):
            sock = connect(server)  # a request, then a reset before the answer
            sock.sendall(get("/v1/state"))
            reset(sock)
            sock = connect(server)  # a body cut short, then a close
            sock.sendall(post_head.encode() + b'{"value": tr')
            sock.close()
            sock = connect(server)  # the same, then a reset
            sock.sendall(post_head.encode() + b'{"value": tr')
            time.sleep(0.005)
            reset(sock)
            sock = connect(server)  # half a head
            sock.sendall(b"GET /v1/sta")
            reset(sock)
            sock = connect(server)  # a request, then gone without reading the answer
            sock.sendall(get("/metrics"))
            sock.close()
        time.sleep(0.3)
        with connect(server) as sock:
            sock.sendall(get("/healthz", close=True))
            assert read_answer(sock)[0] == 200
        time.sleep(0.3)  # anything the server would print has been printed
    assert capfd.readouterr().err == ""
    assert errors == []  # hang-ups are not errors of the daemon


class BrokenCollector:
    """A collector that fails, as a bug in one would: /metrics must answer 500 and report it."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        raise RuntimeError("collector broke")


def test_a_failing_handler_is_reported_and_answered_500_json(daemon: Daemon, capfd: pytest.CaptureFixture[str]) -> None:
    daemon.registry.register(BrokenCollector())
    errors: list[tuple[str, Exception]] = []
    with serving(daemon, errors) as server:
        with connect(server) as sock:
            sock.sendall(get("/metrics"))
            status, headers, body = read_answer(sock)
        assert (status, headers["content-type"], json.loads(body)) == (
            500,
            "application/json",
            {"error": "internal error"},
        )
        with connect(server) as sock:  # the server carries on
            sock.sendall(get("/healthz"))
            assert read_answer(sock)[0] == 200
    assert [(path, str(exc)) for path, exc in errors] == [("/metrics", "collector broke")]
    assert capfd.readouterr().err == ""


# --- many clients -----------------------------------------------------------------------------------------


def test_100_concurrent_clients_are_all_answered_promptly(daemon: Daemon) -> None:
    clients = 100
    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    statuses: list[int] = []
    failures: list[str] = []
    with serving(daemon) as server:

        def client() -> None:
            barrier.wait()
            started = time.perf_counter()
            try:
                with connect(server, timeout=10) as sock:
                    sock.sendall(get("/v1/state", close=True))
                    statuses.append(read_answer(sock)[0])
            except OSError as exc:  # a timeout: the SYN was dropped too often
                statuses.append(-1)
                failures.append(repr(exc))
            latencies.append(time.perf_counter() - started)

        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert statuses == [200] * clients, failures[:3]
    p90 = statistics.quantiles(latencies, n=10)[-1]
    # A backlog of 5 drops SYNs at once: the kernel retries them after 1 s (the old server's p90).
    assert p90 < 0.5, f"p90 {p90:.3f} s, max {max(latencies):.3f} s"


def test_1000_idle_keepalive_connections_take_no_thread_and_stall_nothing(daemon: Daemon) -> None:
    before = threading.active_count()
    idle: list[socket.socket] = []
    with serving(daemon, max_connections=512) as server:
        try:
            for n in range(1000):
                sock = connect(server)
                if n % 2:  # a pooled connection, not used yet
                    time.sleep(0.001)
                else:  # a connection after its first request (keep-alive)
                    sock.sendall(get("/healthz"))
                    assert read_answer(sock)[0] == 200
                idle.append(sock)
            threads = threading.active_count() - before
            assert threads <= 8, f"{threads} threads for 1,000 idle connections"
            started = time.perf_counter()
            with connect(server) as sock:
                sock.sendall(get("/v1/state", close=True))
                assert read_answer(sock)[0] == 200
            assert time.perf_counter() - started < 1.0
            assert server.guard is not None and len(server.guard.open) <= 512  # the cap holds
            # Room was made by closing the least recently used idle connections: the first ones.
            assert closed_by_server(idle[0], within=2.0)
            assert not closed_by_server(idle[-1], within=0.05)
        finally:
            for sock in idle:
                sock.close()


def test_idle_connections_are_closed_after_the_keepalive_timeout(daemon: Daemon) -> None:
    with serving(daemon, keepalive_timeout=0.5) as server, connect(server) as used, connect(server) as silent:
        used.sendall(get("/healthz"))
        assert read_answer(used)[0] == 200
        started = time.monotonic()
        assert closed_by_server(used, within=3.0)
        assert closed_by_server(silent, within=1.0)  # a connection that never sent a byte too
        assert 0.4 < time.monotonic() - started < 2.5


def test_the_connection_cap_evicts_the_oldest_idle_then_refuses(daemon: Daemon) -> None:
    with serving(daemon, max_connections=4) as server:
        busy = [connect(server) for _ in range(4)]
        try:
            for sock in busy:
                sock.sendall(b"GET /v1/state HTTP/1.1\r\nHost: x\r\n")  # a head on its way: busy, not idle
            time.sleep(0.1)
            with connect(server) as extra:
                extra.sendall(get("/healthz"))
                status, headers, body = read_answer(extra)
                assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
                assert json.loads(body) == {"error": "too many connections: retry shortly"}
        finally:
            for sock in busy:
                sock.close()
        time.sleep(0.1)
        idle = [connect(server) for _ in range(4)]
        try:
            for sock in idle:
                sock.sendall(get("/healthz"))
                assert read_answer(sock)[0] == 200
            with connect(server) as extra:
                extra.sendall(get("/v1/state", close=True))
                assert read_answer(extra)[0] == 200
            assert closed_by_server(idle[0], within=2.0)  # the least recently used made room
            for sock in idle[1:]:
                sock.sendall(get("/healthz"))
                assert read_answer(sock)[0] == 200
        finally:
            for sock in idle:
                sock.close()


# --- slow clients -----------------------------------------------------------------------------------------


def test_a_request_head_sent_byte_by_byte_is_cut_at_the_header_timeout(daemon: Daemon) -> None:
    with serving(daemon, header_timeout=0.5, keepalive_timeout=30) as server, connect(server) as sock:
        sock.sendall(get("/healthz"))  # first a normal request: the guard applies to every head
        assert read_answer(sock)[0] == 200
        started = time.monotonic()
        received = b""
        sock.settimeout(0.05)
        for byte in b"GET /v1/state HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
            try:
                sock.send(bytes([byte]))
                received = sock.recv(65536)  # waits 50 ms for an answer: the pace of the trickle
                break
            except TimeoutError:
                continue
            except OSError:
                break
        elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert json.loads(received.split(b"\r\n\r\n", 1)[1]) == {"error": "request head not received within 0.5 s"}
    assert 0.4 < elapsed < 2.0


def test_a_body_sent_slowly_is_cut_at_the_body_timeout(daemon: Daemon) -> None:
    head = f"POST /v1/override HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n"
    with serving(daemon, body_timeout=0.5) as server, connect(server) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + b'{"value": ')
        status, headers, body = read_answer(sock)
        assert (status, headers["connection"]) == (408, "close")
        assert json.loads(body) == {"error": "body not received within 0.5 s"}
        assert 0.4 < time.monotonic() - started < 2.0


# --- lifecycle --------------------------------------------------------------------------------------------


def test_stop_is_prompt_and_closes_every_connection(daemon: Daemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    server = DaemonServer(daemon, "127.0.0.1", 0, lambda path, exc: None)
    server.start()
    idle = [connect(server) for _ in range(50)]
    try:
        for sock in idle:
            sock.sendall(get("/v1/state"))
            assert read_answer(sock)[0] == 200
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        assert all(closed_by_server(sock, within=1.0) for sock in idle)
    finally:
        for sock in idle:
            sock.close()
    assert not [r for r in caplog.records if r.name.startswith("aiohttp.access")]  # no request logs
    with pytest.raises(OSError):
        connect(server, timeout=1.0)


def test_a_taken_port_fails_at_construction(daemon: Daemon) -> None:
    with serving(daemon) as server, pytest.raises(OSError):
        DaemonServer(daemon, "127.0.0.1", server.port, lambda path, exc: None)
