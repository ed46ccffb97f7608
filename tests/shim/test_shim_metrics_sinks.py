"""The folded sink exposes exactly what prometheus_client's own objects would; multiprocess mode uses the latter."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from monitor.shim.metrics import ShimMetrics
from monitor.shim.sinks import DURATION_BUCKETS, ClientShimMetrics, FoldedShimMetrics, GenerationNotes
from monitor.simulator import SimulatorServer
from monitor.testing import InternalErrorCollector
from tests.support.constants import FLASH, PRO

# Durations on, just under and just over bucket bounds, zero, negative, past the last bound.
DURATIONS = (0.0, -1.0, 0.1, 0.10000001, 1, 2.5, 30, 599.999, 600, 601, 1e9, math.inf, math.nan, *DURATION_BUCKETS)


def drive(sink: FoldedShimMetrics | ClientShimMetrics) -> None:
    for i, seconds in enumerate(DURATIONS):
        model = (PRO, FLASH, "other")[i % 3]
        code, error_class = ("200", "503", "none", "429")[i % 4], ("ok", "overloaded", "timeout")[i % 3]
        sink.record_attempt(model, code, error_class, seconds, ("spend_cap", None)[i % 2])
        sink.record_generation(
            model,
            ("ok", "no_image", "safety_block")[i % 3],
            seconds,
            ("1K", "2K", "other")[i % 3],
            (i % 2, i % 3),  # zeros are not counted
            (0.134, 0.0, None)[i % 3],  # a price, a free model, nothing billed
            (i, 0, 3 * i),
            ("output", "IMAGE_SAFETY") if i % 3 == 2 else None,
            ("standard", "priority", "batch")[i % 3],
            (
                None,
                GenerationNotes(lifecycle="retired"),
                GenerationNotes(served_model=FLASH, served_tier="standard", requested_tier="priority"),
            )[i % 3],
        )


def without_created(text: bytes) -> list[str]:
    return [line for line in text.decode().splitlines() if "_created" not in line]


def created_series(text: bytes) -> list[str]:
    return [line.rsplit(" ", 1)[0] for line in text.decode().splitlines() if "_created" in line]


@pytest.fixture
def both() -> tuple[CollectorRegistry, CollectorRegistry]:
    folded, client = CollectorRegistry(), CollectorRegistry()
    drive(FoldedShimMetrics(folded))
    drive(ClientShimMetrics(client))
    return folded, client


@pytest.mark.parametrize("render", [generate_latest, openmetrics_latest], ids=["prometheus-text", "openmetrics"])
def test_the_folded_sink_exposes_the_same_text_as_prometheus_client(
    both: tuple[CollectorRegistry, CollectorRegistry], render: object
) -> None:
    folded, client = (render(r) for r in both)  # type: ignore[operator]
    assert b"nbmon_requests_total" in folded and b'le="+Inf"' in folded
    for name in (b"nbmon_model_reroutes", b"nbmon_deprecated_model_calls", b"nbmon_service_tier_downgrades"):
        assert name + b"_total{" in folded
    assert b'nbmon_error_causes_total{cause="spend_cap"' in folded
    assert without_created(folded) == without_created(client)
    # _created carries a creation time, different by nature; the same series carry one.
    assert created_series(folded) == created_series(client) != []


@pytest.fixture
def created_off() -> Iterator[None]:
    prometheus_client.disable_created_metrics()
    yield
    prometheus_client.enable_created_metrics()


def test_disable_created_metrics_is_followed(created_off: None) -> None:
    registry = CollectorRegistry()
    drive(FoldedShimMetrics(registry))
    text = generate_latest(registry)
    assert b"nbmon_generations_total" in text and b"_created" not in text


def test_a_free_model_has_a_cost_series_and_an_unpriced_one_none() -> None:
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry)
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), 0.0, (0, 0, 0), None)
    sink.record_generation(FLASH, "ok", 1.0, "1K", (1, 0), None, (0, 0, 0), None)
    value = registry.get_sample_value
    assert (
        value("nbmon_estimated_cost_usd_total", {"model": PRO, "image_size": "1K", "service_tier": "standard"}) == 0.0
    )
    assert (
        value("nbmon_estimated_cost_usd_total", {"model": FLASH, "image_size": "1K", "service_tier": "standard"})
        is None
    )


def test_a_nan_duration_reaches_the_sum_and_no_bucket() -> None:
    registry = CollectorRegistry()
    FoldedShimMetrics(registry).record_attempt(PRO, "200", "ok", math.nan)
    value = registry.get_sample_value
    labels = {"model": PRO, "error_class": "ok"}
    assert value("nbmon_request_duration_seconds_count", labels) == 0.0
    assert math.isnan(value("nbmon_request_duration_seconds_sum", labels) or 0.0)


def test_bucket_of_a_value_on_a_bound_is_that_bound() -> None:
    registry = CollectorRegistry()
    FoldedShimMetrics(registry).record_attempt(PRO, "200", "ok", 0.5)
    value = registry.get_sample_value
    labels = {"model": PRO, "error_class": "ok"}
    assert value("nbmon_request_duration_seconds_bucket", {**labels, "le": "0.25"}) == 0.0
    assert value("nbmon_request_duration_seconds_bucket", {**labels, "le": "0.5"}) == 1.0
    assert value("nbmon_request_duration_seconds_bucket", {**labels, "le": "+Inf"}) == 1.0
    assert value("nbmon_request_duration_seconds_sum", labels) == 0.5


def test_concurrent_calls_and_scrapes_lose_nothing() -> None:
    """Eight threads record while another scrapes in a loop: folds at scrapes and on the call path race appends."""
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, fold_every=64)
    threads, calls = 8, 2000
    done = threading.Event()
    scrapes = 0

    def work() -> None:
        for _ in range(calls):
            sink.record_attempt(PRO, "200", "ok", 1.0)
            sink.record_generation(PRO, "ok", 1.0, "1K", (1, 2), 0.134, (14, 1120, 210), None)

    def scrape() -> None:
        nonlocal scrapes
        while not done.is_set():
            generate_latest(registry)
            scrapes += 1

    scraper = threading.Thread(target=scrape)
    scraper.start()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    done.set()
    scraper.join()
    assert scrapes > 0
    n = threads * calls
    value = registry.get_sample_value
    assert value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) == n
    assert value("nbmon_generation_duration_seconds_count", {"model": PRO, "error_class": "ok"}) == n
    assert value("nbmon_images_total", {"model": PRO, "image_size": "1K", "kind": "thought"}) == 2 * n
    assert value("nbmon_tokens_total", {"model": PRO, "type": "output"}) == 1120 * n
    assert value(
        "nbmon_estimated_cost_usd_total", {"model": PRO, "image_size": "1K", "service_tier": "standard"}
    ) == pytest.approx(0.134 * n)


def test_a_registry_that_has_one_of_our_names_refuses_the_whole_sink() -> None:
    registry = CollectorRegistry()
    Counter("nbmon_generations", "someone else's", registry=registry)
    with pytest.raises(ValueError, match="nbmon_generations"):
        FoldedShimMetrics(registry)
    assert [family.name for family in registry.collect()] == ["nbmon_generations"]


@pytest.mark.parametrize("name", ["PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"])
@pytest.mark.parametrize("value", ["/nonexistent", ""], ids=["set", "set-empty"])
def test_default_is_folded_and_multiprocess_mode_is_not(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    """As prometheus_client decides (values.get_value_class): the name being present is enough."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert ShimMetrics(CollectorRegistry()).folded
    monkeypatch.setenv(name, value)
    assert not ShimMetrics(CollectorRegistry()).folded
    assert ShimMetrics(CollectorRegistry(), folded=True).folded


