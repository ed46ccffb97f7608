"""`nbmon demo`: the simulator plus an instrumented load loop, with live counts by error class.

Runs on built-in defaults with no Google account and no network: every call goes to a local
simulator through the real google-genai SDK, instrumented by nbmon.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from typing import TextIO

from google import genai
from google.genai import types
from prometheus_client import CollectorRegistry, start_http_server

import monitor
from monitor.config import ShimConfig
from monitor.simulator import SimulatorServer, parse_profile

# A busy afternoon: 503 storms on Pro, some 429s, blocks returned as HTTP 200, a flaky proxy.
DEFAULT_PROFILE = (
    "mix:overloaded=0.30,rate_limited=0.05,quota_exhausted=0.01,server_error=0.02,bad_gateway=0.02,"
    "deadline_exceeded=0.02,reset=0.01,safety_block=0.04,prompt_block=0.02,policy_block=0.02,"
    "recitation=0.01,no_image=0.02,no_image_stop=0.01"
)
CLASS_ORDER = (
    "ok", "overloaded", "server_error", "bad_gateway", "deadline_exceeded", "network_error", "timeout",
    "rate_limited", "quota_exhausted", "invalid_argument", "failed_precondition", "permission_denied",
    "not_found", "safety_block", "policy_block", "recitation", "no_image", "unknown",
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=30.0, help="seconds to run (default 30; Ctrl-C stops)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent callers (default 4)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help="simulator fault profile (see nbmon simulate)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", default="pro=0.25,flash=0.08", help="simulated latency, model=seconds")
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics on 127.0.0.1:PORT (0: free)")
    parser.add_argument("--flash-share", type=float, default=0.2, help="share of calls sent to the Flash model")
    parser.add_argument("--sdk-retries", type=int, default=2, help="google-genai HttpRetryOptions attempts")


def _validate(args: argparse.Namespace) -> None:
    if args.duration <= 0:
        raise ValueError("--duration must be > 0")
    if not 1 <= args.workers <= 64:
        raise ValueError("--workers must be between 1 and 64")
    if not 0 <= args.flash_share <= 1:
        raise ValueError("--flash-share must be between 0 and 1")
    if args.sdk_retries < 1:
        raise ValueError("--sdk-retries must be >= 1 (1 means no retry)")


def run(args: argparse.Namespace) -> int:
    from monitor.simulator.cli import parse_latency

    try:
        _validate(args)
        profile = parse_profile(args.profile, seed=args.seed)
        latency = parse_latency(args.latency)
    except ValueError as exc:
        print(f"nbmon demo: {exc}", file=sys.stderr)
        return 2
    log_path = os.path.join(tempfile.gettempdir(), "nbmon-demo.log.jsonl")
    with open(log_path, "w", encoding="utf-8") as log_file:  # one JSON event per call, out of the way
        monitor.configure_logging("json", stream=log_file)
        registry = CollectorRegistry()
        monitor.instrument(registry=registry, config=ShimConfig())
        try:
            with SimulatorServer(profile=profile, seed=args.seed, latency=latency, require_key=True) as sim:
                server, _thread = start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
                out = sys.stdout
                out.write(f"simulator  {sim.url}  profile: {profile.describe()}\n")
                out.write(f"metrics    http://127.0.0.1:{server.server_port}/metrics\n")
                out.write(f"logs       {log_path}\n\n")
                try:
                    _load(sim.url, args, registry, out)
                finally:
                    server.shutdown()
        finally:
            monitor.uninstrument()
    return 0


def _load(url: str, args: argparse.Namespace, registry: CollectorRegistry, out: TextIO) -> None:
    stop = threading.Event()
    retry = types.HttpRetryOptions(attempts=args.sdk_retries, initial_delay=0.05, max_delay=0.2)
    client = genai.Client(api_key="demo-key", http_options=types.HttpOptions(base_url=url, retry_options=retry))
    config = types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"], image_config=types.ImageConfig(aspect_ratio="16:9", image_size="1K")
    )
    shim = ShimConfig()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            model = shim.fallback_model if rng.random() < args.flash_share else shim.primary_model
            try:
                if rng.random() < 0.2:
                    for _ in client.models.generate_content_stream(model=model, contents="a banana", config=config):
                        pass
                else:
                    client.models.generate_content(model=model, contents="a banana", config=config)
            except Exception:  # noqa: BLE001, S112 - failures are the point of the demo; nbmon counted them
                continue

    threads = [threading.Thread(target=worker, args=(args.seed + i,), daemon=True) for i in range(args.workers)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    tty = out.isatty()
    try:
        while (elapsed := time.monotonic() - started) < args.duration:
            time.sleep(1.0)
            _render(registry, out, elapsed, tty)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
    _render(registry, out, time.monotonic() - started, tty=False)
    out.write("\nDone. These are the counters `nbmon run` scrapes to decide on degraded mode.\n")


def totals(registry: CollectorRegistry) -> dict[str, dict[str, float]]:
    """Sums by error_class of attempts and calls, plus images and cost."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "nbmon_requests_total":
                sums["attempts"][sample.labels["error_class"]] += sample.value
            elif sample.name == "nbmon_generations_total":
                sums["calls"][sample.labels["error_class"]] += sample.value
            elif sample.name == "nbmon_images_total":
                sums["images"][sample.labels["kind"]] += sample.value
            elif sample.name == "nbmon_estimated_cost_usd_total":
                sums["cost"]["usd"] += sample.value
    return sums


def _render(registry: CollectorRegistry, out: TextIO, elapsed: float, tty: bool) -> None:
    sums = totals(registry)
    attempts, calls = sums["attempts"], sums["calls"]
    total_attempts = sum(attempts.values()) or 1.0
    lines = [f"t={elapsed:5.1f}s  {'error_class':<20}{'attempts':>9}{'share':>8}{'calls':>8}"]
    for cls in CLASS_ORDER:
        if attempts.get(cls) or calls.get(cls):
            share = attempts.get(cls, 0.0) / total_attempts
            lines.append(f"{'':9}{cls:<20}{attempts.get(cls, 0):9.0f}{share:8.1%}{calls.get(cls, 0):8.0f}")
    images, cost = sums["images"], sums["cost"]["usd"]
    lines.append(
        f"{'':9}images final {images.get('final', 0):.0f}, thought (not billed) {images.get('thought', 0):.0f}, "
        f"estimated cost ${cost:.2f}"
    )
    if tty:
        out.write("\x1b[H\x1b[J")  # redraw in place
    out.write("\n".join(lines) + "\n")
    out.flush()
