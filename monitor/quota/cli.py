"""`nbmon quota --project P [--service S] [--json] [--key-file F]`: a one-off table of usage against limits.

A rich table in a terminal, plain aligned text otherwise (pipes, logs), JSON with --json. Exit codes: 0 ok,
1 Cloud Monitoring refused or failed for a project (the reason is printed), 2 no credentials or bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from google.cloud.monitoring_v3 import MetricServiceClient

from monitor.daily_reset import RESET_TIMEZONE
from monitor.quota.auth import credentials_status, make_client
from monitor.quota.fetch import FetchError, QuotaFetcher
from monitor.quota.model import LimitStatus, QuotaReading, join
from monitor.quota.services import GEMINI_SERVICE

COLUMNS = (
    "project",
    "quota metric",
    "limit name",
    "window",
    "usage",
    "limit",
    "used",
    "exceeded",
    "resets in",
    "projection",
)
_HINTS = {
    "permission_denied": "the credentials need monitoring.timeSeries.list on the project (roles/monitoring.viewer)",
    "unauthenticated": "the credentials were refused: refresh them or check the key file",
    "quota": "the Cloud Monitoring API's own quota is exhausted: try again in a minute",
    "invalid": "check the project id and the service name",
}


def run(
    args: argparse.Namespace,
    *,
    client: MetricServiceClient | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """`client` replaces the one built from the credentials (tests: `FakeMetricService.client()`)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    own_client = client is None
    if client is None:
        status = credentials_status(args.key_file)
        if not status.available:
            print(f"nbmon quota: {status.message}", file=err)
            return 2
        client = make_client(key_file=args.key_file)
    try:
        fetcher = QuotaFetcher(client, services=args.service or [GEMINI_SERVICE], timeout_s=args.timeout)
    except ValueError as exc:
        print(f"nbmon quota: {exc}", file=err)
        return 2
    moment = now or datetime.now(UTC)
    readings: list[QuotaReading] = []
    failures: dict[str, FetchError] = {}
    try:
        for project in dict.fromkeys(args.project):
            try:
                readings += join(fetcher.fetch(project, moment), now=moment)
            except FetchError as exc:
                failures[project] = exc
    finally:
        if own_client:
            fetcher.close()
    if args.json:
        errors = {p: {"reason": e.reason, "message": e.message} for p, e in failures.items()}
        document = {"at": moment.isoformat(), "readings": [r.to_dict() for r in readings], "errors": errors}
        print(json.dumps(document, indent=2), file=out)
    elif readings:
        rows = table_rows(readings, moment)
        if out.isatty():
            _rich_table(rows, out)
        else:
            print(plain_table(rows), file=out)
    elif not failures:
        print(
            f"no quota series for {', '.join(args.project)} (no traffic yet, or the service is not enabled)", file=out
        )
    for project, error in failures.items():
        hint = _HINTS.get(error.reason)
        print(f"nbmon quota: {project}: {error.reason}: {error.message}" + (f" ({hint})" if hint else ""), file=err)
    return 1 if failures else 0


def table_rows(readings: Sequence[QuotaReading], now: datetime) -> list[tuple[str, ...]]:
    return [_row(r, now) for r in sorted(readings, key=lambda r: r.key)]


def plain_table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _rich_table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional at run time: plain text still answers the question
        print(plain_table(rows), file=out)
        return
    table = Table(title="Gemini quota usage (Cloud Monitoring; usage lags a few minutes)")
    for name in COLUMNS:
        numeric = name in ("usage", "limit", "used")
        table.add_column(name, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        used = row[COLUMNS.index("used")]
        style = "bold red" if row[COLUMNS.index("exceeded")] == "yes" or used == "blocked" else None
        if style is None and used.endswith("%") and float(used[:-1]) >= 80:
            style = "yellow"
        table.add_row(*row, style=style)
    Console(file=out).print(table)  # the terminal's width (or $COLUMNS)


def _row(r: QuotaReading, now: datetime) -> tuple[str, ...]:
    metric = r.quota_metric.removeprefix(f"{r.service}/")
    limit = "-" if r.limit is None or r.status is LimitStatus.DYNAMIC else f"{r.limit:g}"
    fraction = r.utilization
    used = r.status.value if fraction is None else f"{fraction:.1%}"
    resets = "" if r.reset_at is None else _duration((r.reset_at - now).total_seconds())
    projection = ""
    if r.projected_exhaustion and r.projected_exhaustion_at is not None:
        local = r.projected_exhaustion_at.astimezone(ZoneInfo(RESET_TIMEZONE))
        projection = f"runs out ~{local:%H:%M} Pacific"
    elif r.projected_usage_at_reset is not None:
        projection = f"ok (~{r.projected_usage_at_reset:.0f} at reset)"
    project = r.project if r.location in ("global", "") else f"{r.project} ({r.location})"
    values: list[Any] = [project, metric, r.limit_name or "-", r.window.value, f"{r.usage:g}", limit, used]
    values += ["yes" if r.exceeded else "no", resets, projection]
    return tuple(str(v) for v in values)


def _duration(seconds: float) -> str:
    minutes = max(int(seconds // 60), 0)
    return f"{minutes // 60}h{minutes % 60:02d}m"
