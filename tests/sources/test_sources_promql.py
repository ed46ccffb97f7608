"""PromQLSource against a fake Prometheus query API served over real HTTP."""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import pytest
from structlog.testing import capture_logs

from monitor.signals import Series, WindowSource
from monitor.sources import DEFAULT_QUERY, PROMQL_ERROR_REASONS, PromQLSource, prometheus_duration
from tests.support.constants import FLASH, PRO
from tests.support.http import LoopbackServer, Reply, Request, free_port

QUERY_1M = "sum by (model, code, error_class) (increase(nbmon_requests_total[1m]))"
NOW = 1717171717.123


@dataclass
class Received:
    method: str
    path: str
    query: str | None
    headers: dict[str, str]


Answer = tuple[int, bytes, str]  # status, body, content type


def vector(*items: tuple[dict[str, str], str]) -> dict[str, Any]:
    result = [{"metric": metric, "value": [NOW, value]} for metric, value in items]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def as_json(payload: object, status: int = 200) -> Answer:
    return status, json.dumps(payload).encode(), "application/json"


def labels(model: str, code: str, error_class: str) -> dict[str, str]:
    return {"model": model, "code": code, "error_class": error_class}


REALISTIC = vector(
    (labels(PRO, "200", "ok"), "1532.0000000000002"),
    (labels(PRO, "503", "unavailable"), "708.4285714285714"),
    (labels(PRO, "429", "rate_limited"), "12"),
    (labels(FLASH, "200", "ok"), "96.00000000000001"),
)


@dataclass
class FakePrometheus:
    """Answers `{prefix}/api/v1/query` like Prometheus: the expected query gets `answer`, any other bad_data."""

    prefix: str = ""
    expected_query: str = QUERY_1M
    answer: Callable[[Received], Answer] = lambda _: as_json(REALISTIC)
    delay_s: float = 0.0
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = threading.Event()
        self.server = LoopbackServer(self._respond)

    def _respond(self, request: Request) -> Reply:
        if request.method not in ("GET", "POST"):
            return Reply(501)
        form = request.query if request.method == "GET" else request.form()
        received = Received(request.method, request.route, form.get("query", [None])[0], dict(request.headers.items()))
        self.received.append(received)
        if self.delay_s:
            self.stop.wait(self.delay_s)
        if received.path != f"{self.prefix}/api/v1/query":
            status, body, kind = 404, b"404 page not found\n", "text/plain"
        elif received.query != self.expected_query:
            error = {"status": "error", "errorType": "bad_data", "error": f"unexpected query {received.query}"}
            status, body, kind = as_json(error, 400)
        else:
            status, body, kind = self.answer(received)
        return Reply(status, body, kind)

    @property
    def url(self) -> str:
        return f"{self.server.url}{self.prefix}"

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.close()


@pytest.fixture
def errors() -> list[tuple[str, str]]:
    return []


def source_for(server: FakePrometheus, errors: list[tuple[str, str]] | None = None, **kwargs: Any) -> PromQLSource:
    on_error = None if errors is None else (lambda target, reason: errors.append((target, reason)))
    return PromQLSource(server.url, on_error=on_error, **kwargs)


# --- success ----------------------------------------------------------------------------------------------


def test_counts_from_a_realistic_vector(prom: FakePrometheus) -> None:
    with source_for(prom, clock=lambda: 5.0) as source:
        counts, error = source.counts(60)
        status = source.status()[prom.url]
    assert error is None
    assert dict(counts) == {
        Series(PRO, "200", "ok"): pytest.approx(1532.0),
        Series(PRO, "503", "unavailable"): pytest.approx(708.4285714285714),
        Series(PRO, "429", "rate_limited"): 12.0,
        Series(FLASH, "200", "ok"): pytest.approx(96.0),
    }
    (request,) = prom.received
    assert request.method == "GET"
    assert request.query == QUERY_1M
    assert request.headers["Accept"] == "application/json"
    assert status.ok
    assert status.last_success_at == 5.0


def test_satisfies_the_window_source_protocol(prom: FakePrometheus) -> None:
    with source_for(prom) as source:
        typed: WindowSource = source
        assert typed.name == "promql"
        assert typed.counts(60)[1] is None


def test_post_sends_the_query_as_a_form(prom: FakePrometheus) -> None:
    with source_for(prom, method="POST") as source:
        _, error = source.counts(60)
    assert error is None
    assert prom.received[0].method == "POST"
    assert prom.received[0].headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("window_s", "rendered"),
    [(60, "1m"), (300, "5m"), (90, "90s"), (3600, "1h"), (5400, "90m"), (86400, "1d"), (15, "15s"), (2.5, "2500ms")],
)
def test_window_is_rendered_as_a_prometheus_duration(prom: FakePrometheus, window_s: float, rendered: str) -> None:
    prom.expected_query = DEFAULT_QUERY.replace("{window}", rendered)
    with source_for(prom) as source:
        counts, error = source.counts(window_s)
    assert error is None
    assert prom.received[0].query == f"sum by (model, code, error_class) (increase(nbmon_requests_total[{rendered}]))"
    assert len(counts) == 4
    assert prometheus_duration(window_s) == rendered