# Runs in a fresh interpreter: prometheus_client picks its multiprocess value class at import.
_APP = """
import sys
from google import genai
from google.genai import types
import monitor
assert monitor.instrument()
client = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=sys.argv[1]))
config = {"response_modalities": ["TEXT", "IMAGE"]}
for _ in range(3):
    client.models.generate_content(model="gemini-3-pro-image", contents="x", config=config)
"""


def test_multiprocess_mode_counts_through_prometheus_clients_files(tmp_path: Path) -> None:
    """A gunicorn-style app: two worker processes, one MultiProcessCollector sums their files."""
    with SimulatorServer() as sim:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "NO_PROXY": "127.0.0.1"}
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", _APP, sim.url], env=env, capture_output=True, text=True, check=False
            )
            assert done.returncode == 0, done.stderr[-2000:]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    value = registry.get_sample_value
    assert value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) == 6
    assert value("nbmon_generations_total", {"model": PRO, "error_class": "ok"}) == 6
    assert value("nbmon_request_duration_seconds_count", {"model": PRO, "error_class": "ok"}) == 6
    assert value("nbmon_images_total", {"model": PRO, "image_size": "1K", "kind": "final"}) == 6


def test_records_wait_for_a_scrape_and_a_full_queue_is_folded_in_the_call() -> None:
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, fold_every=3)
    sink.record_attempt(PRO, "200", "ok", 1.0)
    sink.record_attempt(PRO, "200", "ok", 1.0)
    assert sink.waiting() == 2
    sink.record_attempt(PRO, "503", "overloaded", 1.0)  # the third fills the queue: folded here, nothing waits
    assert sink.waiting() == 0
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), 0.134, (0, 0, 0), None)
    assert sink.waiting() == 1
    value = registry.get_sample_value  # a scrape folds what waits
    assert value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) == 2
    assert value("nbmon_requests_total", {"model": PRO, "code": "503", "error_class": "overloaded"}) == 1
    assert value("nbmon_generations_total", {"model": PRO, "error_class": "ok"}) == 1
    assert sink.waiting() == 0


