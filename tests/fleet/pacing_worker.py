"""One replica of the pacing test: `python -m tests.fleet.pacing_worker ...` runs N threads of ImageGenerator calls
against the simulator until the deadline and writes what happened as JSON. Not a test module."""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.config import ShimConfig
from monitor.fleet.settings import FleetSettings
from monitor.generator import GenerationError, ImageGenerator, PacingRejectedError, RetryPolicy
from monitor.pacing import PacingConfig, build_pacer
from tests.support.constants import FLASH, PRO
from tests.support.shim import genai_client


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sim", required=True)
    parser.add_argument("--redis", default=None, help="the shared window; none: no pacer at all")
    parser.add_argument("--rpm", type=int, default=30)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--until", type=float, required=True, help="wall-clock end of the run (time.time())")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    registry = CollectorRegistry()
    pacer = None
    if args.redis:
        fleet = FleetSettings(redis_url=args.redis, project="pacing-test", replicas=args.replicas)
        pacer = build_pacer(PacingConfig(limits={PRO: {"rpm": args.rpm}}), fleet, registry=registry)
    client = genai_client(args.sim)
    generator = ImageGenerator(
        client,
        primary_model=PRO,
        fallback=False,
        config=ShimConfig(),
        policy=RetryPolicy(min_call_s=1.0),
        registry=registry,
        pacer=pacer,
    )
    # A long-running app is warm: the first SDK call of a fresh process (schemas, the connection) must not be
    # one of the paced ones. The limit is on PRO only: a FLASH call warms up the same code and connection.
    client.models.generate_content(model=FLASH, contents="warm-up")
    done: list[float] = []
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def caller() -> None:
        while (left := args.until - time.time()) > 1.0:
            try:
                generator.generate("a banana", deadline_s=left)
            except PacingRejectedError:  # no slot before the end of the run: this thread is done
                with lock:
                    outcomes["pacing_rejected"] += 1
                return
            except GenerationError as error:
                with lock:
                    outcomes[type(error).__name__] += 1
                continue
            with lock:
                done.append(time.time())
                outcomes["ok"] += 1

    threads = [threading.Thread(target=caller) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result: dict[str, Any] = {
        "ok_at": done,
        "outcomes": dict(outcomes),
        "waited_s": registry.get_sample_value("nbmon_pacing_wait_seconds_total", {"model": PRO, "quota": "rpm"}),
        "degraded": registry.get_sample_value("nbmon_pacing_degraded"),
    }
    Path(args.out).write_text(json.dumps(result))
    client.close()


if __name__ == "__main__":
    main()
