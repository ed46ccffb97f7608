"""`nbmon simulate`: serve the Gemini simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType


def parse_latency(text: str) -> dict[str, float]:
    """`2.5` (every model) or `pro=12,flash=4,default=0.5` (model id or id substring = seconds)."""
    latency: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        model, sep, value = item.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--latency: {item!r} is not seconds or model=seconds") from None
        if seconds < 0:
            raise ValueError(f"--latency: {item!r} must not be negative")
        latency[model.strip() if sep else "default"] = seconds
    return latency


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8089, help="port to listen on; 0 picks a free one")
    parser.add_argument(
        "--profile",
        default=None,
        help="fault profile: fixed:<outcome>, sequence:<o1>,<o2>,..., mix:<outcome>=<p>,..., "
        "hourly[:peak=0.45,speed=720], scenario:<name>, or a JSON spec (default: fixed:ok)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for outcomes, jitter and ids (default 0)")
    parser.add_argument(
        "--no-require-key", dest="require_key", action="store_false", help="accept requests without an API key"
    )
    parser.add_argument("--latency", default="0", help="seconds, or model=seconds pairs, e.g. pro=12,flash=4")
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="extra delay of the `slow` outcome")
    parser.add_argument("--image-bytes", type=int, default=None, help="pad the final image to about N bytes")
    parser.add_argument("--image-format", choices=("png", "jpeg"), default="png")
    parser.add_argument("--thought-images", type=int, default=2, help="interim images per Pro response")
    parser.add_argument("--retry-delay", default="36s", help="RetryInfo.retryDelay of rate_limited (e.g. 36s)")
    parser.add_argument(
        "--reroute",
        action="append",
        default=[],
        metavar="REQUESTED=SERVED",
        help="answer a model ID with another model's modelVersion (repeatable; also PUT /_sim/models)",
    )
    parser.add_argument("--catalog", default=None, help="a model catalog file instead of the built-in one")
    parser.add_argument(
        "--rpm",
        action="append",
        default=[],
        metavar="MODEL=N",
        help="at most N requests per rolling minute for MODEL (id, id substring or line; repeatable): then a 429",
    )
    parser.add_argument(
        "--rpm-window", type=float, default=60.0, help="the --rpm window in seconds (default 60, as Google's)"
    )
    parser.add_argument(
        "--serve-retired", action="store_true", help="answer retired model IDs instead of 404 NOT_FOUND"
    )


def parse_reroutes(items: list[str]) -> dict[str, str]:
    """`old=new` pairs; ValueError naming the bad one."""
    reroutes = {}
    for item in items:
        requested, sep, served = item.partition("=")
        if not sep or not requested.strip() or not served.strip():
            raise ValueError(f"--reroute: {item!r} is not REQUESTED=SERVED")
        reroutes[requested.strip()] = served.strip()
    return reroutes


def parse_rpm(items: list[str]) -> dict[str, int]:
    """`model=N` pairs; ValueError naming the bad one."""
    limits = {}
    for item in items:
        model, sep, value = item.rpartition("=")
        if not sep or not model.strip() or not value.strip().isdigit() or int(value) < 1:
            raise ValueError(f"--rpm: {item!r} is not MODEL=N with N >= 1")
        limits[model.strip()] = int(value)
    return limits


def run(args: argparse.Namespace) -> int:
    from monitor.catalog import load_catalog
    from monitor.simulator.server import SimulatorServer
    from monitor.simulator.specs import parse_profile

    try:
        catalog = load_catalog(args.catalog) if args.catalog else None
        server = SimulatorServer(
            profile=parse_profile(args.profile, seed=args.seed),
            seed=args.seed,
            host=args.host,
            port=args.port,
            require_key=args.require_key,
            latency=parse_latency(args.latency),
            slow_seconds=args.slow_seconds,
            thought_images=args.thought_images,
            image_bytes=args.image_bytes,
            image_format=args.image_format,
            retry_delay=args.retry_delay,
            catalog=catalog,
            serve_retired=args.serve_retired,
            reroutes=parse_reroutes(args.reroute),
            rpm_limits=parse_rpm(args.rpm),
            rpm_window_s=args.rpm_window,
        )
        server.start()
    except (ValueError, OSError) as exc:
        print(f"nbmon simulator: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"nbmon simulator listening on {server.url} (profile: {server.profile.describe()})", flush=True)
        server.serve_until(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("nbmon simulator stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nbmon-simulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
