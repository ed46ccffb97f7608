"""What a pacer slot costs a call: a bare google-genai call against the call after Pacer.acquire(), with the
window in this process and in a real Redis (redis-server from .tools, on a free loopback port, as the tests run it).

The call is the shim benchmark's (~50 KB response from an in-process transport), so the ratio is the share of a
call's own client-side time; a real Gemini call takes seconds, and the absolute +us/call is the figure that holds.
Limits are never reached (models of 30 rpm each, rotated so that each log holds about 20 sends, as a busy
window does): the cost of granting, not of waiting. Bare and
paced rounds alternate pair by pair (paired_rounds). Not a test: `.venv/bin/python bench/bench_pacer.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # tests.support.redis: the tests' own redis-server runner

from _common import TABLE_HEADER, fake_client, image_call, paired_rounds, response_body, table_row
from prometheus_client import CollectorRegistry

from monitor.pacing import ConfiguredLimits, InProcessWindow, Pacer, PacingMetrics
from monitor.pacing.fallback import FallbackWindow, Window
from monitor.pacing.redis_window import RedisWindow
from tests.support.redis import RedisServer

SENDS_PER_LOG = 20  # under the 30 rpm limit: no call waits


def paced(call: Callable[[], object], window: Window, models: int) -> Callable[[], object]:
    pacer = Pacer(ConfiguredLimits({"*": {"rpm": 30}}), window, registry=CollectorRegistry())
    turn = iter(range(10**9))

    def run() -> object:
        decision = pacer.acquire(f"model-{next(turn) % models}")
        if not decision.admitted or decision.wait_s:
            raise SystemExit(f"the pacer made a call wait ({decision}): the figures would time a sleep")
        return call()

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=400, help="bare/paced pairs per row")
    args = parser.parse_args()
    call = image_call(fake_client(response_body(30_000)))
    models = args.rounds // SENDS_PER_LOG + 1
    print(f"{args.rounds} paired rounds of 1 call, ~50 KB response, per call (median)")
    print(TABLE_HEADER)
    result = paired_rounds(
        call, lambda: None, lambda: None, args.rounds, 1, instrumented_call=paced(call, InProcessWindow(), models)
    )
    print(table_row("pacer, in-process window", result))
    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        client = server.client()
        for label, window in (
            ("pacer, Redis window (1 EVALSHA)", RedisWindow(client)),
            (
                "pacer, Redis window via FallbackWindow",
                FallbackWindow(
                    RedisWindow(client), replicas=3, metrics=PacingMetrics.for_registry(CollectorRegistry())
                ),
            ),
        ):
            client.flushall()
            result = paired_rounds(
                call, lambda: None, lambda: None, args.rounds, 1, instrumented_call=paced(call, window, models)
            )
            print(table_row(label, result))
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