def test_a_fold_every_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="fold_every"):
        FoldedShimMetrics(CollectorRegistry(), fold_every=0)


def test_created_is_the_time_of_a_series_first_record_not_of_the_scrape() -> None:
    now = [100.0]
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, clock=lambda: now[0])
    sink.record_attempt(PRO, "200", "ok", 1.0)
    now[0] = 200.0
    sink.record_attempt(PRO, "200", "ok", 1.0)
    sink.record_attempt(FLASH, "200", "ok", 1.0)
    now[0] = 300.0  # the scrape's time
    value = registry.get_sample_value
    assert value("nbmon_requests_created", {"model": PRO, "code": "200", "error_class": "ok"}) == 100.0
    assert value("nbmon_request_duration_seconds_created", {"model": PRO, "error_class": "ok"}) == 100.0
    assert value("nbmon_requests_created", {"model": FLASH, "code": "200", "error_class": "ok"}) == 200.0


def test_a_record_that_cannot_be_folded_is_reported_and_leaves_no_half() -> None:
    errors: list[Exception] = []
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, on_error=errors.append)
    sink.record_attempt(PRO, "200", "ok", 1.0)
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), 0.1, (0, 0, 0), None)
    # Odd values on the same series, each failing after a part of its record could have been added:
    sink.record_attempt(PRO, "200", "ok", Decimal("1.5"))  # type: ignore[arg-type]
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), Decimal("0.1"), (0, 0, 0), None)  # type: ignore[arg-type]
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), None, (0, 0, 0), ("output",))  # type: ignore[arg-type]
    sink.record_generation(PRO, "ok", 1.0, "1K", ("one", 0), None, (0, 0, 0), None)  # type: ignore[arg-type]
    sink.record_generation(PRO, "ok", 1.0, "1K", (1, 0), -0.1, (0, 0, 0), None)  # a negative price: refused
    text = generate_latest(registry).decode()
    assert [type(error) for error in errors] == [TypeError, TypeError, ValueError, TypeError, ValueError]
    assert "cannot go down" in str(errors[-1])
    assert f'nbmon_requests_total{{code="200",error_class="ok",model="{PRO}"}} 1.0' in text
    assert f'nbmon_request_duration_seconds_count{{error_class="ok",model="{PRO}"}} 1.0' in text
    assert f'nbmon_request_duration_seconds_sum{{error_class="ok",model="{PRO}"}} 1.0' in text
    assert f'nbmon_generations_total{{error_class="ok",model="{PRO}"}} 1.0' in text
    assert f'nbmon_images_total{{image_size="1K",kind="final",model="{PRO}"}} 1.0' in text
    assert f'nbmon_generation_duration_seconds_count{{error_class="ok",model="{PRO}"}} 1.0' in text
    assert "nbmon_blocks_total{" not in text
    assert generate_latest(registry).decode() == text  # and the next scrape works as well