@pytest.mark.parametrize("window_s", [0, -60, math.nan, math.inf, 0.0001])
def test_invalid_window_is_an_error_without_a_request(prom: FakePrometheus, window_s: float) -> None:
    errors: list[tuple[str, str]] = []
    with source_for(prom, errors) as source:
        counts, error = source.counts(window_s)
    assert counts == {}
    assert error is not None
    assert error.startswith("window: ")
    assert prom.received == []
    assert errors == []


def test_nan_and_inf_values_are_not_counts(prom: FakePrometheus) -> None:
    prom.answer = lambda _: as_json(
        vector(
            (labels(PRO, "503", "unavailable"), "NaN"),
            (labels(PRO, "500", "internal"), "+Inf"),
            (labels(PRO, "400", "bad_request"), "-Inf"),
            (labels(PRO, "200", "ok"), "10"),
        )
    )
    with source_for(prom) as source:
        counts, error = source.counts(60)
    assert error is None
    assert dict(counts) == {Series(PRO, "200", "ok"): 10.0}


def test_empty_vector_means_no_traffic(prom: FakePrometheus) -> None:
    prom.answer = lambda _: as_json(vector())
    with source_for(prom) as source:
        assert source.counts(60) == ({}, None)


def test_custom_template_keeps_promql_braces_and_sums_duplicates(prom: FakePrometheus) -> None:
    template = 'increase(nbmon_requests_total{job="app", model!=""}[{window}])'
    prom.expected_query = 'increase(nbmon_requests_total{job="app", model!=""}[5m])'
    prom.answer = lambda _: as_json(
        vector(
            ({**labels(PRO, "503", "unavailable"), "pod": "a", "job": "app"}, "4"),
            ({**labels(PRO, "503", "unavailable"), "pod": "b", "job": "app"}, "6"),
            ({"model": PRO, "code": "200"}, "1"),
        )
    )
    with source_for(prom, query_template=template) as source:
        counts, error = source.counts(300)
    assert error is None
    assert dict(counts) == {Series(PRO, "503", "unavailable"): 10.0, Series(PRO, "200", ""): 1.0}


@pytest.mark.parametrize("prefix", ["/prometheus", "/v1/projects/my-project/location/global/prometheus"])
def test_base_url_with_a_path_mimir_and_gmp_style(prefix: str) -> None:
    server = FakePrometheus(prefix=prefix)
    try:
        with PromQLSource(server.url + "/") as source:  # a trailing slash is tolerated
            counts, error = source.counts(60)
    finally:
        server.close()
    assert error is None
    assert len(counts) == 4
    assert server.received[0].path == f"{prefix}/api/v1/query"


def test_static_headers_and_a_token_factory_per_request(prom: FakePrometheus) -> None:
    tokens = iter(["ya29.first", "ya29.second"])
    with source_for(
        prom,
        headers={"X-Scope-OrgID": "tenant-1"},
        headers_factory=lambda: {"Authorization": f"Bearer {next(tokens)}"},
    ) as source:
        source.counts(60)
        source.counts(60)
    assert [r.headers["Authorization"] for r in prom.received] == ["Bearer ya29.first", "Bearer ya29.second"]
    assert all(r.headers["X-Scope-OrgID"] == "tenant-1" for r in prom.received)


def test_a_failing_token_factory_is_an_auth_error(prom: FakePrometheus, errors: list[tuple[str, str]]) -> None:
    def expired() -> dict[str, str]:
        raise RuntimeError("refresh failed")

    with capture_logs(), source_for(prom, errors, headers_factory=expired) as source:
        counts, error = source.counts(60)
    assert counts == {}
    assert error == "auth: headers_factory: RuntimeError: refresh failed"
    assert errors == [(prom.url, "auth")]
    assert prom.received == []


def test_injected_client_is_used_and_left_open(prom: FakePrometheus) -> None:
    with httpx.Client() as client:
        with PromQLSource(prom.url, http_client=client) as source:
            assert source.counts(60)[1] is None
        assert not client.is_closed


# --- errors -----------------------------------------------------------------------------------------------


def _answer(answer: Answer) -> Callable[[Received], Answer]:
    return lambda _: answer


