"""The rule evaluator: a pure state machine per rule, fed counts over each rule's window.

States (their strings are the public contract of `nbmon_rule_state{rule,state}`):

- `ok` -> `pending`: the first evaluation with ratio > threshold; `since` is that evaluation's time.
- `pending` -> `firing`: the first evaluation with ratio > threshold and `now - since >= hold_s`: exactly when the hold
  is reached, not one evaluation early. Any evaluation with ratio <= threshold goes back to `ok`. With `hold_s = 0`
  `ok` goes straight to `firing`.
- `firing` -> `recovering`: an evaluation with ratio < recovery_threshold. Ratios in [recovery_threshold, threshold]
  keep it firing: that gap is the hysteresis, so flapping input cannot flap the flag.
- `recovering` -> `ok`: ratio < recovery_threshold and `now - since >= recovery_hold_s`; any ratio
  >= recovery_threshold goes back to `firing`.
- `firing`/`recovering` -> `probing` (a circuit breaker going half-open): while degraded the app sends only a canary
  share to the primary; when even that is too little to decide (denominator under min_volume, or no data, at every
  evaluation for `probe_after_s`, timed from the first such evaluation) the rule probes: `probing` is not degraded,
  so the flag is released and traffic reaches the primary again. From `probing`: ratio > threshold goes straight
  back to `firing` (the probe failed, no hold); ratio < recovery_threshold for `recovery_hold_s` (timed from the
  first such evaluation) goes to `ok`; anything else stays `probing` and restarts that timer. `probe_after_s = None`:
  never.

Minimum volume: an evaluation whose denominator count is < min_volume (or with no data at all: the window's counts
passed as None) is "insufficient data": no transition, and the pending/recovering/probe timers are neither reset nor
completed by it (they are times since an evaluation, so time still passes: the next sufficient evaluation above the
threshold after the hold fires). Only the no-traffic timer looks at such evaluations, and only at count 0.

Degraded (what `set_flag` rules drive) means `firing` or `recovering`. Every transition is a `Transition` with the
figures that caused it; the evaluator keeps the last 200. Pure: time is monotonic seconds passed in, no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from monitor.alerts.rules import Action, Rule
from monitor.config import ConfigError
from monitor.signals import Counts

HISTORY_SIZE = 200
_EPS = 1e-6  # a hold reached to within a microsecond is reached: float noise in summed timestamps must not delay it


class State(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RECOVERING = "recovering"
    PROBING = "probing"

    @property
    def degraded(self) -> bool:
        return self in (State.FIRING, State.RECOVERING)


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change of one rule, with the figures that caused it."""

    rule: str
    from_state: State
    to_state: State
    at: float
    ratio: float | None  # None when the denominator was 0 (a probe for lack of traffic)
    numerator: float
    denominator: float
    window_s: float
    threshold: float
    reason: str

    @property
    def degraded_changed(self) -> bool:
        return self.from_state.degraded != self.to_state.degraded


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule's state and the figures of its last evaluation."""

    rule: str
    state: State
    since: float | None  # when the current state was entered; None: ok since the evaluator started
    degraded_since: float | None  # start of the current firing/recovering stretch
    insufficient_data: bool  # the last evaluation had denominator < min_volume, or no data
    no_data: bool  # the last evaluation had no counts at all (source down), not merely low traffic
    ratio: float | None
    numerator: float
    denominator: float
    evaluated_at: float | None

    @property
    def degraded(self) -> bool:
        return self.state.degraded


class _Tracker:
    __slots__ = (
        "degraded_since",
        "denominator",
        "evaluated_at",
        "insufficient",
        "no_data",
        "no_traffic_since",
        "numerator",
        "probe_ok_since",
        "ratio",
        "since",
        "state",
    )

    def __init__(self) -> None:
        self.state = State.OK
        self.since: float | None = None
        self.degraded_since: float | None = None
        self.no_traffic_since: float | None = None  # first evaluation of the current zero-traffic stretch
        self.probe_ok_since: float | None = None  # first evaluation of the current healthy stretch while probing
        self.ratio: float | None = None
        self.numerator = 0.0
        self.denominator = 0.0
        self.insufficient = False
        self.no_data = False
        self.evaluated_at: float | None = None


