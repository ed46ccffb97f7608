"""`nbmon demo`: a scripted day of Gemini image traffic through the whole loop, in about two minutes.

Simulator -> ImageGenerator (real google-genai SDK, instrumented) -> /metrics -> the daemon (scrape, rules)
-> the degraded-mode flag over OFREP -> back to the generator's routing; notifications to fake Slack and
PagerDuty, quota gauges from a fake Cloud Monitoring. No account, nothing leaves 127.0.0.1.

Exit codes: 0 the loop closed (degraded during the storm, recovered, notified), 1 it did not (the reasons are
printed), 2 bad arguments or a server that cannot start, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import structlog

from monitor.demo.args import LOG_NAME
from monitor.demo.observe import Event, Observer, Snapshot
from monitor.demo.polyglot import polyglot_text
from monitor.demo.report import header, summary, where_next
from monitor.demo.script import (
    MAX_DAY_SECONDS,
    MIN_DAY_SECONDS,
    PRO,
    Schedule,
    Timing,
    legacy_model,
    phases,
)
from monitor.demo.stack import DemoStack, DemoStartError, StackOptions
from monitor.demo.verdict import Evidence, problems
from monitor.demo.view import LiveView, PlainView
from monitor.logs import QUIET_LIBRARIES, configure_logging
from monitor.testing import InternalErrorCollector

TICK_S = 0.25
SNAPSHOT_S = 0.5
DRAIN_S = 5.0  # at the end, how long the last notifications may take to arrive
INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Settings:
    day_seconds: float
    storm_share: float
    options: StackOptions
    log_file: Path
    live: bool
    keep_running: bool


def settings_from(args: argparse.Namespace, out: TextIO) -> Settings:
    """Validated settings; ValueError with the option's name otherwise."""
    from monitor.simulator.cli import parse_latency

    if not (math.isfinite(args.day_seconds) and MIN_DAY_SECONDS <= args.day_seconds <= MAX_DAY_SECONDS):
        raise ValueError(f"--day-seconds must be between {MIN_DAY_SECONDS:g} and {MAX_DAY_SECONDS:g}")
    for name in ("storm_share", "canary_share"):
        if not 0 <= getattr(args, name) <= 1:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 1")
    if not 1 <= args.workers <= 32:
        raise ValueError("--workers must be between 1 and 32")
    if args.seed < 0:
        raise ValueError("--seed must be >= 0")
    for name in ("sim_port", "daemon_port", "metrics_port"):
        if not 0 <= getattr(args, name) <= 65535:
            raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 65535 (0: a free port)")
    options = StackOptions(
        workers=args.workers,
        seed=args.seed,
        canary_share=args.canary_share,
        latency=parse_latency(args.latency),
        sim_port=args.sim_port,
        daemon_port=args.daemon_port,
        metrics_port=args.metrics_port,
    )
    live = not args.no_live and out.isatty() and os.environ.get("TERM") != "dumb"
    # A predictable name in a shared /tmp could be a symlink planted by someone else: a fresh private directory.
    log_file = args.log_file or Path(tempfile.mkdtemp(prefix="nbmon-demo-logs-")) / LOG_NAME
    return Settings(args.day_seconds, args.storm_share, options, log_file, live, args.keep_running)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout
    try:
        settings = settings_from(args, out)
    except ValueError as exc:
        print(f"nbmon demo: {exc}", file=sys.stderr)
        return 2
    _bypass_proxies_for_loopback()
    try:
        with logs_to(settings.log_file), tempfile.TemporaryDirectory(prefix="nbmon-demo-") as workdir:
            return _run(settings, Path(workdir), out)
    except (OSError, DemoStartError) as exc:  # the log file, a taken port, a refused instrument()
        print(f"nbmon demo: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # during start-up or the wind-down: everything started was stopped on the way out
        return INTERRUPTED


def _bypass_proxies_for_loopback() -> None:
    """Everything the demo talks to is on 127.0.0.1: a proxy in the user's environment must not carry it
    (the Slack and PagerDuty clients honour HTTP(S)_PROXY, as they should in production)."""
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        os.environ[name] = ",".join([*hosts, *(h for h in ("127.0.0.1", "localhost", "::1") if h not in hosts)])


def _run(settings: Settings, workdir: Path, out: TextIO) -> int:
    legacy = legacy_model(datetime.now(UTC).date())  # the catalog's deprecated model, called by a forgotten job
    schedule = Schedule(settings.day_seconds, phases(settings.storm_share, legacy))
    timing = Timing.for_day(settings.day_seconds)
    with InternalErrorCollector() as collector:
        stack = DemoStack(settings.options, timing, schedule.phases[0], workdir, legacy)
        stack.start()
        try:
            for line in header(stack, schedule, timing, settings.log_file):
                out.write(line + "\n")
            out.flush()
            code = _play(stack, schedule, timing, settings, collector, out)
            if settings.keep_running and code != INTERRUPTED:
                _wait_for_interrupt()
            return code
        finally:
            stack.stop()


def _play(
    stack: DemoStack,
    schedule: Schedule,
    timing: Timing,
    settings: Settings,
    collector: InternalErrorCollector,
    out: TextIO,
) -> int:
    if settings.live:
        view: PlainView = LiveView(out, schedule, timing, settings.options.canary_share)
    else:
        view = PlainView(out, schedule, timing, status_every_s=max(2.0, settings.day_seconds / 22))
    observer = Observer(stack, time.monotonic())
    try:
        interrupted = _play_day(stack, schedule, observer, view)
    finally:
        final = _wind_down(stack, observer, view)
    for line in summary(final, observer, schedule, timing):
        out.write(line + "\n")
    for line in where_next(stack, settings.log_file, settings.keep_running and not interrupted):
        out.write(line + "\n")
    if interrupted:
        out.write("\nInterrupted: no verdict.\n")
        return INTERRUPTED
    found = _problems(stack, observer, final, schedule, timing, collector)
    if found:
        out.write("\nResult: FAILED\n" + "".join(f"  - {problem}\n" for problem in found))
        out.flush()
        for problem in found:
            print(f"nbmon demo: FAILED: {problem}", file=sys.stderr)
        return 1
    entered = next(c for c in observer.mode_changes if c.degraded)
    out.write(
        f"\nResult: OK: degraded at {schedule.clock_at(entered.t)} during the storm, back to normal at "
        f"{schedule.clock_at(observer.mode_changes[-1].t)}, {len(observer.received)} notifications delivered\n"
    )
    out.flush()
    return 0


def _play_day(stack: DemoStack, schedule: Schedule, observer: Observer, view: PlainView) -> bool:
    """Runs the load through the phases until the day is over; True when Ctrl-C cut it short."""
    stack.start_load()
    playing, next_snapshot = -1, 0.0
    try:
        while (t := observer.now()) < schedule.day_seconds:
            index = schedule.index_at(t)
            if index != playing:
                playing = index
                stack.play(schedule.phases[index])
                view.event(Event(schedule.starts[index], "phase", f"--- {schedule.phases[index].title}"))
            for event in observer.events():
                view.event(event)
            _polyglot(stack, observer, view, t)
            if t >= next_snapshot:  # reading the registries costs CPU: twice a second is enough
                next_snapshot = t + SNAPSHOT_S
                snap = observer.snapshot()
                stack.quota.feed(snap.sums.pro_usage, datetime.now(UTC))
                view.update(snap)
            time.sleep(TICK_S)
    except KeyboardInterrupt:
        return True
    return False


def _polyglot(stack: DemoStack, observer: Observer, view: PlainView, t: float) -> None:
    """Once degraded mode is on: one call from a non-Python client through the proxy; its answer as an event."""
    client = stack.polyglot
    if not client.started and observer.mode_changes and observer.mode_changes[-1].degraded:
        client.start()
    elif client.done and not client.reported:
        client.reported = True
        view.event(Event(t, "proxy", polyglot_text(client)))


def _wind_down(stack: DemoStack, observer: Observer, view: PlainView) -> Snapshot:
    """Stops the load, lets the last notifications arrive, shows the last events; the final figures."""
    stack.stop_load()
    stack.polyglot.join(timeout=35)  # its verdict is part of the day's
    deadline = time.monotonic() + DRAIN_S
    while stack.notifications_pending() and time.monotonic() < deadline:
        time.sleep(TICK_S)
    time.sleep(TICK_S)  # the receiver records a message just after answering it
    for event in observer.events():
        view.event(event)
    final = observer.snapshot()
    view.close()
    return final


def _problems(
    stack: DemoStack,
    observer: Observer,
    final: Snapshot,
    schedule: Schedule,
    timing: Timing,
    collector: InternalErrorCollector,
) -> list[str]:
    recovered_at = observer.pro_served_at_recovery
    internal = {component: 1.0 for component, _ in collector.errors} | dict(final.sums.internal_errors)
    evidence = Evidence(
        storm=schedule.span("storm"),
        mode_changes=tuple(observer.mode_changes),
        degraded_at_end=final.degraded,
        rule_state_at_end=final.rule_state,
        peak_ratio=observer.peak_ratio,
        min_volume=timing.min_volume,
        flash_routed=final.sums.routing.get("flash", 0.0),
        pro_after_recovery=None if recovered_at is None else final.tally.served[PRO] - recovered_at,
        received=tuple(observer.received),
        internal_errors=internal,
        legacy=stack.legacy.model if stack.legacy is not None else None,
        deprecated_calls=sum(final.sums.deprecated_calls.values()),
        reroutes=sum(final.sums.reroutes.values()),
        polyglot=stack.polyglot.result,
        polyglot_error=stack.polyglot.error if stack.polyglot.client is not None else None,
    )
    return problems(evidence, schedule.clock_at)


def _wait_for_interrupt() -> None:
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        return


@contextmanager
def logs_to(path: Path) -> Iterator[None]:
    """JSON logs (nbmon's and the libraries' warnings) to a file instead of the terminal; restored afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quieted = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    # Never through a symlink someone planted (O_NOFOLLOW), and readable by this user only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        configure_logging("json", stream=stream, capture_stdlib=True)  # libraries' per-request lines quieted
        structlog.configure(cache_logger_on_first_use=False)  # cached loggers would outlive the restore below
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
            for name, previous in quieted.items():
                logging.getLogger(name).setLevel(previous)
            structlog.configure(**saved)
