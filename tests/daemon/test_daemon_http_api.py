"""The daemon's HTTP API, request by request, over real sockets on 127.0.0.1: chunked bodies, methods, limits,
deep JSON, auth, and OFREP routed by `monitor.flagstate.ofrep.dispatch` through the real server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.daemon.http import MAX_BODY, DaemonServer
from monitor.signals import Reading

TOKEN = "http-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLAGS = "/ofrep/v1/evaluate/flags"
OVERRIDE = {"value": True, "reason": "drill", "expires_in": "5m"}


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


def build(tmp_path: Path, token: str | None = TOKEN) -> Daemon:
    config = DaemonConfig(state_path=tmp_path / "state.json", admin_token=token)
    return Daemon(config, source=QuietSource(), registry=CollectorRegistry())


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    return build(tmp_path)


@pytest.fixture
def errors() -> list[tuple[str, Exception]]:
    return []


@pytest.fixture
def client(daemon: Daemon, errors: list[tuple[str, Exception]]) -> Iterator[httpx.Client]:
    server = DaemonServer(daemon, "127.0.0.1", 0, lambda path, exc: errors.append((path, exc)))
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            yield http
        assert errors == []  # nothing here is an error of the daemon
    finally:
        server.stop()


def raw(client: httpx.Client, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request as bytes, for what httpx will not send; the answer, read until the server closes."""
    with socket.create_connection((client.base_url.host, client.base_url.port or 80), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def is_json_error(response: httpx.Response, status: int, contains: str = "") -> bool:
    body = response.json()
    message = body.get("error") or body.get("errorDetails") or ""
    return (
        response.status_code == status
        and response.headers["content-type"] == "application/json"
        and contains in message
        and "\n" not in message
    )


def chunks(data: bytes, size: int = 7) -> Iterator[bytes]:
    """httpx sends an iterator with Transfer-Encoding: chunked."""
    yield from (data[i : i + size] for i in range(0, len(data), size))


# --- bodies -----------------------------------------------------------------------------------------------


def test_chunked_bodies_are_read(client: httpx.Client) -> None:
    response = client.post("/v1/override", content=chunks(json.dumps(OVERRIDE).encode()), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["effective"]["source"] == "override"
    alert = {"status": "firing", "labels": {"alertname": "NbmonImage503RateHigh"}, "fingerprint": "f1"}
    payload = json.dumps({"version": "4", "status": "firing", "alerts": [alert]}).encode()
    fired = client.post("/v1/alertmanager", content=chunks(payload), headers=AUTH)
    assert (fired.status_code, fired.json()["accepted"]) == (200, 1)
    bad = client.post(FLAGS, content=chunks(b"[1, 2]"))  # read, so refused: the old server saw no body
    assert (bad.status_code, bad.json()["errorCode"]) == (400, "PARSE_ERROR")


def test_bodies_over_1_mib_get_413(client: httpx.Client) -> None:
    too_big = b" " * (MAX_BODY + 1)
    assert is_json_error(client.post("/v1/override", content=too_big, headers=AUTH), 413, "over 1048576 bytes")
    assert is_json_error(client.post("/v1/alertmanager", content=chunks(too_big, 65536), headers=AUTH), 413)
    assert is_json_error(client.post(f"{FLAGS}/degraded-mode", content=too_big), 413)
    fits = b"{}" + b" " * (MAX_BODY - 2)
    assert client.post(f"{FLAGS}/degraded-mode", content=fits).status_code == 200


@pytest.mark.parametrize("path", ["/v1/override", "/v1/alertmanager", f"{FLAGS}/degraded-mode", FLAGS])
@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 65 + b"1" + b"}" * 65, b"[" * 5000])
def test_deeply_nested_json_gets_400_with_a_one_line_reason(client: httpx.Client, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers=AUTH)
    assert is_json_error(response, 400, "nested deeper than 64 levels")


@pytest.mark.parametrize("path", ["/v1/override", "/v1/alertmanager", FLAGS])
def test_bodies_in_utf16_get_400_even_deep_or_crafted(client: httpx.Client, path: str) -> None:
    # An escaped quote in UTF-16 would hide brackets from a byte-level check: JSON must be UTF-8 (RFC 8259).
    for text in ("[" * 2000 + "]" * 2000, '["\\"' + "[" * 2000 + "]" * 2000 + '"]', '{"value": true}'):
        assert is_json_error(client.post(path, content=text.encode("utf-16-le"), headers=AUTH), 400)


def test_nesting_up_to_64_levels_is_parsed(client: httpx.Client) -> None:
    deep_context = {"context": json.loads('{"a":' * 62 + "1" + "}" * 62)}  # 64 levels with the outer object
    assert client.post(f"{FLAGS}/degraded-mode", json=deep_context).status_code == 200
    response = client.post("/v1/override", content=b"[" * 64 + b"]" * 64, headers=AUTH)
    assert is_json_error(response, 400, "must be a JSON object")  # parsed, then refused for its shape


