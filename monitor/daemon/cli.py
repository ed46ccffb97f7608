"""`nbmon run`, `nbmon check-config` and `nbmon flag ...`.

Light to import (the argument definitions); each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.daemon.config import DaemonConfig

SHUTDOWN_GRACE_S = 4.5  # Kubernetes-style budgets are 5 s and more: leave room for the process exit


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default=os.environ.get("NBMON_CONFIG_FILE"), help="TOML or YAML file (or $NBMON_CONFIG_FILE)"
    )


def _load(args: argparse.Namespace) -> DaemonConfig | None:
    from monitor.daemon import config as daemon_config
    from monitor.errors import ConfigError

    try:
        return daemon_config.load(args.config)
    except daemon_config.ConfigErrors as exc:
        for error in exc.errors:
            print(f"nbmon: config error: {error}", file=sys.stderr)
    except ConfigError as exc:
        print(f"nbmon: config error: {exc}", file=sys.stderr)
    return None


def check_config(args: argparse.Namespace) -> int:
    """The same validation `run` makes before it starts anything, every error at once, each with its key."""
    from monitor.daemon import config as daemon_config

    config = _load(args)
    if config is None:
        return 2
    problems = daemon_config.preflight(config)
    for error in problems:
        print(f"nbmon: config error: {error}", file=sys.stderr)
    if problems:
        return 2
    shim = config.shim
    print(
        f"config ok: listen {config.listen_host}:{config.listen_port}, source {config.source_kind}, "
        f"rules {', '.join(r.name for r in config.rule_set)}, state {config.state_path}, "
        f"models primary {shim.primary_model} fallback {shim.fallback_model} (catalog of {len(shim.catalog)})"
    )
    for warning in config.warnings:
        print(f"nbmon: warning: {warning}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from monitor.daemon import config as daemon_config
    from monitor.daemon.app import Daemon
    from monitor.flagstate import FlagStoreError
    from monitor.logs import configure_logging
    from monitor.notify import OutboxError

    config = _load(args)
    if config is None:
        return 2
    problems = daemon_config.preflight(config)
    for error in problems:
        print(f"nbmon: cannot start: {error}", file=sys.stderr)
    if problems:
        return 2
    configure_logging(config.log_format, config.log_level, capture_stdlib=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}  # before start
    try:
        daemon = Daemon(config)
        daemon.start()
    except (ValueError, FlagStoreError, OutboxError, OSError) as exc:  # bad rules, corrupt files, a taken port
        print(f"nbmon: cannot start: {exc}", file=sys.stderr)
        return 2
    stop.wait()
    # Shut down within the grace period: nothing stuck on the network may keep the pod terminating.
    saved: list[bool] = []
    stopper = threading.Thread(target=lambda: saved.append(daemon.stop()), daemon=True)
    stopper.start()
    stopper.join(SHUTDOWN_GRACE_S)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    # The state was flushed first. Exit now: a scheduler worker still blocked on a dead target would
    # otherwise hold the interpreter's exit (thread pools are joined at exit) for its whole timeout.
    code = 0 if saved == [True] else 1  # the state could not be saved (or the stop overran): say so to the caller
    if code:
        print("nbmon: stopped without saving the flag state (see the log): it is lost", file=sys.stderr)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def add_flag_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("NBMON_URL", "http://127.0.0.1:8016"), help="daemon base URL")
    actions = parser.add_subparsers(dest="flag_action", required=True, metavar="ACTION")
    setter = actions.add_parser("set", help="force degraded mode on or off, with a reason and an expiry")
    setter.add_argument("value", choices=("on", "off"), help="on: force Flash-only; off: force the primary model")
    setter.add_argument("--reason", required=True)
    setter.add_argument("--for", dest="expires_in", default="1h", help="how long the override holds (default 1h)")
    actions.add_parser("clear", help="remove the override; the rules decide again")
    actions.add_parser("show", help="print the daemon's current state")


def flag(args: argparse.Namespace) -> int:
    import httpx

    token = os.environ.get("NBMON_ADMIN_TOKEN", "")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        # The daemon is the only peer, and the request carries the admin token: never through HTTP(S)_PROXY.
        with httpx.Client(base_url=args.url, timeout=10.0, trust_env=False) as client:
            if args.flag_action == "show":
                response = client.get("/v1/state")
            elif args.flag_action == "clear":
                response = client.delete("/v1/override", headers=headers)
            else:
                body = {
                    "value": args.value == "on",
                    "reason": args.reason,
                    "expires_in": args.expires_in,
                    "set_by": f"cli:{os.environ.get('USER', 'unknown')}",
                }
                response = client.post("/v1/override", json=body, headers=headers)
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        print(f"nbmon: cannot reach the daemon at {args.url}: {exc}", file=sys.stderr)
        return 1
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if response.status_code != 200:
        detail = (
            answer.get("error") if isinstance(answer, dict) else response.text[:200].strip() or response.reason_phrase
        )
        hint = " (set NBMON_ADMIN_TOKEN)" if response.status_code in (401, 403) else ""
        print(f"nbmon: the daemon refused: HTTP {response.status_code}: {detail}{hint}", file=sys.stderr)
        return 1
    if not isinstance(answer, dict):
        print(
            f"nbmon: {args.url} answered HTTP 200 with a body that is not nbmon's JSON: is it the daemon?",
            file=sys.stderr,
        )
        return 1
    if answer.get("persisted") is False:
        print(f"nbmon: warning: {answer.get('warning', 'the daemon could not save the change')}", file=sys.stderr)
    print(json.dumps(answer.get("effective", {}) if args.flag_action != "show" else answer, indent=2, default=str))
    return 0
