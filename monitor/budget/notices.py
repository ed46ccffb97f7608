"""A budget notice in words, as a Notification for the existing channels. Pure.

One incident per project and period kind (dedup_key `nbmon/<env>/budget/<project>/<daily|monthly>`): the 50%,
80%, 100% and burn-rate notices of a day add to it, and the next day resolves it. 100% and above is critical
(it pages where routes send critical to PagerDuty); the lower thresholds and the pace are warnings.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from monitor.budget.periods import WORD, local_text
from monitor.budget.state import Notice
from monitor.notify.base import Event, Notification

ACTION_WORDS = {
    "none": "",
    "degraded": " Degraded mode (the cheaper model) is on until the period ends.",
    "stop": " Generation is stopped (flag generation-allowed = false) until the period ends.",
}


def rule_name(notice: Notice) -> str:
    """The `rule` of the notice, for routes: budget-daily or budget-monthly."""
    return f"budget-{WORD[notice.period.kind]}"


def severity(notice: Notice) -> str:
    return "critical" if notice.kind != "burn" and (notice.threshold or 0.0) >= 1.0 else "warning"


def notification(
    notice: Notice,
    *,
    project: str,
    action: str,
    timezone: str,
    environment: str,
    at: datetime,
    links: Mapping[str, str],
) -> Notification:
    word = WORD[notice.period.kind]
    spent, limit = f"${notice.spent_usd:,.2f}", f"${notice.limit_usd:,.2f}"
    ends = local_text(notice.period.end, timezone, date=True)
    month = notice.period.kind == "month"
    if notice.kind == "reset":
        event, title = Event.RESOLVED, f"The {word} budget of {project} starts again ({notice.period.id})"
        summary = f"{rule_name(notice)}: {notice.ended} is over; {limit} for {notice.period.id}, thresholds re-armed."
    elif notice.kind == "burn":
        assert notice.exhaustion_at is not None
        when = local_text(notice.exhaustion_at, timezone, date=month)
        event, title = Event.FIRING, f"At this pace the {word} budget of {project} runs out at {when}"
        summary = (
            f"{rule_name(notice)}: {spent} of {limit} spent in {notice.period.id}; at the current pace the budget "
            f"runs out at {when}, before the period ends ({ends})."
        )
    else:
        threshold = notice.threshold or 0.0
        exhausted = threshold >= 1.0
        state = "exhausted" if exhausted else f"{threshold:.0%} spent"
        event, title = Event.FIRING, f"The {word} budget of {project} is {state}: {spent} of {limit}"
        summary = f"{rule_name(notice)}: {spent} of {limit} spent in {notice.period.id} (resets {ends})."
        if exhausted:
            summary += ACTION_WORDS.get(action, "")
    figures = {"spent_usd": round(notice.spent_usd, 4), "limit_usd": notice.limit_usd}
    if notice.limit_usd > 0 and notice.kind != "reset":
        figures["ratio"] = notice.spent_usd / notice.limit_usd
    if notice.threshold is not None and notice.kind == "threshold":
        figures["threshold"] = notice.threshold
    if notice.exhaustion_at is not None:
        figures["exhaustion_timestamp"] = notice.exhaustion_at.timestamp()
    return Notification(
        id=str(uuid.uuid4()),
        rule=rule_name(notice),
        event=event,
        severity=severity(notice),
        title=title,
        summary=summary,
        dedup_key=f"nbmon/{environment}/budget/{project}/{word}",
        at=at,
        since=notice.period.start,
        environment=environment,
        figures=figures,
        links=dict(links),
    )
