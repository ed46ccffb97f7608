"""`nbmon proxy`: the pass-through proxy on its own, for an app in any language. Light to import."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.config import ShimConfig
    from monitor.proxy.config import ProxyConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="a config file: its [proxy] and [models] (flags win)")
    parser.add_argument("--host", default=None, help="interface to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8017; 0 picks a free one)")
    parser.add_argument("--upstream", default=None, help="where to forward (default the Gemini API)")
    parser.add_argument(
        "--steer", action="store_true", default=None, help="while degraded, send the primary's calls to the fallback"
    )
    parser.add_argument("--retry", action="store_true", default=None, help="retry server-side per the retry policy")
    parser.add_argument("--canary-share", type=float, default=None, help="share kept on the primary while degraded")
    parser.add_argument(
        "--flag-url",
        default=None,
        help="the daemon whose flags it reads over OFREP, e.g. http://127.0.0.1:8016: degraded-mode steers (with"
        " --steer), generation-allowed false (a spent budget's stop) refuses generate requests",
    )
    parser.add_argument("--log-format", choices=("json", "console", "auto"), default="json")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    from monitor.errors import ConfigError
    from monitor.logs import configure_logging

    try:
        config, shim = _load(args)
    except ConfigError as exc:
        print(f"nbmon: config error: {exc}", file=sys.stderr)
        return 2
    if config.steer and args.flag_url is None:
        print("nbmon: proxy: --steer needs --flag-url (the daemon that holds the flag)", file=sys.stderr)
        return 2
    configure_logging(args.log_format, args.log_level.upper(), capture_stdlib=True)
    from prometheus_client import REGISTRY

    from monitor.proxy.otel import tracer_provider_from_env
    from monitor.proxy.server import ProxyServer, build_forwarder

    flag = _flag(args.flag_url)
    provider = tracer_provider_from_env()
    pacer = None
    if config.pace:
        from monitor.errors import ConfigError
        from monitor.pacing import load_pacer

        try:
            pacer = load_pacer(args.config, registry=REGISTRY)
        except ConfigError as exc:
            print(f"nbmon: config error: {exc}", file=sys.stderr)
            return 2
        if pacer is None:
            print("nbmon: proxy: pace = true needs [pacing.limits] (or from_quota) in the config", file=sys.stderr)
            return 2
    from monitor.proxy.stop import ofrep_stop_check

    stopped = ofrep_stop_check(args.flag_url) if args.flag_url is not None else None  # the daemon's budget stop
    forwarder = build_forwarder(config, shim, REGISTRY, flag, tracer_provider=provider, pacer=pacer, stopped=stopped)
    try:
        server = ProxyServer(forwarder, REGISTRY)
        server.start()
    except OSError as exc:
        print(f"nbmon: proxy: cannot listen on {config.host}:{config.port}: {exc.strerror}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"nbmon proxy listening on {server.url} -> {config.upstream}", flush=True)
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.stop()
        if provider is not None:
            provider.shutdown()
    return 0


def _load(args: argparse.Namespace) -> tuple[ProxyConfig, ShimConfig]:
    """[proxy] and [models] of --config (or $NBMON_CONFIG / $NBMON_CONFIG_FILE), then the flags."""
    import os
    from dataclasses import replace

    from monitor.config import config_from_document, read_document
    from monitor.errors import ConfigError
    from monitor.proxy.config import ProxyConfig, proxy_config_from_mapping

    path = args.config or os.environ.get("NBMON_CONFIG") or os.environ.get("NBMON_CONFIG_FILE")
    document = read_document(path) if path else {}
    errors: list[ConfigError] = []
    config = proxy_config_from_mapping(document.get("proxy", {}), errors) if "proxy" in document else ProxyConfig()
    given = {
        "host": args.host,
        "port": args.port,
        "upstream": args.upstream,
        "steer": args.steer,
        "retry": args.retry,
        "canary_share": args.canary_share,
    }
    flags = {key: value for key, value in given.items() if value is not None}
    if flags:
        checked = proxy_config_from_mapping(flags, errors)
        config = replace(config, **{key: getattr(checked, key) for key in flags})
    if errors:
        raise errors[0]
    from pathlib import Path

    shim = config_from_document(document, base_dir=Path(path).parent if path else None)
    return config, shim


def _flag(url: str | None) -> Callable[[], Awaitable[bool]]:
    """The degraded-mode flag of the daemon at `url` over OFREP (cached 1 s, fail-static), or never degraded."""
    if url is None:

        async def never() -> bool:
            return False

        return never
    from monitor.generator.flags import OfrepFlagSource

    source = OfrepFlagSource(url, ttl_s=1.0)
    return source.adegraded