class Evaluator:
    """Evaluates the enabled rules; `evaluate()` once per tick with counts for every window in `windows`."""

    def __init__(self, rules: Iterable[Rule], *, history_size: int = HISTORY_SIZE) -> None:
        self._rules: dict[str, Rule] = {}
        for rule in rules:
            if rule.name in self._rules:
                raise ConfigError(f"rules.{rule.name}", "defined twice")
            if rule.enabled:
                self._rules[rule.name] = rule
        self._trackers = {name: _Tracker() for name in self._rules}
        self._history: deque[Transition] = deque(maxlen=history_size)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(self._rules.values())

    @property
    def windows(self) -> tuple[float, ...]:
        """The distinct windows (seconds) `evaluate()` needs counts for."""
        return tuple(sorted({rule.window_s for rule in self._rules.values()}))

    @property
    def history(self) -> tuple[Transition, ...]:
        """The last transitions, oldest first."""
        return tuple(self._history)

    @property
    def degraded(self) -> bool:
        """True when a rule with the set_flag action is firing or recovering."""
        return any(
            self._trackers[name].state.degraded for name, rule in self._rules.items() if Action.SET_FLAG in rule.actions
        )

    def state(self, rule_name: str) -> RuleStatus:
        t = self._tracker(rule_name)
        return RuleStatus(
            rule_name,
            t.state,
            t.since,
            t.degraded_since,
            t.insufficient,
            t.no_data,
            t.ratio,
            t.numerator,
            t.denominator,
            t.evaluated_at,
        )

    def statuses(self) -> dict[str, RuleStatus]:
        return {name: self.state(name) for name in self._rules}

    def evaluate(self, now: float, counts_by_window: Mapping[float, Counts | None]) -> list[Transition]:
        """Advance every rule to `now`; counts for a window may be None for "no data" (e.g. coverage 0)."""
        if not math.isfinite(now):
            raise ValueError(f"now: must be finite, got {now!r}")
        missing = [w for w in self.windows if w not in counts_by_window]
        if missing:  # checked before any rule moves, so a bad call changes nothing
            raise ValueError(f"counts_by_window: no entry for window(s) {missing} (use None for no data)")
        transitions = []
        for name, rule in self._rules.items():
            transition = self._step(rule, self._trackers[name], now, counts_by_window[rule.window_s])
            if transition is not None:
                transitions.append(transition)
                self._history.append(transition)
        return transitions

    def restore(self, rule_name: str, state: State | str, since: float, *, degraded_since: float | None = None) -> None:
        """Put a rule back in a persisted state without emitting a transition (e.g. `firing` since T after a restart).

        `since` must be in the same monotonic timebase as `now`. Timers continue from it: a restored `pending` or
        `recovering` completes its hold at `since + hold`. `degraded_since` defaults to `since` for degraded states.
        """
        t = self._tracker(rule_name)
        restored = State(state)
        if not math.isfinite(since):
            raise ValueError(f"since: must be finite, got {since!r}")
        t.state, t.since = restored, since
        t.degraded_since = (since if degraded_since is None else degraded_since) if restored.degraded else None
        t.no_traffic_since = t.probe_ok_since = None

    def _tracker(self, rule_name: str) -> _Tracker:
        try:
            return self._trackers[rule_name]
        except KeyError:
            raise KeyError(f"no enabled rule named {rule_name!r}") from None

    def _step(self, rule: Rule, t: _Tracker, now: float, counts: Counts | None) -> Transition | None:
        t.evaluated_at = now
        t.no_data = counts is None
        num = rule.numerator.count(counts) if counts is not None else 0.0
        den = rule.denominator.count(counts) if counts is not None else 0.0
        ratio = num / den if den > 0 else None
        t.numerator, t.denominator, t.ratio = num, den, ratio
        t.insufficient = counts is None or den < rule.min_volume

        def move(to: State, reason: str) -> Transition:
            return self._move(rule, t, to, now, reason)

        if t.state.degraded and counts is not None:
            # Too little traffic to decide (a 5% canary of a small app stays under min_volume) counts like none:
            # otherwise the rule could never recover nor probe. A source outage (no data) proves nothing.
            if den >= rule.min_volume:
                t.no_traffic_since = None
            elif t.no_traffic_since is None:
                t.no_traffic_since = now
            if rule.probe_after_s is not None and t.no_traffic_since is not None:
                quiet = now - t.no_traffic_since
                if quiet >= rule.probe_after_s - _EPS:
                    return move(
                        State.PROBING,
                        f"under {rule.min_volume} requests for {quiet:g}s: probing the primary, flag released",
                    )
        if t.insufficient or ratio is None:
            return None
        above, healthy = ratio > rule.threshold, ratio < rule.recovery_threshold
        fig, th, rt = _figures(rule, t), f"{rule.threshold:g}", f"{rule.recovery_threshold:g}"
        held = t.since is not None and now - t.since >= rule.hold_s - _EPS
        recovered = t.since is not None and now - t.since >= rule.recovery_hold_s - _EPS
        if t.state is State.OK and above:
            if rule.hold_s <= 0:
                return move(State.FIRING, f"{fig} > {th} (no hold)")
            return move(State.PENDING, f"{fig} > {th}, firing if it holds {rule.hold_s:g}s")
        if t.state is State.PENDING:
            if not above:
                return move(State.OK, f"{fig} <= {th}, pending reset")
            if held:
                return move(State.FIRING, f"{fig} > {th} for {rule.hold_s:g}s")
        elif t.state is State.FIRING and healthy:
            if rule.recovery_hold_s <= 0:
                return move(State.OK, f"{fig} < {rt} (no recovery hold)")
            return move(State.RECOVERING, f"{fig} < {rt}, ok if it holds {rule.recovery_hold_s:g}s")
        elif t.state is State.RECOVERING:
            if not healthy:
                return move(State.FIRING, f"{fig} >= {rt}, recovery reset")
            if recovered:
                return move(State.OK, f"{fig} < {rt} for {rule.recovery_hold_s:g}s")
        elif t.state is State.PROBING:
            if above:
                return move(State.FIRING, f"probe failed: {fig} > {th}")
            if not healthy:
                t.probe_ok_since = None  # between the thresholds: neither failed nor recovered yet
                return None
            if t.probe_ok_since is None:
                t.probe_ok_since = now
            if now - t.probe_ok_since >= rule.recovery_hold_s - _EPS:
                return move(State.OK, f"probe succeeded: {fig} < {rt} for {rule.recovery_hold_s:g}s")
        return None

    def _move(self, rule: Rule, t: _Tracker, to: State, now: float, reason: str) -> Transition:
        came_from = t.state
        t.state, t.since = to, now
        if not to.degraded:
            t.degraded_since = None
        elif not came_from.degraded:
            t.degraded_since = now
        t.no_traffic_since = t.probe_ok_since = None
        return Transition(
            rule.name, came_from, to, now, t.ratio, t.numerator, t.denominator, rule.window_s, rule.threshold, reason
        )


def _figures(rule: Rule, t: _Tracker) -> str:
    ratio = "n/a" if t.ratio is None else f"{t.ratio:.3f}"
    return f"ratio {ratio} ({t.numerator:g}/{t.denominator:g} over {rule.window_s:g}s)"
