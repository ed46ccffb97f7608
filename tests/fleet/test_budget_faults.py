"""The budget's figures stay right when scrape targets come and go, when Prometheus keeps 15 days, when a counter
says NaN, when a sidecar dies between its Redis write and its save; the stop is saved once per hold."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from monitor.budget.job import BudgetJob, build_spend
from monitor.budget.periods import period
from monitor.budget.spend import COST_METRIC, PROMQL_QUERY, CounterSpend, PromQLSpend, RedisLedger
from monitor.daemon.app import Daemon
from monitor.daemon.config import ConfigErrors, from_mapping
from monitor.fleet.redis_client import connect
from monitor.fleet.settings import FleetSettings
from monitor.signals import Reading, Series
from monitor.sources import PromQLSource
from tests.support.http import LoopbackServer, Reply, Request
from tests.support.redis import RedisServer

NOW = datetime(2026, 11, 27, 20, tzinfo=UTC)  # 12:00 PST
PRO = "gemini-3-pro-image"


@contextmanager
def app_cost() -> Iterator[tuple[Any, Any, str]]:
    """An app's /metrics with the cost counter: (the counter, the server, its URL)."""
    registry = CollectorRegistry()
    cost = Counter(COST_METRIC.removesuffix("_total"), "cost", ["model"], registry=registry)
    cost.labels(PRO).inc(0)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield cost.labels(PRO), server, f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def periods(now: datetime = NOW) -> dict[Any, Any]:
    return {"day": period("day", now), "month": period("month", now)}


def test_a_target_scaled_away_is_not_counted_as_a_reset(tmp_path: Path) -> None:
    """Targets at $100 and $50; one goes; the other reaches $101: $1 was spent, not $101."""
    with app_cost() as (first, _, first_url), app_cost() as (second, second_server, second_url):
        first.inc(100.0)
        second.inc(50.0)
        config = from_mapping(
            {
                "state": {"path": str(tmp_path / "state.json")},
                "source": {"kind": "scrape", "targets": [first_url, second_url]},
                "budget": {"daily_usd": 1000.0, "source": "local"},
            }
        )
        assert config.budget is not None
        spend = build_spend(config, config.budget, config.fleet, None)
        try:
            assert spend.totals(periods(), NOW)["day"] == 0.0  # the baselines
            second.inc(2.0)
            assert spend.totals(periods(), NOW)["day"] == pytest.approx(2.0)
            second_server.shutdown()  # scaled away
            second_server.server_close()
            first.inc(1.0)
            assert spend.totals(periods(), NOW)["day"] == pytest.approx(3.0)
            first.inc(0.5)
            assert spend.totals(periods(), NOW)["day"] == pytest.approx(3.5)
        finally:
            spend.close()


class Retention:
    """A Prometheus keeping 15 days of a fleet spending $10 a day: `increase()` over a window sees at most that."""

    def __init__(self) -> None:
        self.now = NOW
        self.windows: list[int] = []

    def __call__(self, request: Request) -> Reply:
        query = request.query.get("query", [""])[0] or request.form().get("query", [""])[0]
        match = re.search(r"\[(\d+)s\]", query)
        assert match, query
        window = int(match.group(1))
        self.windows.append(window)
        seen = min(window, 15 * 86_400)
        value = 10.0 * seen / 86_400
        result = [{"metric": {}, "value": [self.now.timestamp(), repr(value)]}]
        return Reply.json({"status": "success", "data": {"resultType": "vector", "result": result}})


def test_the_month_is_its_days_so_15_days_of_retention_are_enough() -> None:
    prometheus = Retention()
    with LoopbackServer(prometheus) as server:
        spend = PromQLSpend(PromQLSource(server.url, query_template=PROMQL_QUERY))
        saved: dict[str, Any] = {}
        try:
            for day in range(1, 21):  # noon Pacific on Nov 1..20; the daemon is down on the 10th to 12th
                if day in (10, 11, 12):
                    continue
                now = datetime(2026, 11, day, 20, tzinfo=UTC)
                prometheus.now = now
                if day == 13:  # and restarted from its saved state
                    spend.close()
                    spend = PromQLSpend(PromQLSource(server.url, query_template=PROMQL_QUERY))
                    spend.restore(saved)
                totals = spend.totals(periods(now), now)
                saved = spend.saved()
        finally:
            spend.close()
    assert totals["day"] == pytest.approx(5.0, rel=1e-3)
    # Nov 1 00:00 PDT (07:00 UTC; the day is 25 h long) to Nov 20 12:00 PST: increase() over it would see 15 days.
    month_s = (datetime(2026, 11, 20, 20, tzinfo=UTC) - datetime(2026, 11, 1, 7, tzinfo=UTC)).total_seconds()
    assert totals["month"] == pytest.approx(10.0 * month_s / 86_400, rel=1e-4)
    assert max(prometheus.windows) <= 5 * 86_400  # never more than the days it was down, and a day


