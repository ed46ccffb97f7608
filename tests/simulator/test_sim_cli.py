"""The CLI entry point, run as a real subprocess: it prints its URL, serves, and exits cleanly on SIGTERM."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys

import httpx
import pytest

from monitor.simulator import cli
from tests.support.constants import ROOT

LAUNCH = (
    "import sys, argparse; from monitor.simulator import cli; p = argparse.ArgumentParser(); "
    "cli.add_arguments(p); sys.exit(cli.run(p.parse_args(sys.argv[1:])))"
)


def launch(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_serves_until_sigterm() -> None:
    proc = launch("--port", "0", "--profile", "mix:overloaded=0.4", "--seed", "2", "--latency", "pro=0.01")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.fullmatch(r"nbmon simulator listening on (http://127\.0\.0\.1:\d+) \(profile: (.+)\)\n", line)
        assert found, line
        assert found.group(2) == "mix overloaded=0.40"
        url = found.group(1)
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{url}/_sim/profile").json()["seed"] == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_bad_profile_exits_2_with_the_reason() -> None:
    proc = launch("--port", "0", "--profile", "mix:overloaded=3")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert "profile.weights.overloaded: must be between 0 and 1" in err
    assert out == ""


def test_defaults_and_flags() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.require_key, args.profile) == ("127.0.0.1", 8089, True, None)
    args = parser.parse_args(["--no-require-key", "--image-bytes", "50000", "--thought-images", "1"])
    assert (args.require_key, args.image_bytes, args.thought_images) == (False, 50000, 1)


def test_parse_latency() -> None:
    assert cli.parse_latency("2.5") == {"default": 2.5}
    assert cli.parse_latency("pro=12, flash=4,default=0.5") == {"pro": 12.0, "flash": 4.0, "default": 0.5}
    with pytest.raises(ValueError, match="--latency: 'pro=fast'"):
        cli.parse_latency("pro=fast")
    with pytest.raises(ValueError, match="must not be negative"):
        cli.parse_latency("-1")
