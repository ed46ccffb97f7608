"""What every notification channel shares: the notification, one delivery's result, the Notifier protocol."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Event(StrEnum):
    FIRING = "firing"  # entered degraded mode / a rule fired: PagerDuty trigger
    RESOLVED = "resolved"  # left degraded mode / the rule recovered: PagerDuty resolve


class Result(StrEnum):
    """One delivery attempt's result; also the `result` label of nbmon_notifications_total (with dropped)."""

    SENT = "sent"
    RETRY = "retried"  # transient (429, 5xx, connection): try again later
    PERMANENT = "failed_permanent"  # 400/403/404/410 and the like: retrying cannot help
    DROPPED = "dropped"  # given up after the bounded retries, or the queue was full
    UNPERSISTED = "unpersisted"  # the outbox could not save it (disk full, read-only): held and sent from memory


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing the people on call must know, with the figures. JSON-able, for the persisted outbox."""

    id: str  # unique; receivers that deduplicate use dedup_key instead
    rule: str
    event: Event
    severity: str  # critical | warning | info
    title: str  # one line, e.g. "gemini-3-pro-image entered degraded mode"
    summary: str  # the figures in words, e.g. "503 ratio 42.0% > 30% over 1m (126/300) since 14:05 UTC"
    dedup_key: str  # stable per rule and environment, so repeated triggers never open a second incident
    at: datetime  # when it happened (UTC)
    since: datetime | None = None  # start of the episode
    model: str | None = None
    environment: str = "production"
    figures: Mapping[str, float] = field(default_factory=dict)  # ratio, numerator, denominator, window_s, threshold
    links: Mapping[str, str] = field(default_factory=dict)  # "dashboard", "runbook" -> URL
    override_command: str | None = None  # e.g. "nbmon flag set off --reason ... --for 30m"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "event": self.event.value,
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "dedup_key": self.dedup_key,
            "at": self.at.isoformat(),
            "since": self.since.isoformat() if self.since else None,
            "model": self.model,
            "environment": self.environment,
            "figures": dict(self.figures),
            "links": dict(self.links),
            "override_command": self.override_command,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            event=Event(data["event"]),
            severity=str(data["severity"]),
            title=str(data["title"]),
            summary=str(data["summary"]),
            dedup_key=str(data["dedup_key"]),
            at=datetime.fromisoformat(data["at"]),
            since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
            model=data.get("model"),
            environment=str(data.get("environment", "production")),
            figures={str(k): float(v) for k, v in (data.get("figures") or {}).items()},
            links={str(k): str(v) for k, v in (data.get("links") or {}).items()},
            override_command=data.get("override_command"),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    result: Result
    retry_after_s: float | None = None  # what the receiver asked for (Retry-After), if anything
    detail: str = ""  # for logs: status and reason, never the URL or a key


class Notifier(Protocol):
    """One channel. `send` makes ONE attempt, never sleeps and never raises (errors become a Delivery)."""

    name: str  # the channel name from the config: the `channel` label

    def send(self, notification: Notification) -> Delivery: ...
