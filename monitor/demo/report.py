"""The texts around the live view: what is running (at the start), the summary and where to look next (at the end)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import monitor
from monitor.demo.observe import Observer, Snapshot
from monitor.demo.polyglot import polyglot_text
from monitor.demo.quota_feed import PROJECT
from monitor.demo.script import Schedule, Timing
from monitor.demo.stack import DemoStack
from monitor.demo.view import by_class, calls_text, models, quota_text
from monitor.wire import DEGRADED_FLAG, OFREP_FLAGS_PATH

OFREP_FLAG = f"{OFREP_FLAGS_PATH}/{DEGRADED_FLAG}"


def header(stack: DemoStack, schedule: Schedule, timing: Timing, log_file: Path) -> list[str]:
    first, last = schedule.phases[0].start_hour, schedule.phases[-1].end_hour
    options = stack.options
    return [
        f"nbmon demo: a day of Gemini image traffic, {first:02.0f}:00 to {last:02.0f}:00 UTC, "
        f"played in {schedule.day_seconds:g} s ({options.workers} workers, seed {options.seed})",
        f"  simulator  {stack.sim.url}  (the Gemini API; each phase is set on PUT /_sim/profile)",
        f"  app        {stack.app_metrics_url}  (ImageGenerator + the real google-genai SDK, instrumented)",
        f"  daemon     {stack.daemon.url}  (scrapes the app every {timing.interval_s:g}s, serves the flag over OFREP)",
        f"  rule       {timing.describe()}",
        "  sinks      fake Slack and PagerDuty (real HTTP on 127.0.0.1); "
        f"fake Cloud Monitoring {stack.quota.service.address} (real gRPC), project {PROJECT}",
        f"  logs       {log_file}  (JSON lines)",
        "",
    ]


def _counts(counts: Mapping[str, float]) -> str:
    ordered = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: -kv[1])
    return " · ".join(f"{k} {v:,.0f}" for k, v in ordered) or "none"


def summary(snap: Snapshot, observer: Observer, schedule: Schedule, timing: Timing) -> list[str]:
    tally, sums, clock = snap.tally, snap.sums, schedule.clock_at
    timeline = [
        f"{clock(change.t)} {'DEGRADED' if change.degraded else 'normal'} ({change.state}: {change.reason})"
        for change in observer.mode_changes
    ]
    received = Counter(r.channel for r in observer.received)
    return [
        "",
        f"Summary of the day ({snap.t:.0f} s played)",
        f"  calls            {calls_text(snap)}",
        f"  blocked          {_counts(tally.blocks)}  (stage:reason; output blocks were re-rolled once first)",
        f"  failed           {_counts(tally.failures)}",
        f"  attempts         {by_class(sums.attempts)}  (nbmon_requests_total, by error class)",
        f"  models served    {models(tally.served)}",
        f"  fallbacks        {_counts(tally.fallbacks)}  (degraded routing: {_counts(sums.routing)})",
        f"  retries          {by_class(sums.retries)}; waited {sums.waited_s:,.0f} s in all",
        f"  429s             {sums.retries.get('rate_limited', 0.0):,.0f} retried after the server's retryDelay "
        f"(the simulator sends {timing.retry_delay_s:g}s)",
        f"  spend            ${sums.spend_usd:,.2f} estimated (final images only; thought images are not billed)",
        f"  quota            {quota_text(snap)}",
        *_legacy_lines(observer, snap),
        f"  notifications    {sum(received.values())} delivered ({_counts(received)})",
        *(f"                   {clock(r.t)} {r.channel} <- {r.text}" for r in observer.received),
        f"  mode timeline    {timeline[0] if timeline else 'never left normal mode'}",
        *(f"                   {entry}" for entry in timeline[1:]),
        f"  other languages  {polyglot_text(observer.stack.polyglot)}",
        f"  internal errors  {sum(sums.internal_errors.values()):g} (nbmon_internal_errors_total)",
    ]


def _legacy_lines(observer: Observer, snap: Snapshot) -> list[str]:
    job = observer.stack.legacy_job
    if job is None:
        return []
    served = " · ".join(f"{model} {count:,}" for model, count in job.served.most_common())
    return [
        f"  legacy job       {job.calls:,} calls to {job.model}, answered by {served or 'nobody'}",
        f"                   deprecated calls {_counts(snap.sums.deprecated_calls)}; "
        f"reroutes {_counts(snap.sums.reroutes)}",
    ]


def where_next(stack: DemoStack, log_file: Path, keep_running: bool) -> list[str]:
    daemon = stack.daemon.url
    return [
        "",
        "Where to look next",
        f"  app metrics    {stack.app_metrics_url}  (what the sidecar scrapes: nbmon_requests_total, ...)",
        f"  proxy          {stack.proxy_url}/metrics  (calls from any language: point the base URL here)",
        f"  daemon         {daemon}/metrics  (nbmon_degraded_mode, nbmon_rule_state, nbmon_quota_*, ...)",
        f"                 {daemon}/v1/state  (the decision, the rules, the last transitions)",
        f"  flag (OFREP)   curl -s -X POST {daemon}{OFREP_FLAG} -H 'content-type: application/json' "
        """-d '{"context":{"targetingKey":"me"}}'""",
        f"  dashboards     {_dashboards()}  (Grafana: import, or provision with dashboards/provisioning/)",
        f"  logs           {log_file}  (genai.generation per call, nbmon.rule.transition, nbmon.notify.*)",
        "  servers        up until Ctrl-C"
        if keep_running
        else "  servers        stopped (`nbmon demo --keep-running` keeps them up)",
    ]


def _dashboards() -> str:
    """The repository's dashboards/ next to the package (an editable install), else where to find them."""
    folder = Path(monitor.__file__).resolve().parent.parent / "dashboards"
    names = "nbmon-overview.json, nbmon-quota.json"
    if not folder.is_dir():
        return f"dashboards/{{{names}}} in the nbmon repository"
    try:
        shown = Path(os.path.relpath(folder))
    except ValueError:  # another drive (Windows)
        shown = folder
    return f"{shown if not str(shown).startswith('..') else folder}/{{{names}}}"
