"""The holder's quota readings in Redis: written only under the lease, read back exactly, refused when garbled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.fleet.quota_share import QuotaShare, decode, encode
from monitor.quota.model import LimitStatus, QuotaReading, Window
from monitor.quota.poller import QuotaSnapshot
from tests.support.redis import RedisServer

NOW = datetime(2026, 3, 10, 19, 0, 30, tzinfo=UTC)
LEASE_KEY, KEY = "nbmon:{p}:quota:lease", "nbmon:{p}:quota:readings"


def snapshot() -> QuotaSnapshot:
    day = QuotaReading(
        project="proj-a",
        service="generativelanguage.googleapis.com",
        location="global",
        quota_metric="generativelanguage.googleapis.com/generate_requests_per_model_per_day",
        limit_name="GenerateRequestsPerDayPerProjectPerModel",
        window=Window.DAY,
        usage=120.0,
        limit=250.0,
        status=LimitStatus.FIXED,
        usage_today=120.0,
        as_of=NOW - timedelta(minutes=4),
        reset_at=NOW + timedelta(hours=12),
        seconds_until_reset=43_200.0,
        projected_usage_at_reset=300.0,
        projected_exhaustion=True,
        projected_exhaustion_at=NOW + timedelta(hours=9),
    )
    dynamic = QuotaReading(
        project="proj-b",
        service="aiplatform.googleapis.com",
        location="us-central1",
        quota_metric="aiplatform.googleapis.com/generate_content_requests",
        limit_name="",
        window=Window.MINUTE,
        usage=7.0,
        limit=None,
        status=LimitStatus.DYNAMIC,
        exceeded=True,
    )
    return QuotaSnapshot((day, dynamic), NOW, frozenset({"proj-a"}), reconcile={("proj-a", "m"): 3.0})


def test_a_snapshot_survives_the_trip_except_the_reconcile_each_replica_makes_itself() -> None:
    published = decode(encode(snapshot(), 1_773_000_000.5, "host-1-abcd"))
    assert published.snapshot == QuotaSnapshot(snapshot().readings, NOW, frozenset({"proj-a"}))
    assert (published.last_success, published.holder) == (1_773_000_000.5, "host-1-abcd")


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(format=2),
        lambda d: d.pop("readings"),
        lambda d: d["readings"][0].update(usage="120"),
        lambda d: d["readings"][0].update(exceeded=1),
        lambda d: d["readings"][0].update(window="fortnight"),
        lambda d: d["readings"][0].update(reset_at="2026-03-11T08:00:00"),  # naive
        lambda d: d["readings"][0].pop("project"),
    ],
)
def test_a_garbled_document_is_refused_with_a_value_error(change: object) -> None:
    document = json.loads(encode(snapshot(), None, "h"))
    assert callable(change)
    change(document)
    with pytest.raises(ValueError):
        decode(json.dumps(document))


def test_a_newer_writers_extra_field_is_ignored() -> None:
    document = json.loads(encode(snapshot(), None, "h"))
    document["readings"][0]["burst_limit"] = 5
    assert decode(json.dumps(document)).snapshot.readings == snapshot().readings


def test_only_the_lease_holder_publishes_and_the_readings_expire(redis_server: RedisServer) -> None:
    client = redis_server.client()
    share = QuotaShare(client, KEY, LEASE_KEY, ttl_s=5.0)
    assert share.read() is None
    assert not share.publish(snapshot(), None, "me")  # nobody holds the lease
    client.set(LEASE_KEY, "someone-else", px=5000)
    assert not share.publish(snapshot(), None, "me")  # a deposed holder writes nothing
    assert client.get(KEY) is None
    client.set(LEASE_KEY, "me", px=5000)
    assert share.publish(snapshot(), 12.0, "me")
    published = share.read()
    assert published is not None and published.holder == "me" and published.last_success == 12.0
    assert 4000 < client.pttl(KEY) <= 5000
    client.set(KEY, b"\xff not json")
    with pytest.raises(ValueError):
        share.read()
