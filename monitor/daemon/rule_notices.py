"""Rule transitions into the notification outbox: one FIRING when an episode starts, one RESOLVED when it ends.

The wording is `monitor.notify.events`' (pure); this keeps each episode's start, so the RESOLVED message says
since when, and routes each rule to its channels. Submitting is an insert into the outbox: it never blocks the
evaluation on the network.

In a fleet (`claims`, with `[fleet] redis_url`) every sidecar reading the fleet's figures sees the same transitions:
each notice is claimed in Redis first (its dedup_key and event, for `claim_ttl_s`) and queued by the winner only.
A `resolved` supersedes the episode's `firing` claim and vice versa, so a new episode is told however soon it comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from monitor.alerts import Action, Rule, Transition
from monitor.fleet.notice_claims import NoticeClaims
from monitor.notify import Notification
from monitor.notify import events as notify_events
from monitor.notify.config import NotifyConfig

Submit = Callable[[Notification, Iterable[str]], object]


class RuleNotifier:
    def __init__(
        self,
        rules: Mapping[str, Rule],
        flag_rules: frozenset[str],
        notify: NotifyConfig,
        primary_model: str,
        submit: Submit,
        wall: Callable[[], datetime],
        *,
        claims: NoticeClaims | None = None,
        claim_ttl_s: float = 60.0,
    ) -> None:
        self._rules, self._flag_rules, self._notify = rules, flag_rules, notify
        self._primary_model, self._submit, self._wall = primary_model, submit, wall
        self._claims, self._claim_ttl_s = claims, claim_ttl_s
        self._episodes: dict[str, datetime] = {}  # rule -> when its current episode was notified as firing

    def on_transition(self, transition: Transition) -> None:
        rule = self._rules.get(transition.rule)
        if rule is None or Action.NOTIFY not in rule.actions:
            return
        flag_rule = rule.name in self._flag_rules
        event = notify_events.event_for(transition, flag_rule)
        if event is None:
            return
        if event is notify_events.Event.FIRING:
            since: datetime | None = self._episodes.setdefault(rule.name, self._wall())
        else:
            since = self._episodes.pop(rule.name, None)
        notification = notify_events.build(
            transition,
            rule,
            flag_rule=flag_rule,
            model=self._primary_model,
            environment=self._notify.environment,
            at=self._wall(),
            since=since,
            links=self._notify.links,
        )
        if notification is None or not self._claimed(notification.dedup_key, event):
            return
        self._submit(notification, self._notify.channels_for(rule.name, rule.severity.value))

    def _claimed(self, dedup_key: str, event: notify_events.Event) -> bool:
        """True: this sidecar queues the notice (no fleet, it won the claim, or Redis could not say)."""
        if self._claims is None:
            return True
        firing = event is notify_events.Event.FIRING
        other = notify_events.Event.RESOLVED if firing else notify_events.Event.FIRING
        return self._claims.claim(
            f"{dedup_key}:{event.value}", self._claim_ttl_s, supersedes=[f"{dedup_key}:{other.value}"]
        )
