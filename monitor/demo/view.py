"""The terminal view: a live rich panel on a TTY, plain timestamped lines anywhere else (CI logs, pipes).

Events (phase changes, rule transitions, mode changes, notifications) are printed as lines in both modes; the
live panel redraws the current figures in place, the plain view prints them as a status line every few seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.demo.observe import Event, Snapshot
from monitor.demo.script import FLASH, PRO, RECOVERY_THRESHOLD, THRESHOLD, Schedule, Timing

CLASS_ORDER = (
    "ok", "overloaded", "server_error", "bad_gateway", "deadline_exceeded", "network_error", "timeout",
    "rate_limited", "quota_exhausted", "invalid_argument", "failed_precondition", "permission_denied",
    "not_found", "safety_block", "policy_block", "recitation", "no_image", "unknown",
)  # fmt: skip
SHORT = {PRO: "Pro", FLASH: "Flash"}
BAR_WIDTH = 40


def by_class(counts: Mapping[str, float]) -> str:
    order = {name: i for i, name in enumerate(CLASS_ORDER)}
    items = sorted(((k, v) for k, v in counts.items() if v), key=lambda kv: order.get(kv[0], len(order)))
    return " · ".join(f"{k} {v:,.0f}" for k, v in items) or "none yet"


def models(counts: Counter[str]) -> str:
    return " · ".join(f"{SHORT.get(m, m)} {counts.get(m, 0):,}" for m in (PRO, FLASH)) or "none yet"


def ratio_text(snap: Snapshot, timing: Timing) -> str:
    if snap.ratio is None:
        return f"n/a (no Pro requests in the last {timing.window_s:g}s)"
    volume = "" if snap.denominator >= timing.min_volume else f", under the minimum of {timing.min_volume}"
    return f"{snap.ratio:.0%} ({snap.numerator:.0f}/{snap.denominator:.0f} over {timing.window_s:g}s{volume})"


def quota_text(snap: Snapshot) -> str:
    parts = []
    for window, label in (("minute", "Pro requests this minute"), ("day", "Pro requests today")):
        gauge = snap.quota.get(window)
        if gauge is not None:
            parts.append(f"{label} {gauge.utilization:.0%} ({gauge.usage:,.0f} of {gauge.limit:,.0f})")
    return " · ".join(parts) or "waiting for the first poll"


def calls_text(snap: Snapshot) -> str:
    calls = snap.tally.calls
    total = sum(calls.values())
    fallbacks = sum(snap.tally.fallbacks.values())
    return (
        f"{total:,}: ok {calls['ok']:,} · blocked {calls['blocked']:,} · failed {calls['failed']:,}"
        f" · served by the fallback {fallbacks:,}"
    )


def status_line(snap: Snapshot) -> str:
    mode = "DEGRADED" if snap.degraded else "normal"
    ratio = "n/a" if snap.ratio is None else f"{snap.ratio:.0%}"
    quota = " ".join(f"{w}={g.utilization:.0%}" for w, g in sorted(snap.quota.items()))
    return (
        f"status  mode={mode} rule={snap.rule_state} pro_503={ratio} (threshold {THRESHOLD:.0%})"
        f" | served last 5s: {models(snap.recent)} | calls ok={snap.tally.calls['ok']:,}"
        f" blocked={snap.tally.calls['blocked']:,} failed={snap.tally.calls['failed']:,}"
        f" | 429s waited out {snap.sums.retries.get('rate_limited', 0.0):,.0f}"
        f" | spend ${snap.sums.spend_usd:,.2f} | pro quota {quota or 'n/a'}"
    )


def ratio_bar(ratio: float | None) -> Text:
    """0..100% with the recovery threshold (|) and the threshold (‖) marked."""
    value = ratio or 0.0
    filled = round(min(value, 1.0) * BAR_WIDTH)
    style = "red" if value > THRESHOLD else "yellow" if value >= RECOVERY_THRESHOLD else "green"
    bar = Text()
    for i in range(BAR_WIDTH):
        if i == round(THRESHOLD * BAR_WIDTH):
            bar.append("‖", style="bold red")
        elif i == round(RECOVERY_THRESHOLD * BAR_WIDTH):
            bar.append("|", style="bold green")
        else:
            bar.append("█" if i < filled else "·", style=style if i < filled else "dim")
    return bar


def panel(snap: Snapshot, schedule: Schedule, timing: Timing, canary_share: float, recent: Iterable[str]) -> Panel:
    phase = schedule.phases[schedule.index_at(snap.t)]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row(
        "time", f"{schedule.clock_at(snap.t)} UTC · {phase.title}  (t={snap.t:.0f}s of {schedule.day_seconds:g}s)"
    )
    if snap.degraded:
        mode = Text(f"DEGRADED · Flash only, {canary_share:.0%} canary to Pro", style="bold red")
    else:
        mode = Text("NORMAL · Pro first, Flash as fallback", style="bold green")
    grid.add_row("mode", mode + Text(f"   rule degraded-mode: {snap.rule_state}", style="dim"))
    grid.add_row("Pro 503 ratio", ratio_bar(snap.ratio) + Text("  " + ratio_text(snap, timing)))
    grid.add_row("", Text(f"‖ threshold {THRESHOLD:.0%}   | recovery {RECOVERY_THRESHOLD:.0%}", style="dim"))
    grid.add_row("served (last 5 s)", models(snap.recent))
    grid.add_row("calls", calls_text(snap))
    grid.add_row("attempts by class", by_class(snap.sums.attempts))
    grid.add_row("retries", by_class(snap.sums.retries) + f" (waited {snap.sums.waited_s:,.0f}s)")
    grid.add_row("spend", f"${snap.sums.spend_usd:,.2f} estimated (final images only)")
    grid.add_row("quota", quota_text(snap))
    lines = list(recent)[-5:]
    grid.add_row("notifications", Text("\n".join(lines) if lines else "none yet"))
    return Panel(grid, title="nbmon demo", title_align="left")


class PlainView:
    """Line-oriented progress: no cursor movement, no colour; readable in a CI log."""

    def __init__(self, out: TextIO, schedule: Schedule, timing: Timing, status_every_s: float) -> None:
        self.out, self.schedule, self.timing = out, schedule, timing
        self.status_every_s = status_every_s
        self._last_status = float("-inf")

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def event(self, event: Event) -> None:
        self.line(f"[{self.schedule.clock_at(event.t)} t={event.t:5.1f}s] {event.text}")

    def update(self, snap: Snapshot) -> None:
        if snap.t - self._last_status >= self.status_every_s:
            self._last_status = snap.t
            self.line(f"[{self.schedule.clock_at(snap.t)} t={snap.t:5.1f}s] {status_line(snap)}")

    def close(self) -> None:
        self.out.flush()


class LiveView(PlainView):
    """The same events as lines, scrolling above a panel redrawn in place (rich.live)."""

    def __init__(self, out: TextIO, schedule: Schedule, timing: Timing, canary_share: float) -> None:
        super().__init__(out, schedule, timing, status_every_s=0.0)
        self.console = Console(file=out)
        self.canary_share = canary_share
        self._notifications: list[str] = []
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.start()

    def line(self, text: str) -> None:
        self.console.print(Text(text))

    def event(self, event: Event) -> None:
        if event.kind == "notify":
            self._notifications.append(f"{self.schedule.clock_at(event.t)} {event.text}")
        style = {"mode": "bold", "phase": "cyan", "notify": "magenta"}.get(event.kind, "")
        self.console.print(Text(f"[{self.schedule.clock_at(event.t)} t={event.t:5.1f}s] {event.text}", style=style))

    def update(self, snap: Snapshot) -> None:
        self._live.update(panel(snap, self.schedule, self.timing, self.canary_share, self._notifications))

    def close(self) -> None:
        self._live.stop()
