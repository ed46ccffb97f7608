"""Properties of the daemon's HTTP API over a real server: whatever the path, method, head or body, the answer is a
2xx, 304 or 4xx with a JSON body (none for HEAD and 304), never a 500, and the daemon reports no error.
One server for the module: each example is one request on a kept-alive connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monitor.daemon.alertmanager import PayloadError, parse_payload
from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.daemon.http import DaemonServer, HttpLimits
from monitor.signals import Reading

TOKEN = "property-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


class Served:
    def __init__(self, server: DaemonServer, client: httpx.Client, errors: list[tuple[str, Exception]]) -> None:
        self.server, self.client, self.errors = server, client, errors

    def check(self, response: httpx.Response, method: str = "POST") -> Any:
        """The property: a JSON answer that is not a 5xx, and no error reported by the daemon."""
        assert self.errors == []
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json"
        if method == "HEAD" or response.status_code == 304:
            assert response.content == b""
            return None
        return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("props") / "state.json"
    daemon = Daemon(
        DaemonConfig(state_path=state, admin_token=TOKEN), source=QuietSource(), registry=CollectorRegistry()
    )
    errors: list[tuple[str, Exception]] = []
    limits = HttpLimits(header_timeout=2.0, body_timeout=2.0)
    server = DaemonServer(daemon, "127.0.0.1", 0, lambda path, exc: errors.append((path, exc)), limits=limits)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield Served(server, client, errors)
    finally:
        server.stop()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
depths = st.sampled_from([0, 1, 63, 64, 65, 100_000]) | st.integers(0, 3000)
nested = depths.map(lambda n: b"[" * n + b"]" * n) | depths.map(lambda n: b'{"a":' * n + b"1" + b"}" * n)


def bodies(shaped: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), nested, (json_values | shaped).map(lambda v: json.dumps(v).encode()))


alerts = st.fixed_dictionaries(
    {"status": st.sampled_from(["firing", "resolved"]) | json_values},
    optional={
        "labels": st.fixed_dictionaries(
            {"alertname": st.sampled_from(["NbmonImage503RateHigh", "Other"]) | json_values}
        )
        | json_values,
        "fingerprint": st.text(max_size=8) | json_values,
    },
)
webhooks = st.fixed_dictionaries(
    {"version": st.sampled_from(["4", 4, "3"]) | json_values},
    optional={"alerts": st.lists(alerts, max_size=4) | json_values, "status": st.text(max_size=8)},
)
expiries = st.one_of(
    st.fixed_dictionaries({"expires_in": st.sampled_from(["30m", "0s", "-1m", "1e308", "8d", "soon"]) | json_values}),
    st.fixed_dictionaries({"expires_at": st.datetimes(timezones=st.timezones()).map(datetime.isoformat) | json_values}),
    st.just({}),
)
overrides = st.tuples(
    st.fixed_dictionaries(
        {"value": st.booleans() | json_values, "reason": st.text(max_size=20) | json_values},
        optional={"set_by": json_values, "colour": json_values},
    ),
    expiries,
).map(lambda parts: {**parts[0], **parts[1]})


@PROPS
@given(
    st.sampled_from(["POST", "GET", "HEAD", "PUT", "DELETE", "PATCH"]),
    st.text(
        alphabet=st.characters(codec="ascii", min_codepoint=33, max_codepoint=126, exclude_characters="#?"), max_size=40
    ),
    st.sampled_from(["/ofrep/v1/evaluate/flags/", "/ofrep/v1/evaluate/flags", "/ofrep/", "/"]),
    bodies(st.fixed_dictionaries({"context": json_values})),
    st.none() | st.text(alphabet=st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=30),
)
def test_ofrep_answers_any_request_in_json(
    served: Served, method: str, tail: str, prefix: str, body: bytes, etag: str | None
) -> None:
    headers = {"If-None-Match": etag} if etag is not None else {}
    response = served.client.request(method, prefix + tail, content=body, headers=headers)
    answer = served.check(response, method)
    assert response.status_code in (200, 304, 400, 404, 405)
    if response.status_code == 200 and method == "POST":
        assert "flags" in answer or answer["key"] in ("degraded-mode", "image-model")


@PROPS
@given(bodies(webhooks))
def test_alertmanager_answers_any_body_with_200_or_400(served: Served, body: bytes) -> None:
    response = served.client.post("/v1/alertmanager", content=body, headers=AUTH)
    answer = served.check(response)
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert answer["error"] and "\n" not in answer["error"]


@PROPS
@given(json_values | webhooks)
def test_parse_payload_accepts_or_raises_payload_error(payload: Any) -> None:
    try:
        updates = parse_payload(payload, ["NbmonImage503RateHigh"])
    except PayloadError as error:
        assert str(error)
    else:
        assert all(update.name == "NbmonImage503RateHigh" for update in updates)


@PROPS
@given(bodies(overrides), st.sampled_from(["POST", "PUT"]))
def test_override_answers_any_body_with_200_or_400(served: Served, body: bytes, method: str) -> None:
    response = served.client.request(method, "/v1/override", content=body, headers=AUTH)
    answer = served.check(response)
    assert response.status_code in (200, 400), answer
    if response.status_code == 200:
        assert answer["effective"]["source"] == "override"


def test_an_override_expiring_at_the_end_of_time_is_a_400(served: Served) -> None:
    """datetime's last instant, in a timezone behind UTC, overflows when converted: still a 400, not a 500."""
    body = {"value": True, "reason": "x", "expires_at": "9999-12-31T23:59:59-12:00"}
    assert served.check(served.client.post("/v1/override", json=body, headers=AUTH))["error"]
    near = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert served.client.post("/v1/override", json={**body, "expires_at": near}, headers=AUTH).status_code == 200


tokens = st.text(alphabet=st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
heads = st.tuples(
    tokens | st.sampled_from(["GET", "POST", "HEAD"]),
    st.text(alphabet=st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), max_size=30).map("/".__add__),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "HTTP/1.1x", ""]),
    st.lists(
        st.tuples(tokens, st.text(alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"))), max_size=5
    ),
)


@PROPS
@given(heads)
def test_any_request_head_gets_an_answer_in_json(
    served: Served, head: tuple[str, str, str, list[tuple[str, str]]]
) -> None:
    method, target, version, fields = head
    lines = [f"{method} {target} {version}".rstrip(), "Host: x", "Connection: close"]
    lines += [
        f"{name}: {value}" for name, value in fields if name.lower() not in ("content-length", "transfer-encoding")
    ]
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    status = int(status_line.split()[1])
    head_bytes, _, body = rest.partition(b"\r\n\r\n")
    assert served.errors == []
    assert status < 500 and b"content-type: application/json" in head_bytes.lower()
    if method != "HEAD" and status != 304:
        json.loads(body)
