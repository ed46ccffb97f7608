"""JSON form of the flag state (the persisted file and `GET /v1/state`), with strict parsing.

Parsing is strict on purpose: a state file that does not parse must stop the daemon with a message naming
the key at fault, never be read as "not degraded".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from monitor.flagstate.state import HISTORY_LIMIT, Decision, FlagChange, FlagState, Override, Stop

STATE_VERSION = 1
_T = TypeVar("_T")


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def override_to_dict(override: Override | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {
        "value": override.value,
        "reason": override.reason,
        "expires_at": iso(override.expires_at),
        "set_by": override.set_by,
        "set_at": iso(override.set_at),
    }


def stop_to_dict(stop: Stop) -> dict[str, Any]:
    return {"reason": stop.reason, "since": iso(stop.since), "until": iso(stop.until), "set_by": stop.set_by}


def change_to_dict(entry: FlagChange) -> dict[str, Any]:
    return {
        "at": iso(entry.at),
        "from": entry.from_,
        "to": entry.to,
        "rule": entry.rule,
        "reason": entry.reason,
        "figures": dict(entry.figures),
        "source": entry.source,
    }


def state_to_dict(state: FlagState) -> dict[str, Any]:
    document = {
        "version": STATE_VERSION,
        "degraded": state.degraded,
        "since": iso(state.since),
        "rule": state.rule,
        "reason": state.reason,
        "figures": dict(state.figures),
        "override": override_to_dict(state.override),
        "history": [change_to_dict(entry) for entry in state.history],
    }
    if state.stop is not None:  # only when set: a file without a stop is the same as before stops existed
        document["stop"] = stop_to_dict(state.stop)
    return document


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    document = {
        "value": decision.value,
        "reason": decision.reason,
        "since": iso(decision.since),
        "rule": decision.rule,
        "source": decision.source,
        "figures": dict(decision.figures),
        "evaluated": decision.evaluated,
        "override": override_to_dict(decision.override),
    }
    if decision.stop is not None:
        document["stop"] = stop_to_dict(decision.stop)
    return document


def parse_state(data: Any) -> FlagState:
    obj = _object(data, "state")
    version = obj.get("version")
    if version != STATE_VERSION:
        raise ValueError(f"version: expected {STATE_VERSION}, got {version!r}")
    history = obj.get("history")
    if not isinstance(history, list):
        raise ValueError(f"history: expected a list, got {type(history).__name__}")
    if len(history) > HISTORY_LIMIT:
        raise ValueError(f"history: {len(history)} entries, more than {HISTORY_LIMIT}")
    override = obj.get("override")
    stop = obj.get("stop")
    return FlagState(
        degraded=_get(obj, "degraded", bool, "state"),
        since=_time(obj, "since", "state"),
        rule=_get(obj, "rule", str, "state"),
        reason=_get(obj, "reason", str, "state"),
        figures=_figures(obj, "state"),
        override=None if override is None else _override(override),
        history=tuple(_change(entry, f"history[{i}]") for i, entry in enumerate(history)),
        stop=None if stop is None else _stop(stop),
    )


def _stop(data: Any) -> Stop:
    obj = _object(data, "stop")
    return Stop(
        reason=_get(obj, "reason", str, "stop"),
        since=_time(obj, "since", "stop"),
        until=_time(obj, "until", "stop"),
        set_by=_get(obj, "set_by", str, "stop"),
    )


def _override(data: Any) -> Override:
    obj = _object(data, "override")
    return Override(
        value=_get(obj, "value", bool, "override"),
        reason=_get(obj, "reason", str, "override"),
        expires_at=_time(obj, "expires_at", "override"),
        set_by=_get(obj, "set_by", str, "override"),
        set_at=_time(obj, "set_at", "override"),
    )


def _change(data: Any, where: str) -> FlagChange:
    obj = _object(data, where)
    source = _get(obj, "source", str, where)
    if source not in ("rule", "override"):
        raise ValueError(f"{where}.source: expected 'rule' or 'override', got {source!r}")
    return FlagChange(
        at=_time(obj, "at", where),
        from_=_get(obj, "from", bool, where),
        to=_get(obj, "to", bool, where),
        rule=_get(obj, "rule", str, where),
        reason=_get(obj, "reason", str, where),
        figures=_figures(obj, where),
        source="rule" if source == "rule" else "override",
    )


def _object(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def _get(obj: Mapping[str, Any], key: str, kind: type[_T], where: str) -> _T:
    value = obj.get(key)
    if not isinstance(value, kind):
        raise ValueError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _time(obj: Mapping[str, Any], key: str, where: str) -> datetime:
    text = _get(obj, key, str, where)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"{where}.{key}: {error}") from error
    if value.tzinfo is None:
        raise ValueError(f"{where}.{key}: {text!r} has no timezone")
    return value


def _figures(obj: Mapping[str, Any], where: str) -> dict[str, float]:
    figures = _object(obj.get("figures"), f"{where}.figures")
    for key, value in figures.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.figures.{key}: expected a number, got {value!r}")
    return dict(figures)
