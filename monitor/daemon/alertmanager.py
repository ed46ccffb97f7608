"""Alertmanager's webhook into the daemon (fleet mode): named alerts set and clear degraded mode.

Prometheus and Alertmanager already apply `for:` (hold) and `keep_firing_for` (hysteresis); here a firing
alert named in the config sets the flag and the resolution of the last such alert clears it. A manual
override still wins, as with the built-in evaluator. Payload: Alertmanager webhook version 4.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_ALERTS = ("NbmonImage503RateHigh",)
RULE_PREFIX = "alertmanager:"


class PayloadError(ValueError):
    """A malformed webhook payload: answered with 400 and this message; nothing changes."""


@dataclass(frozen=True, slots=True)
class AlertUpdate:
    fingerprint: str
    name: str
    firing: bool
    labels: Mapping[str, str]


def parse_payload(payload: Any, watched: Iterable[str]) -> list[AlertUpdate]:
    """The updates for watched alert names, in payload order; PayloadError on anything malformed."""
    if not isinstance(payload, Mapping):
        raise PayloadError("the body must be a JSON object (Alertmanager webhook payload)")
    if str(payload.get("version")) != "4":
        raise PayloadError(f'unsupported payload version {payload.get("version")!r}: expected "4"')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: must be a list")
    names = set(watched)
    updates = []
    for i, alert in enumerate(alerts):
        if not isinstance(alert, Mapping):
            raise PayloadError(f"alerts[{i}]: must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"alerts[{i}].status: must be firing or resolved, got {status!r}")
        labels = alert.get("labels")
        if not isinstance(labels, Mapping) or not isinstance(labels.get("alertname"), str):
            raise PayloadError(f"alerts[{i}].labels.alertname: required")
        if labels["alertname"] not in names:
            continue
        fingerprint = alert.get("fingerprint")
        key = fingerprint if isinstance(fingerprint, str) and fingerprint else _label_key(labels)
        updates.append(
            AlertUpdate(key, labels["alertname"], status == "firing", {str(k): str(v) for k, v in labels.items()})
        )
    return updates


def _label_key(labels: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


class AlertTracker:
    """Which watched alerts are firing now; degraded while any is."""

    def __init__(self) -> None:
        self.firing: dict[str, AlertUpdate] = {}

    def apply(self, updates: Iterable[AlertUpdate]) -> None:
        for update in updates:
            if update.firing:
                self.firing[update.fingerprint] = update
            else:
                self.firing.pop(update.fingerprint, None)

    @property
    def degraded(self) -> bool:
        return bool(self.firing)

    def names(self) -> list[str]:
        return sorted({u.name for u in self.firing.values()})


class AlertmanagerHold:
    """Alertmanager's hold on the degraded-mode flag, one of the flag's holders beside the rules.

    It holds while a watched alert fires, for `recovery_hold_s` after the last one resolved (the same hysteresis
    as the built-in rule), and after a restart that found the flag set by Alertmanager, until it says otherwise.
    Time is passed in (monotonic seconds): no clock, no I/O.
    """

    def __init__(self, watched: Iterable[str], recovery_hold_s: float) -> None:
        self._watched = tuple(watched)
        self._recovery_hold_s = recovery_hold_s
        self._tracker = AlertTracker()
        self._resolved_at: float | None = None
        self._restored = False

    def restore(self) -> None:
        """The persisted flag was set by Alertmanager: hold it until Alertmanager reports the alert resolved."""
        self._restored = True

    def apply(self, payload: Any, now: float) -> tuple[int, str]:
        """A webhook payload (PayloadError when malformed: nothing changes) -> (alerts accepted, flag reason)."""
        updates = parse_payload(payload, self._watched)
        was_holding = self._tracker.degraded or self._restored
        self._tracker.apply(updates)
        if updates:
            if self._tracker.degraded:
                self._resolved_at, self._restored = None, False
            elif was_holding and any(not u.firing for u in updates):
                self._resolved_at, self._restored = now, False
        names = ", ".join(self._tracker.names() or sorted({u.name for u in updates})) or "none"
        return len(updates), f"Alertmanager: {names} {'firing' if self._tracker.degraded else 'resolved'}"

    def holds(self, now: float) -> bool:
        if self._tracker.degraded or self._restored:
            return True
        return self._resolved_at is not None and now - self._resolved_at < self._recovery_hold_s

    def firing(self) -> list[str]:
        """The watched alerts firing now, by name."""
        return self._tracker.names()
