"""The admin API's documents, without HTTP or state: override requests parsed and checked, the state document.

`parse_override` is what `POST /v1/override` accepts (a ValueError is the 400's reason); `state_document` is
`GET /v1/state` and the body of every admin answer. Both are pure: the daemon passes in what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alerts import RuleStatus, Transition
from monitor.config import ShimConfig
from monitor.daemon.config import positive_seconds
from monitor.flagstate import Decision, Models, decision_to_dict
from monitor.logs import redact_text

MAX_OVERRIDE_S = 7 * 86400.0  # an override is a stopgap, not a way to run: change the rules instead
UNSAVED_WARNING = (
    "in force now, but the state file could not be saved: a restart would lose it. nbmon retries the save "
    "on every evaluation; see /readyz and nbmon_persistence_ok"
)
_OVERRIDE_FIELDS = frozenset({"value", "reason", "expires_in", "expires_at", "set_by"})


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    value: bool
    reason: str  # redacted, at most 500 characters
    expires_at: datetime
    set_by: str  # redacted, at most 64 characters


def parse_override(request: Mapping[str, Any], now: datetime) -> OverrideRequest:
    """{"value": bool, "reason": str, "expires_in": "30m" | seconds} or {"expires_at": ISO 8601}, "set_by"."""
    value, reason = request.get("value"), request.get("reason")
    if not isinstance(value, bool):
        raise ValueError("value: must be true (force degraded) or false (force normal)")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("reason: required, so the next person on call knows why")
    unknown = set(request) - _OVERRIDE_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    expires = _expiry(request, now)
    if expires <= now:
        raise ValueError("the expiry is in the past")
    if (expires - now).total_seconds() > MAX_OVERRIDE_S:
        raise ValueError("the expiry is more than 7 days ahead: an override is a stopgap (change the rules instead)")
    # Reasons are served without credentials (/v1/state, OFREP metadata): secret shapes never get that far.
    set_by = redact_text(str(request.get("set_by") or "admin-api"))[:64]
    return OverrideRequest(value, redact_text(reason.strip())[:500], expires, set_by)


def _expiry(request: Mapping[str, Any], now: datetime) -> datetime:
    if "expires_at" in request:
        try:
            expires = datetime.fromisoformat(str(request["expires_at"]))
        except ValueError:
            raise ValueError("expires_at: must be an ISO 8601 date-time with a timezone") from None
        if expires.tzinfo is None:
            raise ValueError("expires_at: must carry a timezone (e.g. 2026-11-27T18:00:00Z)")
        return expires
    if "expires_in" in request:
        try:
            seconds = positive_seconds(request["expires_in"], "expires_in")
        except ValueError as exc:  # a ConfigError: the 400 says the same, as a plain ValueError
            raise ValueError(str(exc)) from None
        try:
            return datetime.fromtimestamp(now.timestamp() + seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("expires_in: too far in the future") from None
    raise ValueError("expires_in or expires_at: an override must expire (e.g. expires_in: 30m)")


def rule_status_document(status: RuleStatus) -> dict[str, Any]:
    return {
        "state": status.state.value,
        "degraded": status.degraded,
        "insufficient_data": status.insufficient_data,
        "no_data": status.no_data,
        "ratio": status.ratio,
        "numerator": status.numerator,
        "denominator": status.denominator,
    }


def transition_document(transition: Transition, now: float) -> dict[str, Any]:
    return {
        "rule": transition.rule,
        "from": transition.from_state.value,
        "to": transition.to_state.value,
        "ratio": transition.ratio,
        "numerator": transition.numerator,
        "denominator": transition.denominator,
        "reason": transition.reason,
        "seconds_ago": round(now - transition.at, 1),
    }


@dataclass(frozen=True, slots=True)
class AlertmanagerView:
    firing: list[str]
    holds_flag: bool


def state_document(
    *,
    effective: Decision,
    statuses: Mapping[str, RuleStatus],
    models: Models,
    shim: ShimConfig,
    alertmanager: AlertmanagerView,
    quota: str | None,
    history: Iterable[Transition],
    now: float,
    stored: dict[str, Any],
) -> dict[str, Any]:
    """`GET /v1/state`: the decision in force, every rule, the models, Alertmanager, quota, recent transitions
    (the last 50) and the persisted state. `now` is the monotonic time the transitions' ages are measured at."""
    return {
        "effective": decision_to_dict(effective),
        "rules": {name: rule_status_document(status) for name, status in statuses.items()},
        "models": {
            "primary": models.primary,
            "fallback": models.fallback,
            "configured": {"primary": shim.configured_primary, "fallback": shim.configured_fallback},
            "notes": [f"{note.key}: {note.message}" for note in shim.lifecycle_notes()],
        },
        "alertmanager": {"firing": alertmanager.firing, "holds_flag": alertmanager.holds_flag},
        "quota": quota,
        "transitions": [transition_document(t, now) for t in list(history)[-50:]],
        "state": stored,
    }
