"""The arguments of `nbmon demo`, apart from the demo itself: `nbmon demo --help` imports nothing heavy."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from monitor.demo.script import DEFAULT_DAY_SECONDS, MIN_DAY_SECONDS

LOG_NAME = "demo.log.jsonl"  # in a fresh private directory unless --log-file names a file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Play a scripted day (normal traffic, a 503 storm, degraded Flash-only mode with canary traffic, "
        "recovery, a 429 burst, safety blocks) through the simulator, an instrumented load generator and the "
        "daemon, with time compressed. Exits 0 only if degraded mode engaged during the storm and recovered."
    )
    parser.add_argument(
        "--day-seconds",
        type=float,
        default=DEFAULT_DAY_SECONDS,
        metavar="S",
        help=f"real seconds the day (06:00-22:00 UTC) takes; the rules' windows and holds scale with it "
        f"(default {DEFAULT_DAY_SECONDS:g}: about two minutes in all; at least {MIN_DAY_SECONDS:g})",
    )
    parser.add_argument(
        "--storm-share",
        type=float,
        default=0.45,
        metavar="SHARE",
        help="share of Pro calls answered 503 in the storm (default 0.45, the article's peak; well under the "
        "0.30 threshold, say 0.10, degraded mode rightly never engages and the demo exits 1)",
    )
    parser.add_argument("--workers", type=int, default=4, metavar="N", help="concurrent callers (default 4)")
    parser.add_argument(
        "--canary-share",
        type=float,
        default=0.10,
        metavar="SHARE",
        help="share of calls still sent to Pro in degraded mode, to measure its recovery (default 0.10)",
    )
    parser.add_argument("--seed", type=int, default=1, metavar="N", help="seed of the faults and callers (default 1)")
    parser.add_argument(
        "--latency",
        default="pro=0.25,flash=0.1",
        metavar="SPEC",
        help="simulated latency in seconds: one number, or model=seconds pairs (default pro=0.25,flash=0.1)",
    )
    for name, what in (("sim", "the simulator"), ("daemon", "the daemon (/metrics, /v1/state, OFREP)")):
        parser.add_argument(f"--{name}-port", type=int, default=0, metavar="PORT", help=f"port of {what}; 0: free")
    parser.add_argument(
        "--metrics-port", type=int, default=0, metavar="PORT", help="port of the app's /metrics; 0: free"
    )
    parser.add_argument(
        "--log-file",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"JSON logs (default: {LOG_NAME} in a new private directory under {tempfile.gettempdir()})",
    )
    parser.add_argument(
        "--no-live", action="store_true", help="plain lines even on a terminal (always so when not a TTY)"
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="after the summary, keep the servers up until Ctrl-C"
    )