@pytest.mark.telemetry_faults
def test_an_error_reporter_that_raises_reaches_neither_the_scrape_nor_the_call(
    fail_on_swallowed_telemetry_errors: InternalErrorCollector,
) -> None:
    def broken(error: Exception) -> None:
        raise RuntimeError("reporter broken")

    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, fold_every=2, on_error=broken)
    sink.record_attempt(PRO, "200", "ok", "slow")  # type: ignore[arg-type]
    sink.record_attempt(PRO, "200", "ok", 1.0)  # fills the queue: folded in the call, which must not raise
    sink.record_attempt(PRO, "200", "ok", "slow")  # type: ignore[arg-type]
    assert registry.get_sample_value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) == 1
    reported = [(component, type(error)) for component, error in fail_on_swallowed_telemetry_errors.errors]
    assert reported == [("shim.metrics", RuntimeError), ("shim.metrics", TypeError)] * 2


def test_folds_at_any_moment_expose_the_same_text_as_prometheus_client() -> None:
    folded, client = CollectorRegistry(), CollectorRegistry()
    sink = FoldedShimMetrics(folded, fold_every=7)  # folds on the call path, between scrapes, at odd points
    drive(sink)
    generate_latest(folded)
    drive(sink)
    reference = ClientShimMetrics(client)
    drive(reference)
    drive(reference)
    assert without_created(generate_latest(folded)) == without_created(generate_latest(client))


class _RecordingLabel(str):
    """A model label whose hashing, inside a fold, records once more: what a finalizer run by the GC
    in the middle of a fold does (a dropped stream finishing its call on the folding thread)."""

    sink: FoldedShimMetrics | None = None

    def __hash__(self) -> int:
        sink, type(self).sink = type(self).sink, None
        if sink is not None:
            sink.record_attempt(PRO, "200", "ok", 1.0)
        return str.__hash__(self)


def test_a_record_made_during_a_fold_on_the_same_thread_neither_deadlocks_nor_is_lost() -> None:
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry, fold_every=1)  # every record folds in the call
    _RecordingLabel.sink = sink
    caller = threading.Thread(target=sink.record_attempt, args=(_RecordingLabel("odd-model"), "200", "ok", 1.0))
    caller.daemon = True
    caller.start()
    caller.join(timeout=10)
    assert not caller.is_alive(), "the fold deadlocked on the lock its own thread holds"
    value = registry.get_sample_value
    assert value("nbmon_requests_total", {"model": "odd-model", "code": "200", "error_class": "ok"}) == 1
    # The record made inside the fold waited for the next fold (this scrape).
    assert value("nbmon_requests_total", {"model": PRO, "code": "200", "error_class": "ok"}) == 1


class _BlockingLabel(str):
    """A model label whose first hashing, inside a fold, waits: it holds the fold (and its lock) open."""

    entered = threading.Event()
    release = threading.Event()

    def __hash__(self) -> int:
        if not type(self).entered.is_set():
            type(self).entered.set()
            type(self).release.wait(timeout=30)
        return str.__hash__(self)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_child_forked_during_a_fold_can_record_and_be_scraped() -> None:
    """gunicorn-style preload: the fork may land while another thread is folding (holding the lock)."""
    registry = CollectorRegistry()
    sink = FoldedShimMetrics(registry)
    sink.record_attempt(_BlockingLabel("held"), "200", "ok", 1.0)
    folder = threading.Thread(target=sink.fold, daemon=True)
    folder.start()
    assert _BlockingLabel.entered.wait(timeout=10)
    pid = os.fork()
    if pid == 0:  # the child: the other thread is gone, its lock must not be
        code = 1
        try:
            child = FoldedShimMetrics(CollectorRegistry(), fold_every=1)  # a call-path fold, then a scrape
            child.record_attempt(PRO, "200", "ok", 1.0)
            sink.record_attempt(PRO, "200", "ok", 1.0)
            labels = {"model": PRO, "code": "200", "error_class": "ok"}
            code = 0 if registry.get_sample_value("nbmon_requests_total", labels) == 1 else 2
        finally:
            os._exit(code)
    _BlockingLabel.release.set()
    folder.join(timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung on a lock held by a thread it does not have")
