"""Did the loop close? The demo's exit code, from the evidence the observer kept. Pure.

The day passes only if degraded mode engaged during the storm (not before: that would be a false alarm), the app
followed the flag to Flash, the mode came back to normal after the storm and the app back to Pro, Slack and
PagerDuty received both ends of the episode, a non-Python client calling through the proxy while degraded was
steered to Flash, and nbmon's own telemetry swallowed no error. When the catalog has a
deprecated model, the app's forgotten job calls it: nbmon must count those calls, and the reroute that follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monitor.demo.observe import ModeChange, Received
from monitor.demo.polyglot import PolyglotCall
from monitor.demo.script import FLASH, THRESHOLD


@dataclass(frozen=True, slots=True)
class Evidence:
    storm: tuple[float, float]  # real seconds into the day
    mode_changes: Sequence[ModeChange]
    degraded_at_end: bool
    rule_state_at_end: str
    peak_ratio: float | None  # the highest 503 ratio the rule saw with enough volume
    min_volume: int
    flash_routed: float  # calls the app sent to Flash because the flag said degraded
    pro_after_recovery: int | None  # calls served by Pro after the last recovery (None: no recovery)
    received: Sequence[Received]
    internal_errors: dict[str, float]
    legacy: str | None = None  # the deprecated model the legacy job calls (None: the catalog has none today)
    deprecated_calls: float = 0.0
    reroutes: float = 0.0
    polyglot: PolyglotCall | None = None  # the non-Python client's call through the proxy while degraded
    polyglot_error: str | None = None  # it ran and failed (None: it succeeded, or no node/curl to run it)


def problems(evidence: Evidence, clock: Callable[[float], str]) -> list[str]:
    """Everything that went wrong, each a sentence; empty: the loop closed."""
    found: list[str] = []
    entered = [c for c in evidence.mode_changes if c.degraded]
    storm_start, storm_end = evidence.storm
    if not entered:
        if evidence.peak_ratio is None:
            found.append(
                f"degraded mode never engaged: the daemon never saw {evidence.min_volume} Pro requests in a window"
            )
        elif evidence.peak_ratio <= THRESHOLD:
            found.append(
                f"degraded mode never engaged: the Pro 503 ratio peaked at {evidence.peak_ratio:.0%}, "
                f"below the {THRESHOLD:.0%} threshold"
            )
        else:
            found.append(
                f"degraded mode never engaged: the Pro 503 ratio peaked at {evidence.peak_ratio:.0%} "
                f"but did not stay above the {THRESHOLD:.0%} threshold for the hold"
            )
    elif entered[0].t < storm_start:
        found.append(f"degraded mode engaged at {clock(entered[0].t)}, before the storm began at {clock(storm_start)}")
    elif entered[0].t > storm_end:
        found.append(
            f"degraded mode engaged only at {clock(entered[0].t)}, after the storm ended at {clock(storm_end)}"
        )
    if entered:
        last = evidence.mode_changes[-1]
        if evidence.degraded_at_end or last.degraded or evidence.rule_state_at_end != "ok":
            found.append(f"degraded mode did not recover by the end of the day (rule {evidence.rule_state_at_end})")
        elif not evidence.pro_after_recovery:
            found.append("the app did not go back to Pro after the recovery")
        if evidence.flash_routed <= 0:
            found.append("the app never routed a call to Flash: the OFREP flag did not reach it")
        found.extend(_missing_notifications(evidence.received))
    if evidence.legacy is not None:
        if evidence.deprecated_calls <= 0:
            found.append(f"the calls to the deprecated {evidence.legacy} were never counted as deprecated")
        if evidence.reroutes <= 0:
            found.append(f"the evening's reroute of {evidence.legacy} was never seen")
    if evidence.polyglot_error is not None:
        found.append(f"the non-Python client's call through the proxy failed: {evidence.polyglot_error}")
    elif evidence.polyglot is not None:
        call = evidence.polyglot
        if call.status != 200 or call.images != 1 or call.route != "degraded" or call.served != FLASH:
            found.append(
                f"the non-Python client was not steered to {FLASH} while degraded: HTTP {call.status}, "
                f"{call.images} image(s) from {call.served} (route {call.route})"
            )
    if evidence.internal_errors:
        details = ", ".join(f"{component} {count:g}" for component, count in sorted(evidence.internal_errors.items()))
        found.append(f"nbmon swallowed internal errors in its own telemetry ({details}); see the log file")
    return found


def _missing_notifications(received: Sequence[Received]) -> list[str]:
    slack = [r.text for r in received if r.channel == "slack"]
    pager = [r.text for r in received if r.channel == "pagerduty"]
    missing = []
    if not any("entered degraded mode" in text for text in slack):
        missing.append("Slack never received the 'entered degraded mode' message")
    if not any("left degraded mode" in text for text in slack):
        missing.append("Slack never received the 'left degraded mode' message")
    if not any(text.startswith("trigger ") for text in pager):
        missing.append("PagerDuty never received the trigger")
    if not any(text.startswith("resolve ") for text in pager):
        missing.append("PagerDuty never received the resolve")
    return missing