def test_a_nan_counter_is_a_read_error_and_the_figures_stay(tmp_path: Path) -> None:
    class Scripted:
        name = "scripted"

        def __init__(self) -> None:
            self.values = [10.0, 11.0, math.nan, math.inf, 12.0]

        def read(self) -> Reading:
            return Reading(at=0.0, values={Series(PRO, "", ""): self.values.pop(0)})

    config = from_mapping(
        {"state": {"path": str(tmp_path / "state.json")}, "budget": {"daily_usd": 100.0, "source": "local"}}
    )
    assert config.budget is not None
    from monitor.budget.spend import LocalLedger

    registry = CollectorRegistry()
    job = BudgetJob(
        config.budget,
        CounterSpend(Scripted(), LocalLedger(), name="local"),
        project="p",
        path=tmp_path / "budget.json",
        registry=registry,
        notify=config.notify,
        submit=None,
        wall=lambda: NOW,
    )
    for _ in range(5):
        job.check()
    assert job.state.periods["day"].spent_usd == pytest.approx(2.0)  # 10 -> 11 -> (NaN, Inf refused) -> 12
    assert registry.get_sample_value("nbmon_budget_read_errors_total", {"source": "local", "reason": "read"}) == 2
    assert "NaN" not in (tmp_path / "budget.json").read_text()


def test_a_sidecar_that_dies_before_its_save_does_not_count_twice(redis_server: RedisServer) -> None:
    settings = FleetSettings(redis_url=redis_server.url, project="banana-prod")

    class Scripted:
        name = "scripted"

        def __init__(self, values: list[float]) -> None:
            self.values = values

        def read(self) -> Reading:
            return Reading(at=0.0, values={Series(PRO, "", ""): self.values.pop(0)})

    counter = Scripted([10.0, 12.0])
    sidecar = CounterSpend(counter, RedisLedger(connect(settings), settings), name="redis")
    other = CounterSpend(Scripted([5.0, 6.0]), RedisLedger(connect(settings), settings), name="redis")
    try:
        sidecar.totals(periods(), NOW)
        other.totals(periods(), NOW)
        saved = sidecar.saved()  # the last save before the crash
        assert sidecar.totals(periods(), NOW)["day"] == pytest.approx(2.0)  # in Redis, never saved: it dies
        assert other.totals(periods(), NOW)["day"] == pytest.approx(3.0)
        # Restarted from the saved state (its holder id with it): the same $2 is set again, not added again.
        restarted = CounterSpend(Scripted([12.0]), RedisLedger(connect(settings), settings), name="redis")
        restarted.restore(saved)
        assert isinstance(restarted.ledger, RedisLedger) and isinstance(sidecar.ledger, RedisLedger)
        assert restarted.ledger.holder == sidecar.ledger.holder
        assert restarted.totals(periods(), NOW)["day"] == pytest.approx(3.0)
        restarted.close()
    finally:
        sidecar.close()
        other.close()


@pytest.mark.parametrize("project", ["bad}name", "two words", "{x}"])
def test_the_budget_project_is_a_fleet_name(tmp_path: Path, project: str) -> None:
    with pytest.raises(ConfigErrors, match=r"budget\.project"):
        from_mapping(
            {
                "state": {"path": str(tmp_path / "state.json")},
                "budget": {"daily_usd": 1.0, "project": project, "source": "local"},
            }
        )


def test_the_stop_is_saved_once_while_the_spend_goes_on(tmp_path: Path) -> None:
    wall = [NOW]
    with app_cost() as (cost, _, url):
        config = from_mapping(
            {
                "state": {"path": str(tmp_path / "state.json")},
                "source": {"kind": "scrape", "targets": [url]},
                "budget": {"daily_usd": 1.0, "action": "stop", "source": "local"},
            }
        )
        daemon = Daemon(config, wall=lambda: wall[0])
        try:
            daemon.check_budget()  # the baseline
            cost.inc(1.5)
            daemon.check_budget()
            stop = daemon.store.state.stop
            assert stop is not None and "$1.50" in stop.reason
            saved = (tmp_path / "state.json").read_bytes()
            for spent in (0.2, 0.3):
                cost.inc(spent)
                wall[0] += timedelta(minutes=1)
                daemon.check_budget()
                assert daemon.store.state.stop == stop  # the reason frozen when the hold began
                assert (tmp_path / "state.json").read_bytes() == saved
            assert daemon.state()["budget"]["periods"]["daily"]["spent_usd"] == pytest.approx(2.0)
        finally:
            daemon.stop()
