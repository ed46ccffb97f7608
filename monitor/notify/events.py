"""From a rule transition to a Notification: when to tell people, and what to say. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime

from monitor.alerts import Rule, State, Transition
from monitor.notify.base import Event, Notification

__all__ = ["Event", "build", "event_for"]

_DEGRADED_STATES = (State.FIRING, State.RECOVERING)


def event_for(transition: Transition, flag_rule: bool) -> Event | None:
    """One FIRING when an episode starts, one RESOLVED when it ends; None for everything in between.

    A probe (firing -> probing -> firing) is part of the same episode: the incident stays open, so it
    is neither resolved nor triggered again. `flag_rule` is kept for callers; the rule is the same.
    """
    was, now = transition.from_state, transition.to_state
    if now in _DEGRADED_STATES and was in (State.OK, State.PENDING):
        return Event.FIRING
    if now is State.OK and was in (*_DEGRADED_STATES, State.PROBING):
        return Event.RESOLVED
    return None


def build(
    transition: Transition,
    rule: Rule,
    *,
    flag_rule: bool,
    model: str,
    environment: str,
    at: datetime,
    since: datetime | None,
    links: dict[str, str],
) -> Notification | None:
    event = event_for(transition, flag_rule)
    if event is None:
        return None
    ratio = "no traffic" if transition.ratio is None else f"{transition.ratio:.1%}"
    window = f"{transition.window_s / 60:g}m" if transition.window_s % 60 == 0 else f"{transition.window_s:g}s"
    counts = f"{transition.numerator:.0f} of {transition.denominator:.0f} requests"
    if flag_rule:
        title = f"{model} {'entered' if event is Event.FIRING else 'left'} degraded mode ({rule.name})"
    else:
        title = f"{rule.name} {'firing' if event is Event.FIRING else 'resolved'}"
    threshold = f"{transition.threshold:.0%}"
    summary = f"{rule.name}: ratio {ratio} over {window} ({counts}); threshold {threshold}. {transition.reason}"
    figures = {
        "ratio": transition.ratio if transition.ratio is not None else 0.0,
        "numerator": transition.numerator,
        "denominator": transition.denominator,
        "window_s": transition.window_s,
        "threshold": transition.threshold,
    }
    override = None
    if flag_rule:
        value = "off" if event is Event.FIRING else "on"
        override = f'nbmon flag set {value} --reason "..." --for 30m'
    return Notification(
        id=str(uuid.uuid4()),
        rule=rule.name,
        event=event,
        severity=rule.severity.value,
        title=title,
        summary=summary,
        dedup_key=f"nbmon/{environment}/{rule.name}",  # one incident per rule and environment, ever open
        at=at,
        since=since,
        model=model,
        environment=environment,
        figures=figures,
        links=links,
        override_command=override,
    )
