"""Where the budget reads the spend: the cost counter as increases (resets, a baseline, a restart), the shared
Redis ledger two sidecars add to (a real redis-server), and the fleet's PromQL (a fake Prometheus over HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.budget.periods import Kind, Period, period
from monitor.budget.spend import (
    COST_METRIC,
    PROMQL_QUERY,
    CounterSpend,
    LocalLedger,
    PromQLSpend,
    RedisLedger,
    SpendError,
)
from monitor.fleet.redis_client import connect
from monitor.fleet.settings import FleetSettings
from monitor.signals import Reading, Series
from monitor.sources import InProcessSource, PromQLSource
from tests.support.http import LoopbackServer, Reply, Request
from tests.support.redis import RedisServer

NOW = datetime(2026, 11, 27, 20, tzinfo=UTC)  # 12:00 PST


def periods(now: datetime = NOW) -> Mapping[Kind, Period]:
    return {"day": period("day", now), "month": period("month", now)}


class Scripted:
    """A counter source answering the readings a test scripts (a scrape's: not complete)."""

    name = "scripted"

    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def read(self) -> Reading:
        return self.readings.pop(0)


def reading(**by_model: float) -> Reading:
    return Reading(at=0.0, values={Series(model, "", ""): usd for model, usd in by_model.items()})


def test_a_scrape_counts_increases_after_a_baseline_and_across_a_reset() -> None:
    source = Scripted()
    spend = CounterSpend(source, LocalLedger(), name="local")
    source.readings += [reading(pro=40.0), reading(pro=41.5, flash=0.5), reading(pro=1.0, flash=0.5)]
    assert spend.totals(periods(), NOW) == {"day": 0.0, "month": 0.0}  # spent before we looked: unknown
    assert spend.totals(periods(), NOW) == {"day": 2.0, "month": 2.0}  # a new series counts from 0
    assert spend.totals(periods(), NOW) == {"day": 3.0, "month": 3.0}  # the app restarted: from 0
    source.readings.append(Reading(at=0.0, ok=False, error="connect"))
    with pytest.raises(SpendError):
        spend.totals(periods(), NOW)
    # A restart of the daemon: the saved values count what was spent while it was down.
    again = CounterSpend(source, LocalLedger(), name="local")
    again.restore(spend.saved())
    source.readings.append(reading(pro=2.0, flash=0.5))
    assert again.totals(periods(), NOW) == {"day": 4.0, "month": 4.0}
    tomorrow = datetime(2026, 11, 28, 9, tzinfo=UTC)  # 01:00 PST: a new day, the same month
    source.readings.append(reading(pro=3.0, flash=0.5))
    assert again.totals(periods(tomorrow), tomorrow) == {"day": 1.0, "month": 5.0}


def test_the_in_process_registry_counts_from_zero() -> None:
    registry = CollectorRegistry()
    cost = Counter(
        COST_METRIC.removesuffix("_total"), "cost", ["model", "image_size", "service_tier"], registry=registry
    )
    spend = CounterSpend(InProcessSource(registry, metric=COST_METRIC), LocalLedger(), name="local")
    cost.labels("pro", "1K", "standard").inc(0.134)
    assert spend.totals(periods(), NOW)["day"] == pytest.approx(0.134)  # complete: a new series began at 0
    cost.labels("pro", "4K", "standard").inc(0.24)
    assert spend.totals(periods(), NOW)["day"] == pytest.approx(0.374)


def test_two_sidecars_add_to_one_redis_ledger(redis_server: RedisServer) -> None:
    settings = FleetSettings(redis_url=redis_server.url, project="banana-prod")
    sources = [Scripted(), Scripted()]
    sidecars = [CounterSpend(s, RedisLedger(connect(settings), settings), name="redis") for s in sources]
    try:
        for source, first, then in zip(sources, (10.0, 20.0), (11.0, 22.5), strict=True):
            source.readings += [reading(pro=first), reading(pro=then)]
        for sidecar in sidecars:
            sidecar.totals(periods(), NOW)  # baselines
        assert sidecars[0].totals(periods(), NOW) == {"day": 1.0, "month": 1.0}
        assert sidecars[1].totals(periods(), NOW) == {"day": 3.5, "month": 3.5}  # the fleet's
        client = redis_server.client()
        key = "nbmon:{banana-prod}:budget:day:2026-11-27"
        assert sum(float(v) for v in client.hvals(key)) == 3.5  # one field per sidecar, its own cumulative
        assert client.ttl(key) > 0 and client.ttl("nbmon:{banana-prod}:budget:month:2026-11") > 0
        client.close()
        # Redis down: the increase waits, and is added once Redis is back.
        redis_server.kill()
        sources[0].readings.append(reading(pro=12.0))
        with pytest.raises(SpendError):
            sidecars[0].totals(periods(), NOW)
        assert sidecars[0].pending == 1.0
    finally:
        for sidecar in sidecars:
            sidecar.close()


def test_the_fleet_spend_from_promql() -> None:
    queries: list[str] = []

    def respond(request: Request) -> Reply:
        query = request.query.get("query", [""])[0]
        queries.append(query)
        return Reply.json(
            {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "12.5"]}]}}
        )

    with LoopbackServer(respond) as server:
        spend = PromQLSpend(PromQLSource(server.url, query_template=PROMQL_QUERY))
        totals = spend.totals(periods(), NOW)
        spend.close()
    # 12:00 PST is 43,200 s into the day; the month began Nov 1 00:00 PDT (07:00 UTC).
    assert queries[0] == "sum(increase(nbmon_estimated_cost_usd_total[43201s]))"
    month_s = int((NOW - datetime(2026, 11, 1, 7, tzinfo=UTC)).total_seconds()) + 1
    assert queries[1] == f"sum(increase(nbmon_estimated_cost_usd_total[{month_s}s]))"
    assert totals == {"day": 12.5, "month": 12.5}
    with LoopbackServer(lambda request: Reply(503)) as down:
        failing = PromQLSpend(PromQLSource(down.url, query_template=PROMQL_QUERY))
        with pytest.raises(SpendError):
            failing.totals(periods(), NOW)
        failing.close()