@pytest.mark.parametrize(
    ("answer", "reason", "detail"),
    [
        (
            as_json({"status": "error", "errorType": "bad_data", "error": "1:5: parse error"}, 400),
            "http_status",
            "HTTP 400: bad_data: 1:5: parse error",
        ),
        (
            as_json({"status": "error", "errorType": "timeout", "error": "query timed out in expression eval"}, 503),
            "http_status",
            "HTTP 503: timeout: query timed out",
        ),
        ((503, b"<html>\n<body>upstream connect error</body></html>", "text/html"), "http_status", "HTTP 503: <html>"),
        ((502, b"", "text/plain"), "http_status", "HTTP 502: empty body"),
        (
            as_json({"status": "error", "errorType": "execution", "error": "many-to-many matching"}),
            "query",
            "execution: many-to-many matching",
        ),
        ((200, b'{"status": "success", "data": {"resultType": "vec', "application/json"), "parse", "invalid JSON"),
        ((200, b"\xff\xfe not json", "application/json"), "parse", "invalid JSON"),
        (as_json(["not", "an", "object"]), "parse", "not a JSON object"),
        (
            as_json({"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "parse",
            "got 'matrix'",
        ),
        (as_json({"status": "success", "data": {"resultType": "scalar", "result": [NOW, "1"]}}), "parse", "scalar"),
        (as_json({"status": "success"}), "parse", "instant vector"),
        (
            as_json({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}),
            "parse",
            "malformed vector element",
        ),
        (as_json(vector(({"model": PRO}, "twelve"))), "parse", "malformed vector element"),
        (as_json(vector(({"model": 7}, "1"))), "parse", "malformed labels"),  # type: ignore[dict-item]
    ],
    ids=[
        "400-bad-data",
        "503-timeout",
        "503-html",
        "502-empty",
        "status-error",
        "truncated-json",
        "binary",
        "json-list",
        "matrix",
        "scalar",
        "no-data",
        "no-value",
        "bad-number",
        "bad-labels",
    ],
)
def test_errors_become_an_error_string(
    prom: FakePrometheus, errors: list[tuple[str, str]], answer: Answer, reason: str, detail: str
) -> None:
    prom.answer = _answer(answer)
    with capture_logs(), source_for(prom, errors) as source:
        counts, error = source.counts(60)
        status = source.status()[prom.url]
    assert reason in PROMQL_ERROR_REASONS
    assert counts == {}
    assert error is not None
    assert error.startswith(f"{reason}: ")
    assert detail in error
    assert errors == [(prom.url, reason)]
    assert status.ok is False
    assert status.last_error == error


def test_refused_connection(errors: list[tuple[str, str]]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with capture_logs(), PromQLSource(url, on_error=lambda t, r: errors.append((t, r))) as source:
        counts, error = source.counts(60)
    assert counts == {}
    assert error is not None
    assert error.startswith("connect: ")
    assert errors == [(url, "connect")]


def test_slow_server_times_out(prom: FakePrometheus, errors: list[tuple[str, str]]) -> None:
    prom.delay_s = 10
    with capture_logs(), source_for(prom, errors, timeout_s=0.3) as source:
        counts, error = source.counts(60)
    assert counts == {}
    assert error is not None
    assert error.startswith("timeout: ")
    assert errors == [(prom.url, "timeout")]


def test_oversized_answer_is_refused(prom: FakePrometheus, errors: list[tuple[str, str]]) -> None:
    with capture_logs(), source_for(prom, errors, max_bytes=100) as source:
        _, error = source.counts(60)
    assert error is not None
    assert error.startswith("too_large: ")


def test_logs_once_per_failure_streak_and_on_recovery(prom: FakePrometheus) -> None:
    failing = True
    prom.answer = lambda _: (503, b"unavailable", "text/plain") if failing else as_json(REALISTIC)
    with capture_logs() as logs, source_for(prom) as source:
        for _ in range(3):
            assert source.counts(60)[1] is not None
        failing = False
        assert source.counts(60)[1] is None
    assert [(e["event"], e.get("failures")) for e in logs] == [
        ("nbmon.source.failed", None),
        ("nbmon.source.recovered", 3),
    ]
    assert logs[0]["source"] == "promql"
    assert logs[0]["reason"] == "http_status"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"base_url": "localhost:9090"}, "base_url"),
        ({"base_url": "http://p:9090", "query_template": "sum(rate(x[5m]))"}, "query_template"),
        ({"base_url": "http://p:9090", "timeout_s": 0}, "timeout_s"),
        ({"base_url": "http://p:9090", "align_s": 0}, "align_s"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PromQLSource(**kwargs)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_aligned_sources_ask_for_the_same_instant_on_the_grid(method: Literal["GET", "POST"]) -> None:
    """Fleet mode: sidecars ticking at different moments ask for one instant, half a step back at least (a scrape
    in flight at the grid instant is stored by then); unaligned, Prometheus evaluates at its own now."""
    times: list[str | None] = []

    def respond(request: Request) -> Reply:
        form = request.query if request.method == "GET" else request.form()
        times.append(form.get("time", [None])[0])
        return Reply.json(REALISTIC)

    with LoopbackServer(respond) as server:
        for now in (1000.49, 1000.5, 1000.9, 1001.49):
            with PromQLSource(server.url, method=method, align_s=1.0, wall=functools.partial(float, now)) as source:
                assert source.counts(60)[1] is None
        with PromQLSource(server.url, method=method) as source:
            assert source.counts(60)[1] is None
    assert times == ["999.000", "1000.000", "1000.000", "1000.000", None]
