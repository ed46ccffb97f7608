"""`nbmon quota` against the fake MetricService: plain text, a rich table on a terminal, JSON, errors, and no
credentials (exit 2, in-process and in a fresh interpreter)."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from monitor.quota import args as quota_args
from monitor.quota import cli
from monitor.testing.quota import (
    FREE_TIER_REQUESTS,
    GENERATE_PER_DAY,
    GENERATE_PER_MINUTE,
    FakeMetricService,
    MetadataSentinel,
    exceeded_series,
    limit_series,
    no_credentials_env,
    usage_series,
)

NOW = datetime(2026, 3, 8, 19, 0, 30, tzinfo=UTC)
MINUTE = NOW.replace(second=0)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def fake() -> Iterator[FakeMetricService]:
    with FakeMetricService() as server:
        server.add(
            usage_series("proj-a", GENERATE_PER_MINUTE, [(MINUTE, 8)]),
            limit_series("proj-a", GENERATE_PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", 10, at=MINUTE),
            exceeded_series(
                "proj-a", GENERATE_PER_MINUTE, "GenerateRequestsPerMinutePerProjectPerModel", True, at=MINUTE
            ),
            usage_series("proj-a", GENERATE_PER_DAY, [(MINUTE - timedelta(hours=2), 1100)]),
            limit_series("proj-a", GENERATE_PER_DAY, "GenerateRequestsPerDayPerProjectPerModel", 2000, at=MINUTE),
            limit_series(
                "proj-a", FREE_TIER_REQUESTS, "GenerateRequestsPerDayPerProjectPerModel-FreeTier", 0, at=MINUTE
            ),
        )
        yield server


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nbmon quota")
    quota_args.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_plain_table_when_not_a_terminal(fake: FakeMetricService) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(args("--project", "proj-a"), client=fake.client(), stdout=out, stderr=err, now=NOW) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "PROJECT",
        "QUOTA",
        "METRIC",
        "LIMIT",
        "NAME",
        "WINDOW",
        "USAGE",
        "LIMIT",
        "USED",
        "EXCEEDED",
        "RESETS",
        "IN",
        "PROJECTION",
    ]
    rows = {line.split()[1]: line.split() for line in lines[1:]}
    assert rows["generate_requests_per_model"][3:8] == ["minute", "8", "10", "80.0%", "yes"]
    assert rows["generate_requests_per_model_per_day"][3:] == [
        "day",
        "1100",
        "2000",
        "55.0%",
        "no",
        "11h59m",
        "runs",
        "out",
        "~21:00",
        "Pacific",
    ]
    assert rows["generate_content_free_tier_requests"][3:8] == ["day", "0", "0", "blocked", "no"]
    assert "\x1b[" not in out.getvalue() and err.getvalue() == ""


def test_rich_table_on_a_terminal(fake: FakeMetricService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    out = Terminal()
    assert cli.run(args("-p", "proj-a"), client=fake.client(), stdout=out, now=NOW) == 0
    text = out.getvalue()
    assert "Gemini quota usage" in text and "┃" in text and "\x1b[" in text  # a table, with colours
    assert "GenerateRequestsPerDayPerProjectPerModel" in text and "runs out ~21:00 Pacific" in text


def test_json(fake: FakeMetricService) -> None:
    out = io.StringIO()
    assert cli.run(args("--project", "proj-a", "--json"), client=fake.client(), stdout=out, now=NOW) == 0
    document = json.loads(out.getvalue())
    assert document["at"] == NOW.isoformat() and document["errors"] == {}
    by_limit = {r["limit_name"]: r for r in document["readings"]}
    day = by_limit["GenerateRequestsPerDayPerProjectPerModel"]
    assert (day["usage"], day["limit"], day["utilization"], day["window"]) == (1100, 2000, 0.55, "day")
    assert day["projected_exhaustion"] is True and day["reset_at"] == "2026-03-09T07:00:00+00:00"
    blocked = by_limit["GenerateRequestsPerDayPerProjectPerModel-FreeTier"]
    assert (blocked["status"], blocked["utilization"]) == ("blocked", None)


def test_permission_denied_exits_1_with_a_hint(fake: FakeMetricService) -> None:
    fake.fail(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied", times=None)
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(args("--project", "proj-a"), client=fake.client(), stdout=out, stderr=err, now=NOW) == 1
    assert "proj-a: permission_denied" in err.getvalue() and "roles/monitoring.viewer" in err.getvalue()
    out = io.StringIO()
    assert cli.run(args("--project", "proj-a", "--json"), client=fake.client(), stdout=out, stderr=err, now=NOW) == 1
    assert json.loads(out.getvalue())["errors"]["proj-a"]["reason"] == "permission_denied"


def test_bad_service_exits_2(fake: FakeMetricService) -> None:
    err = io.StringIO()
    assert cli.run(args("-p", "proj-a", "--service", 'x" OR "y'), client=fake.client(), stderr=err) == 2
    assert "services:" in err.getvalue()


def test_no_credentials_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in no_credentials_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    out, err = io.StringIO(), io.StringIO()
    assert cli.run(args("--project", "proj-a"), stdout=out, stderr=err) == 2
    assert err.getvalue().startswith("nbmon quota: no Google credentials (") and out.getvalue() == ""


def test_no_credentials_in_a_fresh_interpreter(tmp_path: Path) -> None:
    with MetadataSentinel() as metadata:
        env = no_credentials_env(tmp_path, metadata.address)
        del env["GOOGLE_APPLICATION_CREDENTIALS"]
        env["PATH"] = os.environ.get("PATH", "")
        code = (
            "import argparse, sys; from monitor.quota import args, cli; p = argparse.ArgumentParser(); "
            "args.add_arguments(p); sys.exit(cli.run(p.parse_args(sys.argv[1:])))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, "--project", "proj-a"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert metadata.connections == 0
    assert done.returncode == 2
    assert "no Google credentials (Your default credentials were not found)" in done.stderr
