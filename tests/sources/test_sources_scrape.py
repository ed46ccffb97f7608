"""ScrapeSource against real HTTP servers: prometheus_client's own exporter and a fake for broken targets."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app, start_http_server
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from structlog.testing import capture_logs

from monitor.shim.metrics import ShimMetrics
from monitor.signals import CounterSource, Series
from monitor.sources import (
    ACCEPT,
    SCRAPE_ERROR_REASONS,
    ExpositionError,
    ScrapeSource,
    parse_exposition,
)
from tests.support.constants import FLASH, PRO
from tests.support.http import LoopbackServer, Reply, Request, free_port

OK = Series(PRO, "200", "ok")
UNAVAILABLE = Series(PRO, "503", "unavailable")
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def attempts(metrics: ShimMetrics, model: str, code: str, error_class: str, n: int = 1) -> None:
    """n HTTP attempts through the shim's own hot-path API."""
    for _ in range(n):
        metrics.record_attempt(model, code, error_class, 0.5)


# --- servers ----------------------------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = TEXT_TYPE
    delay_s: float = 0.0
    send_length: bool = True


class FakeTarget:
    """A /metrics server whose answer per path is set by the test: status, body, type, delay."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.accept_headers: list[str] = []
        self.stop = threading.Event()
        self.server = LoopbackServer(self._respond)

    def _respond(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply(501)
        self.accept_headers.append(request.headers.get("Accept", ""))
        route = self.routes.get(request.path, Route(b"not found\n", status=404))
        if route.delay_s:
            self.stop.wait(route.delay_s)  # teardown wakes it, so the server closes promptly
        return Reply(route.status, route.body, route.content_type, send_length=route.send_length)

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def close(self) -> None:
        self.stop.set()
        self.server.close()


@pytest.fixture
def fake() -> Iterator[FakeTarget]:
    server = FakeTarget()
    yield server
    server.close()


@dataclass
class App:
    """A real instrumented registry served over HTTP by prometheus_client's own WSGI app."""

    registry: CollectorRegistry
    metrics: ShimMetrics
    url: str


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def apps() -> Iterator[list[App]]:
    """Two apps: make_wsgi_app is what start_http_server serves, here with a short shutdown poll."""
    servers: list[tuple[WSGIServer, threading.Thread]] = []
    result = []
    for _ in range(2):
        registry = CollectorRegistry()
        httpd = make_server("127.0.0.1", 0, make_wsgi_app(registry), ThreadingWSGIServer, handler_class=_QuietHandler)
        thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        servers.append((httpd, thread))
        result.append(App(registry, ShimMetrics(registry), f"http://127.0.0.1:{httpd.server_port}/metrics"))
    yield result
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


def openmetrics_text(registry: CollectorRegistry) -> bytes:
    body: bytes = generate_openmetrics(registry)
    return body


def refused_url() -> str:
    return f"http://127.0.0.1:{free_port()}/metrics"


