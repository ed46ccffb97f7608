"""The daemon's cost: one evaluation tick over 1,000 label series, and a 10,000-line scrape parse.

Prints medians and the daemon's peak RSS; the figure that matters is the tick's share of its interval.
Not a test: run `make bench`.
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.signals import Reading, Series
from monitor.sources import parse_exposition

CLASSES = ("ok", "overloaded", "rate_limited", "server_error", "safety_block", "no_image", "timeout", "not_found")
CODES = {"ok": "200", "overloaded": "503", "rate_limited": "429", "server_error": "500", "safety_block": "200",
         "no_image": "200", "timeout": "none", "not_found": "404"}  # fmt: skip


def series(n: int) -> list[Series]:
    models = [f"gemini-model-{i}" for i in range(n // len(CLASSES) + 1)]
    models[0] = DaemonConfig().primary_model  # the rule watches the catalog's default primary
    return [Series(m, CODES[c], c) for m in models for c in CLASSES][:n]


class SyntheticSource:
    """Cumulative counters that grow every read, like an app under load."""

    name = "synthetic"

    def __init__(self, labels: list[Series], clock: list[float]) -> None:
        self.labels, self.values, self.clock = labels, dict.fromkeys(labels, 0.0), clock

    def read(self) -> Reading:
        for i, key in enumerate(self.labels):
            self.values[key] += 1 + (i % 7)
        return Reading(at=self.clock[0], values=dict(self.values))


def exposition(lines: int) -> str:
    out = ["# HELP nbmon_requests_total HTTP attempts", "# TYPE nbmon_requests_total counter"]
    for i in range(lines):
        key = series(lines)[i] if i < 2000 else Series(f"m{i}", "200", "ok")
        out.append(
            f'nbmon_requests_total{{model="{key.model}",code="{key.code}",error_class="{key.error_class}"}} {i * 3}'
        )
    return "\n".join(out) + "\n"


def main() -> int:
    clock = [0.0]
    labels = series(1000)
    with tempfile.TemporaryDirectory() as tmp:
        rules = {name: {"enabled": True} for name in ("quota-exhaustion", "client-error-spike", "safety-block-spike")}
        config = DaemonConfig(state_path=Path(tmp) / "state.json", rules=rules)
        daemon = Daemon(config, source=SyntheticSource(labels, clock), monotonic=lambda: clock[0])
        for _ in range(80):  # 20 minutes of readings every 15 s: every window is full
            clock[0] += 15
            daemon.read_source()
        ticks = []
        for _ in range(40):
            clock[0] += 15
            daemon.read_source()
            start = time.perf_counter()
            daemon.evaluate()
            ticks.append(time.perf_counter() - start)
        tick = statistics.median(ticks)
        text = exposition(10_000)
        parses = []
        for _ in range(7):
            start = time.perf_counter()
            parsed = parse_exposition(text)
            parses.append(time.perf_counter() - start)
        parse = statistics.median(parses)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        worst = max(ticks) * 1e3
        print(f"evaluation tick, {len(labels)} series, 4 rules:  median {tick * 1e3:7.2f} ms, max {worst:7.2f} ms")
        print(f"  share of the 15 s interval:                {tick / 15:.5%}")
        print(f"10,000-line scrape parse ({len(parsed)} series):     median {parse * 1e3:7.2f} ms")
        print(f"  share of the 15 s interval:                {parse / 15:.5%}")
        print(f"peak RSS of this process (daemon + bench):  {rss_mb:7.1f} MiB")
        daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
