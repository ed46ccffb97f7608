"""The proxy under failure and abuse: upstream down or slow, clients that leave, bad requests, header hygiene."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from google.genai import errors

from monitor.simulator.server import SimulatorServer
from tests.proxy.conftest import API_KEY, IMAGE, PRO, Proxy, ProxyFactory

BODY = {"contents": [{"parts": [{"text": "a banana"}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}
HEADERS = {"x-goog-api-key": API_KEY}
GENERATE = f"/v1beta/models/{PRO}:generateContent"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


class Echo(BaseHTTPRequestHandler):
    """An upstream that answers with what it received: the method, path and headers."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({"path": self.path, "headers": dict(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "keep-alive, x-upstream-private")
        self.send_header("x-upstream-private", "hop")
        self.send_header("x-end-to-end", "kept")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    payload: dict[str, Any] = response.json()["error"]
    return payload


def test_an_upstream_that_refuses_is_a_google_shaped_502(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(upstream=f"http://127.0.0.1:{closed_port()}")
    response = httpx.post(proxy.url + GENERATE, json=BODY, headers=HEADERS, timeout=10)
    assert response.status_code == 502 and error_of(response)["status"] == "UNAVAILABLE"
    assert API_KEY not in response.text
    client = proxy.client()
    with pytest.raises(errors.ServerError) as raised:
        client.models.generate_content(model=PRO, contents="a banana", config=IMAGE)
    assert raised.value.code == 502
    assert proxy.value("nbmon_proxy_upstream_failures_total", method="generateContent", reason="connect") == 2
    assert proxy.value("nbmon_requests_total", model=PRO, code="none", error_class="network_error") == 2


def test_an_upstream_that_does_not_answer_in_time_is_a_504(make_proxy: ProxyFactory) -> None:
    with SimulatorServer(latency=5.0) as slow:
        proxy = make_proxy(upstream=slow.url, read_timeout_s=0.3)
        started = time.monotonic()
        response = httpx.post(proxy.url + GENERATE, json=BODY, headers=HEADERS, timeout=10)
        assert response.status_code == 504 and error_of(response)["status"] == "DEADLINE_EXCEEDED"
        assert time.monotonic() - started < 3
    assert proxy.value("nbmon_proxy_upstream_failures_total", method="generateContent", reason="timeout") == 1
    assert proxy.value("nbmon_requests_total", model=PRO, code="none", error_class="timeout") == 1


def test_a_client_gone_mid_stream_cancels_the_upstream_and_is_counted(make_proxy: ProxyFactory) -> None:
    with SimulatorServer(latency=4.0) as slow:
        proxy = make_proxy(upstream=slow.url)
        path = f"/v1beta/models/{PRO}:streamGenerateContent?alt=sse"
        with httpx.stream("POST", proxy.url + path, json=BODY, headers=HEADERS, timeout=10) as response:
            first = next(response.iter_raw())
            assert first.startswith(b"data: ")
        # The client hung up after its first event; the upstream still had seconds of stream to send.
        assert proxy.value("nbmon_proxy_client_disconnects_total", method="streamGenerateContent") == 1
        assert proxy.value("nbmon_generations_total", model=PRO, error_class="unknown") == 1
        assert proxy.value("nbmon_proxy_requests_in_flight") == 0


def test_not_a_gemini_path_is_not_forwarded(proxy: Proxy, sim: SimulatorServer) -> None:
    for path in ("/", "/admin", "/_sim/stats", "/v1beta/../_sim/stats", "/v1beta/models/%2e%2e/x"):
        response = httpx.get(proxy.url + path, timeout=5)
        assert response.status_code == 404, path
    assert sim.stats()["requests"] == 0


def test_an_absolute_form_target_still_goes_to_the_configured_upstream(proxy: Proxy, echo: str) -> None:
    """A client naming another host in the request line does not make the proxy an open relay."""
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            f"POST {echo}{GENERATE} HTTP/1.1\r\nHost: elsewhere\r\nContent-Length: 2\r\n"
            "Connection: close\r\n\r\n{}".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b"x-end-to-end" not in answer  # the echo upstream never saw it: it went to the simulator, or nowhere


def test_hop_by_hop_headers_stop_at_the_proxy(make_proxy: ProxyFactory, echo: str) -> None:
    proxy = make_proxy(upstream=echo)
    response = httpx.post(
        proxy.url + GENERATE,
        json=BODY,
        headers={
            **HEADERS,
            "connection": "keep-alive, x-client-private",
            "x-client-private": "hop",
            "te": "trailers",
            "x-end-to-end": "kept",
            "traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        },
        timeout=10,
    )
    seen = {k.lower(): v for k, v in response.json()["headers"].items()}
    assert seen["x-goog-api-key"] == API_KEY  # the key passes untouched
    assert seen["x-end-to-end"] == "kept" and "x-client-private" not in seen and "te" not in seen
    assert seen["host"] == echo.removeprefix("http://")
    # The upstream sees the proxy's span, a child in the client's trace.
    assert seen["traceparent"].startswith("00-" + "1" * 32 + "-") and "2" * 16 not in seen["traceparent"]
    assert response.headers["x-end-to-end"] == "kept" and "x-upstream-private" not in response.headers
    (span,) = proxy.finished_spans()
    assert span.parent is not None and span.parent.span_id == int("2" * 16, 16)
    assert format(span.context.trace_id, "032x") == "1" * 32


def test_a_body_over_the_limit_is_refused_before_the_upstream(make_proxy: ProxyFactory, sim: SimulatorServer) -> None:
    proxy = make_proxy(max_request_bytes=1024)
    response = httpx.post(proxy.url + GENERATE, content=b"{" + b" " * 4096 + b"}", headers=HEADERS, timeout=10)
    assert response.status_code == 413 and error_of(response)["code"] == 413
    assert sim.stats()["requests"] == 0


def test_a_slow_request_head_is_cut_off(make_proxy: ProxyFactory) -> None:
    proxy = make_proxy(header_timeout_s=0.3)
    host, port = proxy.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"POST " + GENERATE.encode() + b" HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        started = time.monotonic()
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3
