"""The `nbmon` command: classify, version, and the demo: a real compressed day end to end, a storm too weak to
cross the threshold (the exit code depends on the loop), and argument errors.

The demo runs in a subprocess: it instruments the SDK, configures logging for its whole process and starts a
dozen threads and servers, none of which may leak into the other tests. Its own check replaces the suite's
autouse telemetry guard there: the demo fails (exit 1) on any error nbmon's telemetry swallowed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from tests.taxonomy.test_taxonomy_http import BODY_429_DAY_AND_MINUTE


def test_classify_a_saved_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "429.json"
    body.write_text(json.dumps(BODY_429_DAY_AND_MINUTE))
    assert main(["classify", "429", str(body)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["error_class"] == "quota_exhausted"
    assert result["category"] == "rate_limited"
    assert result["retry_after_s"] == 23693.0
    assert result["quota"][1]["window"] == "day"
    keys = {"error_class", "category", "http_code", "grpc_status", "retry_after_s", "quota", "block_stage", "reason"}
    assert set(result) == keys | {"cause"}  # the output's keys are a contract: added to, never changed
    assert result["cause"] is None


def test_classify_with_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "503.html"
    body.write_text("<html>busy</html>")
    assert main(["classify", "503", str(body), "--header", "Retry-After: 30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["error_class"], result["retry_after_s"]) == ("overloaded", 30.0)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "google-genai 3." in capsys.readouterr().out


# The test's day: 30 s instead of 110 (windows of 2 s instead of 5), and a faster simulator so that each window
# holds enough requests for the ratio to mean something on a busy machine.
FAST_DAY = ["--day-seconds", "30", "--latency", "pro=0.12,flash=0.05"]


# A proxy nobody answers on, as in a shell set up for corporate egress: the demo's loopback traffic must not use it.
DEAD_PROXY = "http://127.0.0.1:9"


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    log = tmp_path / "demo.log.jsonl"
    proxies = {"HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY, "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY}
    return subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--log-file", str(log), *args],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        env={**os.environ, **proxies},
    )


def test_demo_plays_the_day_and_closes_the_loop(tmp_path: Path) -> None:
    result = run_demo(tmp_path, *FAST_DAY)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in result.stderr
    assert "\x1b" not in out  # not a TTY: plain lines, no escape codes

    # The day's phases, and the loop: degraded during the storm, back to normal after it, in that order.
    storm = out.index("--- peak hours: a 503 storm on Pro (45%)")
    degraded = out.index("MODE -> DEGRADED")
    passes = out.index("--- the storm passes")
    normal = out.rindex("rule degraded-mode: ")
    assert storm < degraded < passes < normal
    assert re.search(r"rule degraded-mode: (recovering|probing) -> ok", out[passes:]), out
    assert out.index("--- a 429 burst") > storm
    assert "--- safety blocks" in out

    # Every notification went through the real outbox to the fake receivers, both ends of the episode.
    assert "slack <- [FIRING] gemini-3-pro-image entered degraded mode" in out
    assert "slack <- [RESOLVED] gemini-3-pro-image left degraded mode" in out
    assert "pagerduty <- trigger nbmon/demo/degraded-mode" in out
    assert "pagerduty <- resolve nbmon/demo/degraded-mode" in out

    summary = out[out.index("Summary of the day") :]
    served = re.search(r"models served +Pro ([\d,]+) · Flash ([\d,]+)", summary)
    assert served and min(int(n.replace(",", "")) for n in served.groups()) > 0, summary
    assert re.search(r"degraded routing: .*flash [1-9]", summary), summary
    assert re.search(r"notifications +([4-9]|\d\d) delivered", summary), summary
    assert "internal errors  0" in summary
    assert "/ofrep/v1/evaluate/flags/degraded-mode" in summary and "/v1/state" in summary
    assert "dashboards" in summary and "nbmon-overview.json" in summary
    assert "Result: OK: degraded at" in summary

    # The JSON logs went to the file, not the terminal: one genai.generation per SDK call, the daemon's events.
    events = [json.loads(line)["event"] for line in (tmp_path / "demo.log.jsonl").read_text().splitlines()]
    assert {"genai.generation", "nbmon.rule.transition", "nbmon.notify.sent"} <= set(events)
    assert '"event"' not in out


def test_demo_fails_when_the_storm_stays_under_the_threshold(tmp_path: Path) -> None:
    """The same day with a 10% storm: the daemon rightly never degrades, so the demo must not pass."""
    result = run_demo(tmp_path, "--day-seconds", "20", "--latency", "pro=0.12,flash=0.05", "--storm-share", "0.1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nbmon demo: FAILED: degraded mode never engaged: the Pro 503 ratio peaked at" in result.stderr
    assert "below the 30% threshold" in result.stderr
    assert "Result: FAILED" in result.stdout
    assert "MODE -> DEGRADED" not in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--day-seconds", "5"], "--day-seconds must be between 20 and 3600"),
        (["--day-seconds", "nan"], "--day-seconds must be between 20 and 3600"),
        (["--storm-share", "1.5"], "--storm-share must be between 0 and 1"),
        (["--canary-share", "-0.1"], "--canary-share must be between 0 and 1"),
        (["--workers", "0"], "--workers must be between 1 and 32"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--daemon-port", "70000"], "--daemon-port must be between 0 and 65535"),
        (["--latency", "pro=-1"], "must not be negative"),
    ],
)
def test_demo_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *args]) == 2
    assert message in capsys.readouterr().err


def test_demo_taken_port_exits_2_naming_it(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        result = run_demo(tmp_path, "--daemon-port", port)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nbmon demo: cannot start:" in result.stderr and f"daemon on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_unparsable_argument_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--workers", "many"])
    assert exit_info.value.code == 2
    assert "--workers: invalid int value" in capsys.readouterr().err


def test_demo_help_lists_the_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for knob in ("--day-seconds", "--storm-share", "--workers", "--seed", "--no-live", "--keep-running", "--log-file"):
        assert knob in text
    assert "Exits 0 only if degraded mode engaged" in " ".join(text.split())
