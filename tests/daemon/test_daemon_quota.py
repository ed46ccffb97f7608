"""The daemon's quota job: a real MetricServiceClient over gRPC to a fake Cloud Monitoring, gauges on the
daemon's /metrics, and a quota rule notifying through the configured channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.clock import VirtualClock
from monitor.daemon.app import Daemon
from monitor.daemon.config import from_mapping
from monitor.quota.fetch import QuotaFetcher
from monitor.quota.poller import QuotaPoller
from monitor.signals import Reading
from monitor.testing.notify import FakeSlack
from monitor.testing.quota import FakeMetricService, limit_series, usage_series

NOW = datetime(2026, 3, 10, 19, 0, 30, tzinfo=UTC)  # 12:00:30 in Los Angeles
MINUTE = NOW.replace(second=0)
METRIC = "generativelanguage.googleapis.com/generate_requests_per_model"
PER_MINUTE = "GenerateRequestsPerMinutePerProjectPerModel"


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


def test_quota_gauges_and_a_critical_quota_notification(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeMetricService() as fake, FakeSlack() as slack:
        fake.add(
            usage_series("proj-a", METRIC, [(MINUTE, 98)]),
            limit_series("proj-a", METRIC, PER_MINUTE, 100, at=NOW - timedelta(hours=1)),
        )
        monkeypatch.setenv("TEST_SLACK_URL", slack.url)
        config = from_mapping(
            {
                "state": {"path": str(tmp_path / "s.json")},
                "notify": {
                    "outbox_path": str(tmp_path / "outbox.sqlite"),
                    "channels": {"oncall": {"kind": "slack", "webhook_url_env": "TEST_SLACK_URL"}},
                },
            }
        )
        clock = VirtualClock(start=NOW)
        poller = QuotaPoller(lambda: QuotaFetcher(fake.client(), timeout_s=5), ["proj-a"], clock=clock)
        daemon = Daemon(config, source=QuietSource(), quota_poller=poller, monotonic=clock.monotonic, wall=clock.now)
        try:
            daemon.poll_quota()
            metrics = daemon.metrics_exposition()[0].decode()
            assert "nbmon_quota_utilization_ratio{" in metrics and "0.98" in metrics
            for _ in range(3):  # the critical rule holds 120 s
                clock.advance(60)
                daemon.poll_quota()
            assert daemon.dispatcher is not None
            daemon.dispatcher.drain_once(clock.now())
            texts = [m["text"] for m in slack.accepted]
            assert any(METRIC in t or "quota" in t.lower() for t in texts), texts
            assert daemon.state()["quota"]
        finally:
            daemon.stop()


def test_no_credentials_disables_quota_and_readyz_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    config = from_mapping(
        {"listen": {"port": 0}, "state": {"path": str(tmp_path / "s.json")}, "quota": {"projects": ["proj-a"]}}
    )
    daemon = Daemon(config, source=QuietSource())
    daemon.start()
    try:
        body = httpx.get(f"{daemon.url}/readyz").json()
        assert any("quota" in note and "disabled" in note for note in body["notes"]), body
        daemon.poll_quota()  # disabled: does nothing, raises nothing
        assert "nbmon_quota_poller_enabled 0.0" in httpx.get(f"{daemon.url}/metrics").text
    finally:
        daemon.stop()