# --- methods and paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/v1/state", "GET,HEAD"),
        ("DELETE", "/healthz", "GET,HEAD"),
        ("POST", "/metrics", "GET,HEAD"),
        ("OPTIONS", "/readyz", "GET,HEAD"),
        ("GET", "/v1/override", "DELETE,POST,PUT"),
        ("GET", "/v1/alertmanager", "POST"),
        ("GET", f"{FLAGS}/degraded-mode", "POST"),
        ("PUT", FLAGS, "POST"),
    ],
)
def test_a_method_not_served_gets_405_with_allow_and_json(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert is_json_error(response, 405)
    assert response.headers["allow"] == allow


def test_unknown_paths_get_404_json(client: httpx.Client) -> None:
    for path in ("/nope", "/v1/state/", "/ofrep/v1/configuration", "/ofrep", "/v1/override/x"):
        assert is_json_error(client.get(path), 404, "no such endpoint"), path
    assert client.get("/nope?token=x").json() == {"error": "no such endpoint: /nope"}


def test_head_answers_like_get_without_the_body(client: httpx.Client) -> None:
    for path in ("/healthz", "/v1/state", "/metrics"):
        got, head = client.get(path), client.head(path)
        assert (head.status_code, head.content) == (got.status_code, b"")
        assert head.headers["content-type"] == got.headers["content-type"]
    assert client.head("/readyz").status_code == 503  # no source read yet, as GET says


def test_a_request_that_is_not_http_gets_400_json(client: httpx.Client) -> None:
    status, headers, body = raw(client, b"GET /v1/state HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
    assert (status, headers["content-type"]) == (400, "application/json")
    assert json.loads(body)["error"]  # and the server closed the connection: raw() read until then


# --- limits on the request head ---------------------------------------------------------------------------


def test_a_request_head_over_16_kib_gets_431(client: httpx.Client) -> None:
    headers = {f"x-filler-{n}": "a" * 1000 for n in range(20)}  # each line fine, 20 KiB in all
    assert is_json_error(client.get("/v1/state", headers=headers), 431, "request head over 16384 bytes")
    assert client.get("/v1/state", headers={f"x-filler-{n}": "a" * 1000 for n in range(14)}).status_code == 200


def test_a_header_line_or_count_over_the_limits_gets_400_json(client: httpx.Client) -> None:
    assert is_json_error(client.get("/v1/state", headers={"x-big": "a" * 9000}), 400)
    many = "".join(f"x-h{n}: 1\r\n" for n in range(101))
    status, headers, _ = raw(client, f"GET /v1/state HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
    assert (status, headers["content-type"]) == (400, "application/json")


# --- the admin API ----------------------------------------------------------------------------------------


def test_the_admin_api_needs_the_token(client: httpx.Client) -> None:
    for method, path in (("POST", "/v1/override"), ("DELETE", "/v1/override"), ("POST", "/v1/alertmanager")):
        missing = client.request(method, path, json=OVERRIDE)
        assert is_json_error(missing, 401, "bearer token") and missing.headers["www-authenticate"] == "Bearer"
        wrong = client.request(method, path, json=OVERRIDE, headers={"Authorization": "Bearer " + "x" * 27})
        assert is_json_error(wrong, 401)
    assert client.put("/v1/override", json=OVERRIDE, headers=AUTH).json()["effective"]["value"] is True
    assert client.delete("/v1/override", headers=AUTH).json()["effective"]["source"] == "rule"
    assert is_json_error(client.post("/v1/override", json=[1], headers=AUTH), 400, "JSON object")
    assert is_json_error(client.post("/v1/override", content=b"{nope", headers=AUTH), 400, "not JSON")
    assert is_json_error(client.post("/v1/override", json={"value": "yes"}, headers=AUTH), 400, "value")


def test_without_a_token_the_admin_api_answers_403(tmp_path: Path) -> None:
    server = DaemonServer(build(tmp_path, token=None), "127.0.0.1", 0, lambda path, exc: None)
    server.start()
    try:
        response = httpx.post(f"{server.url}/v1/override", json=OVERRIDE, headers=AUTH)
        assert is_json_error(response, 403, "NBMON_ADMIN_TOKEN")
    finally:
        server.stop()


# --- OFREP: dispatch routes it, through the real server ---------------------------------------------------


def test_ofrep_paths_follow_rfc_3986_and_the_ofrep_openapi(client: httpx.Client) -> None:
    encoded = client.post(f"{FLAGS}/degraded%2Dmode", json={})  # %2D is "-": the same URL
    assert (encoded.status_code, encoded.json()["key"]) == (200, "degraded-mode")
    empty_key = client.post(f"{FLAGS}/", json={})  # /flags/{key} with an empty key, not the bulk endpoint
    assert (empty_key.status_code, empty_key.json()) == (
        404,
        empty_key.json() | {"key": "", "errorCode": "FLAG_NOT_FOUND"},
    )
    bulk = client.post("/ofrep/v1/evaluate/fl%61gs?x=1", json={})
    assert [flag["key"] for flag in bulk.json()["flags"]] == ["degraded-mode", "image-model", "generation-allowed"]
    slash = client.post(f"{FLAGS}%2Fdegraded-mode", json={})  # %2F is reserved: another path
    assert is_json_error(slash, 404, "no such endpoint")
    unknown = client.post(f"{FLAGS}/dark-mode")
    assert (unknown.status_code, unknown.json()["errorCode"]) == (404, "FLAG_NOT_FOUND")


def test_ofrep_bulk_etag_over_the_daemon(client: httpx.Client) -> None:
    first = client.post(FLAGS, json={"context": {"targetingKey": "app-1"}})
    etag = first.headers["etag"]
    again = client.post(FLAGS, json={}, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    client.post("/v1/override", json=OVERRIDE, headers=AUTH)
    changed = client.post(FLAGS, json={}, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_ofrep_answers_every_method_and_body_in_json(client: httpx.Client) -> None:
    answers: list[Any] = [
        client.post(f"{FLAGS}/image-model", content=b"\xff\xfe"),
        client.post(f"{FLAGS}/image-model", content=b'{"context": NaN}'),
        client.post(FLAGS, content=b'{"context": []}'),
        client.delete(f"{FLAGS}/image-model"),
        client.head(FLAGS),
    ]
    assert [a.status_code for a in answers] == [400, 400, 400, 405, 405]
    assert all(a.headers["content-type"] == "application/json" for a in answers)
