"""The `nbmon` command: classify, version, demo (a short real run), and argument errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from tests.test_taxonomy_http import BODY_429_DAY_AND_MINUTE


def test_classify_a_saved_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "429.json"
    body.write_text(json.dumps(BODY_429_DAY_AND_MINUTE))
    assert main(["classify", "429", str(body)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["error_class"] == "quota_exhausted"
    assert result["category"] == "rate_limited"
    assert result["retry_after_s"] == 23693.0
    assert result["quota"][1]["window"] == "day"


def test_classify_with_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "503.html"
    body.write_text("<html>busy</html>")
    assert main(["classify", "503", str(body), "--header", "Retry-After: 30"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["error_class"], result["retry_after_s"]) == ("overloaded", 30.0)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "google-genai 3." in capsys.readouterr().out


def test_demo_runs_and_shows_classes() -> None:
    """The real demo in a subprocess: simulator, instrumented SDK load, live table, clean exit."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "demo", "--duration", "2", "--workers", "2", "--latency", "0.01"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "simulator  http://127.0.0.1:" in out
    assert "metrics    http://127.0.0.1:" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(" " * 9)]
    classes = {row[0] for row in rows if row}
    assert {"ok", "overloaded"} <= classes  # table rows of the live view, not just words anywhere
    assert "estimated cost $" in out
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be > 0"),
        (["--workers", "0"], "--workers must be between 1 and 64"),
        (["--profile", "mix:overloaded=2"], "overloaded"),
        (["--latency", "pro=-1"], "must not be negative"),
    ],
)
def test_demo_bad_arguments(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *args]) == 2
    assert message in capsys.readouterr().err