class Errors:
    """The injected on_error callback: a plain list of (target, reason)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, target: str, reason: str) -> None:
        self.calls.append((target, reason))

    def reasons(self) -> list[str]:
        return [reason for _, reason in self.calls]


def exposition(*lines: str) -> bytes:
    header = "# HELP nbmon_requests_total Requests.\n# TYPE nbmon_requests_total counter\n"
    return (header + "".join(f"{line}\n" for line in lines)).encode()


def sample(series: Series, value: float) -> str:
    model, code, error_class = series
    return f'nbmon_requests_total{{model="{model}",code="{code}",error_class="{error_class}"}} {value}'


# --- real exporters ---------------------------------------------------------------------------------------


def test_sums_two_real_targets_per_series(apps: list[App]) -> None:
    first, second = apps
    attempts(first.metrics, PRO, "200", "ok", 7)
    attempts(first.metrics, PRO, "503", "unavailable", 3)
    attempts(second.metrics, PRO, "200", "ok", 5)
    attempts(second.metrics, FLASH, "429", "rate_limited", 2)
    second.metrics.record_generation(PRO, "ok", 1.0, "1K", (0, 0), 0.0, (0, 0, 0), None)  # another metric: ignored
    times = iter([10.0, 11.0, 12.0])
    with ScrapeSource([first.url, second.url], clock=lambda: next(times)) as source:
        reading = source.read()
        status = source.status()
    assert reading.ok
    assert reading.error is None
    assert reading.at == 12.0
    assert dict(reading.values) == {OK: 12.0, UNAVAILABLE: 3.0, Series(FLASH, "429", "rate_limited"): 2.0}
    assert status[first.url].ok
    assert status[first.url].last_success_at == 10.0
    assert status[second.url].last_success_at == 11.0


def test_an_http_proxy_in_the_environment_is_not_used(apps: list[App], monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    attempts(apps[0].metrics, PRO, "200", "ok", 4)
    with ScrapeSource([apps[0].url]) as source:
        reading = source.read()
    assert reading.ok, reading.error
    assert dict(reading.values) == {OK: 4.0}


def test_reads_prometheus_client_start_http_server() -> None:
    registry = CollectorRegistry()
    attempts(ShimMetrics(registry), PRO, "503", "unavailable", 2)
    httpd, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        with ScrapeSource([f"http://127.0.0.1:{httpd.server_address[1]}/metrics"]) as source:
            reading = source.read()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert reading.ok
    assert dict(reading.values) == {UNAVAILABLE: 2.0}


def test_satisfies_the_counter_source_protocol(apps: list[App]) -> None:
    with ScrapeSource([apps[0].url]) as source:
        typed: CounterSource = source
        assert typed.name == "scrape"
        assert typed.read().values == {}  # no request made yet: no series, and still ok


def test_counter_increase_is_seen_on_the_next_read(apps: list[App]) -> None:
    attempts(apps[0].metrics, PRO, "503", "unavailable")
    with ScrapeSource([apps[0].url]) as source:
        assert source.read().values[UNAVAILABLE] == 1.0
        attempts(apps[0].metrics, PRO, "503", "unavailable", 4)
        assert source.read().values[UNAVAILABLE] == 5.0


def test_refused_target_gives_a_partial_read_and_counts_connect(apps: list[App]) -> None:
    attempts(apps[0].metrics, PRO, "200", "ok", 4)
    down = refused_url()
    errors = Errors()
    with ScrapeSource([apps[0].url, down], on_error=errors) as source:
        reading = source.read()
        status = source.status()
    assert reading.ok
    assert dict(reading.values) == {OK: 4.0}
    assert errors.calls == [(down, "connect")]
    assert status[down].ok is False
    assert status[down].last_reason == "connect"
    assert status[down].last_success_at is None
    assert status[down].errors == {"connect": 1}
    assert status[apps[0].url].ok


def test_all_targets_down_is_a_failed_read() -> None:
    errors = Errors()
    down = [refused_url(), refused_url()]
    with ScrapeSource(down, on_error=errors) as source:
        reading = source.read()
    assert not reading.ok
    assert reading.values == {}
    assert reading.error is not None
    assert reading.error.startswith("all 2 targets failed")
    assert "connect" in reading.error
    assert errors.reasons() == ["connect", "connect"]


def test_openmetrics_answer_is_accepted(apps: list[App], fake: FakeTarget) -> None:
    attempts(apps[0].metrics, PRO, "503", "unavailable", 9)
    body = openmetrics_text(apps[0].registry)
    assert body.endswith(b"# EOF\n")
    assert b"nbmon_requests_created" in body
    fake.routes["/om"] = Route(body, content_type=OPENMETRICS_TYPE)
    fake.routes["/om-as-text"] = Route(body)  # mislabelled, recognised by its # EOF
    with ScrapeSource([fake.url("/om")]) as source:
        assert dict(source.read().values) == {UNAVAILABLE: 9.0}  # _created samples ignored
    with ScrapeSource([fake.url("/om-as-text")]) as source:
        assert dict(source.read().values) == {UNAVAILABLE: 9.0}


def test_sends_an_accept_header_preferring_the_text_format(fake: FakeTarget) -> None:
    fake.routes["/metrics"] = Route(exposition(sample(OK, 1)))
    with ScrapeSource([fake.url("/metrics")]) as source:
        source.read()
    assert fake.accept_headers == [ACCEPT]
    assert ACCEPT.startswith("text/plain;version=0.0.4")


# --- broken targets ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Route(b"boom", status=500), "http_status"),
        (Route(b"", status=404), "http_status"),
        (Route(b"<!doctype html>\n<html><body>login</body></html>\n", content_type="text/html"), "parse"),
        (Route(b"<!doctype html>\n<html><body>login</body></html>\n"), "parse"),  # HTML labelled text/plain
        (Route(exposition(sample(OK, 12))[:-4]), "parse"),  # truncated mid-line: `} 12` must not read `} 1`
        (Route(b'nbmon_requests_total{model="a",co\n'), "parse"),
        (Route(b"\xff\xfe\x00garbage\n"), "parse"),
        (Route(generate_latest(CollectorRegistry()) + b"\x00\x01\x02\n"), "parse"),
        (Route(b'{"not": "metrics"}\n', content_type="application/json"), "parse"),
    ],
    ids=["500", "404", "html", "html-as-text", "truncated", "cut-labels", "binary", "nul-bytes", "json"],
)
def test_broken_target_is_counted_by_reason(fake: FakeTarget, apps: list[App], route: Route, reason: str) -> None:
    attempts(apps[0].metrics, PRO, "200", "ok")
    fake.routes["/bad"] = route
    errors = Errors()
    with ScrapeSource([apps[0].url, fake.url("/bad")], on_error=errors) as source:
        reading = source.read()
        status = source.status()[fake.url("/bad")]
    assert reason in SCRAPE_ERROR_REASONS
    assert errors.calls == [(fake.url("/bad"), reason)]
    assert reading.ok  # the other target answered
    assert dict(reading.values) == {OK: 1.0}
    assert status.last_reason == reason
    assert status.last_error is not None
    assert status.last_error.startswith(f"{reason}: ")


def test_slow_target_times_out(fake: FakeTarget) -> None:
    fake.routes["/slow"] = Route(exposition(sample(OK, 1)), delay_s=10)
    errors = Errors()
    with ScrapeSource([fake.url("/slow")], timeout_s=0.3, on_error=errors) as source:
        reading = source.read()
    assert not reading.ok
    assert errors.reasons() == ["timeout"]


@pytest.mark.parametrize("send_length", [True, False], ids=["declared", "undeclared"])
def test_oversized_body_is_refused(fake: FakeTarget, send_length: bool) -> None:
    fake.routes["/big"] = Route(exposition(*[sample(OK, 1)] * 200), send_length=send_length)
    errors = Errors()
    with ScrapeSource([fake.url("/big")], max_bytes=4096, on_error=errors) as source:
        reading = source.read()
    assert not reading.ok
    assert errors.reasons() == ["too_large"]


def test_default_limit_is_20_mb(fake: FakeTarget) -> None:
    fake.routes["/huge"] = Route(b"# " + b"x" * (21 * 1024 * 1024) + b"\n", send_length=False)
    errors = Errors()
    with ScrapeSource([fake.url("/huge")], on_error=errors) as source:
        assert not source.read().ok
    assert errors.reasons() == ["too_large"]


def test_random_bytes_and_truncations_never_crash(fake: FakeTarget, apps: list[App]) -> None:
    for code in ("200", "429", "500", "503"):
        attempts(apps[0].metrics, PRO, code, "x")
    good = generate_latest(apps[0].registry)
    rng = random.Random(4)
    bodies = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(15)]
    bodies += [good[: rng.randrange(1, len(good))] for _ in range(15)]
    bodies += [_flip(good, rng) for _ in range(15)]
    errors = Errors()
    with ScrapeSource([fake.url("/fuzz")], on_error=errors) as source:
        for body in bodies:
            fake.routes["/fuzz"] = Route(body)
            reading = source.read()  # never raises
            assert reading.ok or reading.error
            assert all(value >= 0 for value in reading.values.values())
    assert set(errors.reasons()) <= {"parse"}


def test_parse_exposition_raises_only_exposition_error() -> None:
    registry = CollectorRegistry()
    attempts(ShimMetrics(registry), PRO, "503", "unavailable", 2)
    texts = [generate_latest(registry).decode(), openmetrics_text(registry).decode()]
    rng = random.Random(9)
    for _ in range(2000):
        text = rng.choice(texts)
        mangled = _flip(text.encode(), rng).decode("utf-8", "replace") if rng.random() < 0.5 else text
        try:
            values = parse_exposition(mangled[: rng.randrange(len(mangled) + 1)])
        except ExpositionError:
            continue
        assert all(value >= 0 for value in values.values())


def _flip(body: bytes, rng: random.Random) -> bytes:
    mutable = bytearray(body)
    for _ in range(rng.randrange(1, 8)):
        mutable[rng.randrange(len(mutable))] = rng.randrange(256)
    return bytes(mutable)


def test_parse_accepts_go_style_counters_and_other_labels() -> None:
    text = "\n".join(
        [
            "# TYPE nbmon_requests_total counter",  # Go/Java clients name the family with _total
            'nbmon_requests_total{model="m",code="503",error_class="unavailable",pod="a"} 2',
            'nbmon_requests_total{model="m",code="503",error_class="unavailable",pod="b"} 3',
            'nbmon_requests_total{model="m",code="200",error_class="ok"} NaN',  # not a count: skipped
            'nbmon_requests_total{model="m",code="500"} 1 1700000000000',  # no error_class, a timestamp
            "other_total 99",
            "",
        ]
    )
    assert parse_exposition(text) == {Series("m", "503", "unavailable"): 5.0, Series("m", "500", ""): 1.0}
    assert parse_exposition(text, metric="nbmon_requests") == parse_exposition(text)
    assert parse_exposition("") == {}


# --- sums that stop being comparable ----------------------------------------------------------------------


def test_failed_target_series_are_absent_not_zero(fake: FakeTarget) -> None:
    flash_only = Series(FLASH, "200", "ok")
    fake.routes["/a"] = Route(exposition(sample(OK, 100)))
    fake.routes["/b"] = Route(exposition(sample(OK, 50), sample(flash_only, 8)))
    errors = Errors()
    with ScrapeSource([fake.url("/a"), fake.url("/b")], on_error=errors) as source:
        assert dict(source.read().values) == {OK: 150.0, flash_only: 8.0}
        fake.routes["/b"] = Route(b"down", status=503)
        first_down = source.read()
        still_down = source.read()
        fake.routes["/a"] = Route(exposition(sample(OK, 110)))
        fake.routes["/b"] = Route(exposition(sample(OK, 70), sample(flash_only, 9)))
        back = source.read()
        after = source.read()
    # The read where B drops out: OK would fall from 150 to 100 (a false reset), so it is absent.
    assert first_down.ok
    assert dict(first_down.values) == {}
    # While B stays down, OK is A's alone, consistently; B's own series stays absent, never 0.
    assert dict(still_down.values) == {OK: 100.0}
    # The read where B returns would jump by B's whole count: absent once, then summed again.
    assert dict(back.values) == {flash_only: 9.0}
    assert dict(after.values) == {OK: 180.0, flash_only: 9.0}
    assert errors.reasons() == ["http_status", "http_status"]


def test_reset_hidden_in_a_sum_makes_the_series_absent_once(fake: FakeTarget) -> None:
    fake.routes["/a"] = Route(exposition(sample(UNAVAILABLE, 100)))
    fake.routes["/b"] = Route(exposition(sample(UNAVAILABLE, 100)))
    with ScrapeSource([fake.url("/a"), fake.url("/b")]) as source:
        assert dict(source.read().values) == {UNAVAILABLE: 200.0}
        fake.routes["/b"] = Route(exposition(sample(UNAVAILABLE, 3)))  # B restarted
        fake.routes["/a"] = Route(exposition(sample(UNAVAILABLE, 110)))
        assert dict(source.read().values) == {}  # 113 < 200 would read as a reset of the sum
        fake.routes["/b"] = Route(exposition(sample(UNAVAILABLE, 5)))
        assert dict(source.read().values) == {UNAVAILABLE: 115.0}


def test_single_target_reset_is_left_to_the_window(fake: FakeTarget) -> None:
    fake.routes["/a"] = Route(exposition(sample(UNAVAILABLE, 100)))
    with ScrapeSource([fake.url("/a")]) as source:
        source.read()
        fake.routes["/a"] = Route(exposition(sample(UNAVAILABLE, 2)))
        assert dict(source.read().values) == {UNAVAILABLE: 2.0}  # a plain counter reset the window detects


# --- logging, status and construction ---------------------------------------------------------------------


def test_logs_once_per_failure_streak_and_on_recovery(fake: FakeTarget) -> None:
    fake.routes["/m"] = Route(b"x", status=500)
    url = fake.url("/m")
    with capture_logs() as logs, ScrapeSource([url]) as source:
        for _ in range(3):
            source.read()
        fake.routes["/m"] = Route(b"maintenance", status=503)
        source.read()  # same streak, another status: still no new line
        fake.routes["/m"] = Route(exposition(sample(OK, 1)))
        source.read()
        fake.routes["/m"] = Route(b"x", status=500)
        source.read()
        status = source.status()[url]
    ours = [e for e in logs if e["event"].startswith("nbmon.source.")]
    assert [(e["event"], e.get("reason")) for e in ours] == [
        ("nbmon.source.failed", "http_status"),
        ("nbmon.source.recovered", None),
        ("nbmon.source.failed", "http_status"),
    ]
    assert ours[1]["failures"] == 4
    assert ours[0]["log_level"] == "warning"
    assert ours[0]["target"] == url
    assert status.errors == {"http_status": 5}
    assert status.consecutive_failures == 1


def test_credentials_in_a_target_stay_out_of_logs_and_errors() -> None:
    url = refused_url().replace("http://", "http://user:s3cret@")
    with capture_logs() as logs, ScrapeSource([url]) as source:
        reading = source.read()
    assert reading.error is not None
    assert "s3cret" not in reading.error
    assert "s3cret" not in repr(logs)


def test_a_failing_on_error_callback_does_not_break_the_read() -> None:
    def broken(target: str, reason: str) -> None:
        raise RuntimeError("metrics backend gone")

    with capture_logs(), ScrapeSource([refused_url()], on_error=broken) as source:
        reading = source.read()
    assert not reading.ok
    assert reading.error is not None


def test_uses_an_injected_client_and_leaves_it_open(apps: list[App]) -> None:
    attempts(apps[0].metrics, PRO, "200", "ok")
    with httpx.Client() as client:
        with ScrapeSource([apps[0].url], http_client=client) as source:
            assert dict(source.read().values) == {OK: 1.0}
        assert not client.is_closed


@pytest.mark.parametrize(
    "targets",
    [[], ["http://a/metrics", "http://a/metrics"], ["ftp://a/metrics"], ["not a url"]],
    ids=["empty", "duplicate", "scheme", "garbage"],
)
def test_bad_targets_fail_at_construction(targets: list[str]) -> None:
    with pytest.raises(ValueError, match=r"ScrapeSource\.targets"):
        ScrapeSource(targets)


def test_a_bare_string_is_not_a_target_list() -> None:
    with pytest.raises(TypeError):
        ScrapeSource("http://a/metrics")


def test_status_before_any_read_is_unknown() -> None:
    with ScrapeSource(["http://127.0.0.1:9/metrics"]) as source:
        status = source.status()["http://127.0.0.1:9/metrics"]
    assert status.ok is None
    assert status.last_attempt_at is None
    assert status.errors == {}
