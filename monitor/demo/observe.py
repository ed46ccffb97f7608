"""What the demo shows, read from the real components: the daemon's rule and flag, the app's metrics and
tally, the quota gauges on the daemon's registry, and what the fake Slack and PagerDuty received."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.alerts import State
from monitor.demo.load import Tally
from monitor.demo.script import PRO
from monitor.demo.stack import DemoStack

RULE = "degraded-mode"
REFUSED = frozenset({"rate_limited", "quota_exhausted"})  # refused calls are not quota usage


@dataclass(frozen=True, slots=True)
class Event:
    t: float  # seconds into the day
    kind: str  # phase, rule, mode, notify
    text: str


@dataclass(frozen=True, slots=True)
class ModeChange:
    t: float
    degraded: bool
    state: str  # the rule's new state
    reason: str


@dataclass(frozen=True, slots=True)
class Received:
    t: float
    channel: str
    text: str


@dataclass(frozen=True, slots=True)
class MetricSums:
    """The app's registry, summed the way the demo shows it."""

    attempts: dict[str, float] = field(default_factory=dict)  # nbmon_requests_total by error_class
    pro_usage: float = 0.0  # Pro attempts that count against its quota
    retries: dict[str, float] = field(default_factory=dict)  # nbmon_retries_total by error_class
    routing: dict[str, float] = field(default_factory=dict)  # nbmon_degraded_routing_total by decision
    fallbacks: dict[str, float] = field(default_factory=dict)  # nbmon_fallbacks_total by reason
    waited_s: float = 0.0
    spend_usd: float = 0.0
    internal_errors: dict[str, float] = field(default_factory=dict)
    deprecated_calls: dict[str, float] = field(default_factory=dict)  # "model (lifecycle)" -> calls
    reroutes: dict[str, float] = field(default_factory=dict)  # "requested -> served" -> calls


@dataclass(frozen=True, slots=True)
class QuotaGauge:
    usage: float
    limit: float
    utilization: float


@dataclass(frozen=True, slots=True)
class Snapshot:
    t: float
    degraded: bool
    rule_state: str
    ratio: float | None
    numerator: float
    denominator: float
    recent: Counter[str]  # models served in the last few seconds
    tally: Tally
    sums: MetricSums
    quota: dict[str, QuotaGauge]  # by window: minute, day


def metric_sums(registry: CollectorRegistry) -> MetricSums:
    attempts: defaultdict[str, float] = defaultdict(float)
    retries: defaultdict[str, float] = defaultdict(float)
    routing: defaultdict[str, float] = defaultdict(float)
    fallbacks: defaultdict[str, float] = defaultdict(float)
    internal: defaultdict[str, float] = defaultdict(float)
    deprecated: defaultdict[str, float] = defaultdict(float)
    reroutes: defaultdict[str, float] = defaultdict(float)
    pro_usage = waited = spend = 0.0
    for family in registry.collect():
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "nbmon_requests_total":
                attempts[labels["error_class"]] += value
                if labels["model"] == PRO and labels["error_class"] not in REFUSED:
                    pro_usage += value
            elif name == "nbmon_retries_total":
                retries[labels["error_class"]] += value
            elif name == "nbmon_degraded_routing_total":
                routing[labels["decision"]] += value
            elif name == "nbmon_fallbacks_total":
                fallbacks[labels["reason"]] += value
            elif name == "nbmon_retry_wait_seconds_total":
                waited += value
            elif name == "nbmon_estimated_cost_usd_total":
                spend += value
            elif name == "nbmon_internal_errors_total" and value:
                internal[labels["component"]] += value
            elif name == "nbmon_deprecated_model_calls_total":
                deprecated[f"{labels['model']} ({labels['lifecycle']})"] += value
            elif name == "nbmon_model_reroutes_total":
                reroutes[f"{labels['requested']} -> {labels['served']}"] += value
    return MetricSums(
        dict(attempts),
        pro_usage,
        dict(retries),
        dict(routing),
        dict(fallbacks),
        waited,
        spend,
        dict(internal),
        dict(deprecated),
        dict(reroutes),
    )


def quota_gauges(registry: CollectorRegistry) -> dict[str, QuotaGauge]:
    """The daemon's nbmon_quota_* gauges (from the last poll of the fake Cloud Monitoring), by window."""
    values: dict[str, dict[str, float]] = {}
    wanted = {"nbmon_quota_usage", "nbmon_quota_limit", "nbmon_quota_utilization_ratio"}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in wanted:
                values.setdefault(sample.labels.get("window", ""), {})[sample.name] = sample.value
    return {
        window: QuotaGauge(v["nbmon_quota_usage"], v["nbmon_quota_limit"], v["nbmon_quota_utilization_ratio"])
        for window, v in values.items()
        if len(v) == len(wanted)
    }


