"""QuotaPoller against the fake MetricService over real gRPC: snapshots, per-project backoff, errors by reason, a hung
server, readiness, disabled without credentials (nothing leaves loopback), key files and the reconcile hook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import DefaultCredentialsError
from structlog.testing import capture_logs

from monitor.clock import VirtualClock
from monitor.quota.fetch import QuotaFetcher
from monitor.quota.model import QuotaSeries
from monitor.quota.poller import (
    CredentialsStatus,
    PollStatus,
    QuotaPoller,
    build_poller,
    credentials_status,
    make_client,
)
from monitor.testing import InternalErrorCollector
from monitor.testing.quota import (
    GENERATE_PER_DAY,
    GENERATE_PER_MINUTE,
    INPUT_TOKENS,
    FakeMetricService,
    MetadataSentinel,
    limit_series,
    no_credentials_env,
    usage_series,
)

NOW = datetime(2026, 3, 8, 19, 0, 30, tzinfo=UTC)  # 12:00:30 PDT
MINUTE = NOW.replace(second=0)
PER_MINUTE_LIMIT = "GenerateRequestsPerMinutePerProjectPerModel"
PER_DAY_LIMIT = "GenerateRequestsPerDayPerProjectPerModel"


@pytest.fixture
def fake() -> Iterator[FakeMetricService]:
    with FakeMetricService() as server:
        yield server


def script_project(fake: FakeMetricService, project: str, *, minute: int = 8, today: int = 1100) -> None:
    fake.add(
        usage_series(project, GENERATE_PER_MINUTE, [(MINUTE, minute)]),
        usage_series(project, GENERATE_PER_DAY, [(MINUTE - timedelta(minutes=1), today)]),
        usage_series(project, INPUT_TOKENS, [(MINUTE, 5000)]),
        limit_series(project, GENERATE_PER_MINUTE, PER_MINUTE_LIMIT, 10, at=NOW - timedelta(hours=2)),
        limit_series(project, GENERATE_PER_DAY, PER_DAY_LIMIT, 2000, at=NOW - timedelta(hours=2)),
    )


def make_poller(
    fake: FakeMetricService, projects: tuple[str, ...] = ("proj-a",), timeout_s: float = 5.0, **options: object
) -> tuple[QuotaPoller, VirtualClock]:
    clock = VirtualClock(start=NOW)
    poller = QuotaPoller(
        lambda: QuotaFetcher(fake.client(), timeout_s=timeout_s),
        projects,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )
    return poller, clock


def test_poll_swaps_in_a_snapshot(fake: FakeMetricService) -> None:
    script_project(fake, "proj-a")
    poller, _ = make_poller(fake)
    assert poller.readiness() == (False, "quota: no successful poll of every project yet")
    result = poller.poll()
    assert result.status is PollStatus.OK and result.fresh and result.errors == {}
    snapshot = poller.snapshot
    assert snapshot.polled_at == NOW and snapshot.fresh_projects == {"proj-a"}
    assert [(r.quota_metric, r.usage, r.limit) for r in snapshot.readings] == [
        (INPUT_TOKENS, 5000, None),  # no limit series: dynamic
        (GENERATE_PER_MINUTE, 8, 10),
        (GENERATE_PER_DAY, 1100, 2000),
    ]
    assert poller.last_success_timestamp() == NOW.timestamp()
    assert poller.readiness().ready and "3 quotas" in poller.readiness().detail


def test_permission_denied_is_counted_and_backs_off_exponentially(fake: FakeMetricService) -> None:
    fake.fail(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied", times=None)
    seen: list[tuple[str, str, str]] = []
    poller, clock = make_poller(fake, on_error=lambda *e: seen.append(e), backoff_initial_s=60, backoff_max_s=150)
    with capture_logs() as logs:
        assert poller.poll().errors == {"proj-a": "permission_denied"}
    assert poller.error_counts()["permission_denied"] == 1 and len(fake.requests) == 1
    assert seen[0][:2] == ("proj-a", "permission_denied") and "timeSeries.list denied" in seen[0][2]
    assert logs[0]["event"] == "nbmon.quota.poll_failed" and logs[0]["retry_in_s"] == 60
    schedule = [
        (59.9, PollStatus.SKIPPED),
        (0.1, PollStatus.FAILED),  # 60 s after the first failure
        (119.9, PollStatus.SKIPPED),
        (0.1, PollStatus.FAILED),  # then 120 s
        (149.9, PollStatus.SKIPPED),
        (0.1, PollStatus.FAILED),
    ]  # then capped at 150 s
    for advance, expected in schedule:
        clock.advance(advance)
        assert poller.poll().status is expected, clock.monotonic()
    assert poller.error_counts()["permission_denied"] == 4 and len(fake.requests) == 4  # skipped polls sent nothing
    fake.recover()
    script_project(fake, "proj-a")
    clock.advance(150)
    assert poller.poll().status is PollStatus.OK
    clock.advance(1)
    assert poller.poll().status is PollStatus.OK  # success reset the backoff


def test_a_hung_server_is_counted_as_deadline_within_the_timeout(fake: FakeMetricService) -> None:
    fake.hang_s = 30
    poller, _ = make_poller(fake, timeout_s=0.5)
    started = time.monotonic()
    result = poller.poll()
    assert time.monotonic() - started < 0.5 + 1.5
    assert result.errors == {"proj-a": "deadline"} and poller.error_counts()["deadline"] == 1


def test_one_failing_project_keeps_its_last_readings_as_stale(fake: FakeMetricService) -> None:
    script_project(fake, "proj-a")
    script_project(fake, "proj-b", minute=2)
    poller, clock = make_poller(fake, projects=("proj-a", "proj-b"))
    assert poller.poll().status is PollStatus.OK
    fake.fail(grpc.StatusCode.PERMISSION_DENIED, "denied", times=None, project="proj-b")
    clock.advance(60)
    result = poller.poll()
    assert result.status is PollStatus.PARTIAL and result.errors == {"proj-b": "permission_denied"}
    snapshot = poller.snapshot
    assert {r.project for r in snapshot.readings} == {"proj-a", "proj-b"}  # proj-b: last poll's readings
    assert {r.project for r in snapshot.fresh_readings} == {"proj-a"}
    assert poller.last_success_timestamp() == NOW.timestamp()  # the oldest project's success
    clock.advance(601)
    assert not poller.readiness().ready


@pytest.mark.telemetry_faults
def test_poll_never_raises_and_reports_our_own_bugs(fail_on_swallowed_telemetry_errors: InternalErrorCollector) -> None:
    class Broken:
        def fetch(self, project: str, now: datetime) -> list[QuotaSeries]:
            raise ZeroDivisionError("a bug in our parsing")

    poller = QuotaPoller(Broken, ["proj-a"], clock=VirtualClock(start=NOW))
    assert poller.poll().errors == {"proj-a": "other"}
    assert [c for c, _ in fail_on_swallowed_telemetry_errors.errors] == ["quota.poll"]


def test_a_client_that_cannot_be_built_is_unauthenticated_not_a_crash() -> None:
    def factory() -> QuotaFetcher:
        raise DefaultCredentialsError("Your default credentials were not found.")

    poller = QuotaPoller(factory, ["proj-a"], clock=VirtualClock(start=NOW))
    assert poller.poll().errors == {"proj-a": "unauthenticated"}


def test_without_credentials_the_poller_is_disabled_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with MetadataSentinel() as metadata:
        for name, value in no_credentials_env(tmp_path, metadata.address).items():
            monkeypatch.setenv(name, value)
        with capture_logs() as logs:
            poller = build_poller(["proj-a"], clock=VirtualClock(start=NOW))
            results = [poller.poll().status for _ in range(3)]
        assert metadata.connections == 0
    assert results == [PollStatus.DISABLED] * 3 and not poller.enabled
    assert [e["event"] for e in logs] == ["nbmon.quota.disabled"]
    ready, detail = poller.readiness()
    assert ready and detail.startswith("disabled: no Google credentials (")
    assert "missing-key.json" in detail and "GOOGLE_APPLICATION_CREDENTIALS" in detail


@pytest.mark.parametrize(("no_gce_check", "probes"), [("true", False), ("True", True)])
def test_no_adc_in_a_fresh_interpreter_and_the_metadata_server_untouched(
    tmp_path: Path, no_gce_check: str, probes: bool
) -> None:
    # google-auth reads NO_GCE_CHECK at import and compares it with "true" exactly: "True" still probes.
    with MetadataSentinel() as metadata:
        env = no_credentials_env(tmp_path, metadata.address)
        del env["GOOGLE_APPLICATION_CREDENTIALS"]  # the whole ADC search: env var, gcloud file, metadata server
        env |= {"PATH": os.environ.get("PATH", ""), "NO_GCE_CHECK": no_gce_check, "GCE_METADATA_TIMEOUT": "1"}
        code = "from monitor.quota.poller import credentials_status; print(credentials_status().message)"
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("no Google credentials (Your default credentials were not found)")
        assert (metadata.connections > 0) is probes


def test_a_service_account_key_file(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "proj-a",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "nbmon@proj-a.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    assert credentials_status(path) == (True, f"service account nbmon@proj-a.iam.gserviceaccount.com (key file {path})")
    client = make_client(key_file=path)  # channels connect lazily: nothing is sent here
    client.transport.close()  # type: ignore[no-untyped-call]
    with capture_logs() as logs:
        poller = build_poller(["proj-a"], key_file=path, clock=VirtualClock(start=NOW))
    assert poller.enabled and poller.readiness() == (False, "quota: no successful poll of every project yet")
    assert [e["event"] for e in logs] == ["nbmon.quota.credentials"]
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    status = credentials_status(broken)
    assert not status.available and status.message.startswith(f"no Google credentials (key file {broken}: ")
    assert not credentials_status(tmp_path / "absent.json").available


def test_make_client_on_a_channel(fake: FakeMetricService) -> None:
    script_project(fake, "proj-a")
    rows = QuotaFetcher(make_client(channel=fake.channel())).fetch("proj-a", NOW)
    assert len(rows) == 5


def test_reconcile_runs_after_each_poll(fake: FakeMetricService) -> None:
    script_project(fake, "proj-a", today=1100)
    asked: list[datetime] = []

    def shim_counts(since: datetime) -> dict[str, float]:
        asked.append(since)
        return {"gemini-3-pro-image": 700.0, "gemini-nano-banana-2.1": 200.0}

    poller, _ = make_poller(fake, shim_counts=shim_counts)
    poller.poll()
    assert asked == [datetime(2026, 3, 8, 8, tzinfo=UTC)]  # since 00:00 PST
    assert dict(poller.snapshot.reconcile) == {
        ("proj-a", GENERATE_PER_DAY): 200.0,
        ("proj-a", GENERATE_PER_MINUTE): -892.0,
    }


@pytest.mark.parametrize("options", [{"services": ["bad service"]}, {"timeout_s": -1}, {"lookback_s": 10}])
def test_build_poller_checks_options_before_credentials(options: dict[str, object]) -> None:
    def check(key_file: object) -> CredentialsStatus:
        raise AssertionError("credentials looked up for a config that cannot work")

    with pytest.raises(ValueError):
        build_poller(["proj-a"], check=check, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"projects": []}, {"projects": ["bad project"]}, {"backoff_initial_s": 0}])
def test_bad_options_fail_at_construction(options: dict[str, object]) -> None:
    kwargs: dict[str, object] = {"projects": ["proj-a"], **options}
    with pytest.raises(ValueError):
        QuotaPoller(lambda: None, **kwargs)  # type: ignore[arg-type, return-value]