class Observer:
    """Turns what the stack did since the last call into events, and keeps the evidence for the verdict."""

    def __init__(self, stack: DemoStack, day_started: float) -> None:
        self.stack = stack
        self.day_started = day_started  # time.monotonic(), the daemon's clock too
        self.mode_changes: list[ModeChange] = []  # into and out of degraded mode, and probes that passed
        self.received: list[Received] = []
        self.peak_ratio: float | None = None
        self.pro_served_at_recovery: int | None = None
        self._last_transition_at = float("-inf")
        self._seen = {"slack": 0, "pagerduty": 0}
        self._model_events: list[Event] = []  # found in a snapshot, shown at the next events()
        self._models_seen: set[str] = set()

    def now(self) -> float:
        return time.monotonic() - self.day_started

    def events(self) -> list[Event]:
        events: list[Event] = []
        for transition in self.stack.daemon.evaluator.history:
            if transition.at <= self._last_transition_at or transition.rule != RULE:
                continue
            self._last_transition_at = transition.at
            t = transition.at - self.day_started
            came, went = transition.from_state.value, transition.to_state.value
            events.append(Event(t, "rule", f"rule {RULE}: {came} -> {went}: {transition.reason}"))
            probe_passed = transition.from_state is State.PROBING and transition.to_state is State.OK
            if transition.degraded_changed or probe_passed:
                degraded = transition.to_state.degraded
                self.mode_changes.append(ModeChange(t, degraded, went, transition.reason))
                if transition.degraded_changed:
                    events.append(Event(t, "mode", self._mode_text(degraded, transition.to_state)))
                if not degraded:
                    self.pro_served_at_recovery = self.stack.load.tally.served[PRO]
        events.extend(self._notifications())
        events.extend(self._model_events)
        self._model_events.clear()
        return events

    def _watch_models(self, sums: MetricSums) -> None:
        """The first call to a deprecated model and the first reroute, as nbmon's metrics counted them."""
        legacy = self.stack.legacy
        for key in sums.deprecated_calls:
            if key not in self._models_seen:
                self._models_seen.add(key)
                text = f"deprecated model called: {key}"
                if legacy is not None and key.startswith(legacy.model + " "):
                    text += f", deprecated since {legacy.deprecated}; migrate to {legacy.replacement}"
                self._model_events.append(Event(self.now(), "model", text + " (nbmon_deprecated_model_calls_total)"))
        for key in sums.reroutes:
            if key not in self._models_seen:
                self._models_seen.add(key)
                requested, served = key.split(" -> ")
                self._model_events.append(
                    Event(
                        self.now(),
                        "model",
                        f"silent reroute: {requested} answered by {served} (modelVersion), billed at its price "
                        "(nbmon_model_reroutes_total)",
                    )
                )

    def _mode_text(self, degraded: bool, state: State) -> str:
        if degraded:
            share = self.stack.options.canary_share
            return f"MODE -> DEGRADED: the app sends its calls to Flash, {share:.0%} canary to Pro"
        if state is State.PROBING:
            return "MODE -> NORMAL (probing: too little canary traffic to judge; the flag is released to test Pro)"
        return "MODE -> NORMAL: the app is back on Pro"

    def _notifications(self) -> list[Event]:
        events = []
        for channel, sink in (("slack", self.stack.slack), ("pagerduty", self.stack.pagerduty)):
            accepted = list(sink.accepted)
            for body in accepted[self._seen[channel] :]:
                text = _describe(channel, body)
                self.received.append(Received(self.now(), channel, text))
                events.append(Event(self.now(), "notify", f"{channel} <- {text}"))
            self._seen[channel] = len(accepted)
        return events

    def snapshot(self) -> Snapshot:
        daemon = self.stack.daemon
        status = daemon.rule_statuses()[RULE]
        if status.ratio is not None and not status.insufficient_data:
            self.peak_ratio = max(self.peak_ratio or 0.0, status.ratio)
        sums = metric_sums(self.stack.registry)
        self._watch_models(sums)
        return Snapshot(
            t=self.now(),
            degraded=daemon.store.effective().value,
            rule_state=status.state.value,
            ratio=status.ratio,
            numerator=status.numerator,
            denominator=status.denominator,
            recent=self.stack.load.tally.recent(),
            tally=self.stack.load.tally.copy(),
            sums=sums,
            quota=quota_gauges(daemon.registry),
        )


def _describe(channel: str, body: Any) -> str:
    """One line for a received notification: Slack's fallback text, PagerDuty's action and summary."""
    if channel == "slack":
        return str(body.get("text", "")).splitlines()[0] if isinstance(body, dict) and body.get("text") else "?"
    if not isinstance(body, dict):
        return "?"
    payload = body.get("payload")
    summary = str(payload.get("summary", "")) if isinstance(payload, dict) else ""
    text = f"{body.get('event_action', '?')} {body.get('dedup_key', '')}"
    return f"{text}: {summary.split(':', 1)[0]}" if summary else text  # the title; the figures follow it
