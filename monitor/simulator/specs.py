"""Profile specs: JSON-compatible dicts and the compact CLI syntax, validated into Profile objects.

Every error is a ValueError naming the key at fault, e.g. "profile.weights.overloaded: must be between 0 and 1".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from monitor.simulator.outcomes import SimOutcome, to_outcome
from monitor.simulator.profiles import (
    FixedProfile,
    HourlyProfile,
    MixProfile,
    Phase,
    Profile,
    ScenarioProfile,
    SequenceProfile,
)

KINDS: Final = ("fixed", "sequence", "mix", "hourly", "scenario")

# Built-in scenarios for demos and tests; `phases` holds the same spec dicts a custom scenario takes.
BUILTIN_SCENARIOS: Final[dict[str, dict[str, Any]]] = {
    "outage": {
        "phases": [
            {"outcome": "ok", "seconds": 20},
            {"outcome": "overloaded", "seconds": 40},
            {"weights": {"overloaded": 0.3}, "seconds": 20},
            {"outcome": "ok"},
        ]
    },
    "rate_limit_burst": {
        "phases": [{"outcome": "ok", "requests": 20}, {"outcome": "rate_limited", "requests": 8}],
        "loop": True,
    },
    "daily_quota": {"phases": [{"outcome": "ok", "requests": 25}, {"outcome": "quota_exhausted"}]},
    "blocks": {
        "phases": [
            {"outcome": name, "requests": 1}
            for name in ("safety_block", "prompt_block", "policy_block", "recitation", "no_image", "no_image_stop")
        ],
        "loop": True,
    },
    "flaky_gateway": {"phases": [{"weights": {"bad_gateway": 0.1, "deadline_exceeded": 0.05, "reset": 0.05}}]},
    "stream_errors": {"phases": [{"weights": {"stream_error": 0.5}}]},
    "slow": {"phases": [{"outcome": "slow"}]},
}


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in spec:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown key; allowed keys: {', '.join(sorted(allowed))}")


def _number(value: Any, where: str, *, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: must be a number, got {value!r}")
    if high is not None and low is not None and not low <= value <= high:
        raise ValueError(f"{where}: must be between {low:g} and {high:g}, got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{where}: must be at least {low:g}, got {value!r}")
    return float(value)


def _int(value: Any, where: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{where}: must be an integer >= {low}, got {value!r}")
    return value


def _outcome(value: Any, where: str) -> SimOutcome:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be an outcome name (string), got {value!r}")
    return to_outcome(value, where)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be an object, got {value!r}")
    return value


def _weights(value: Any, where: str) -> dict[SimOutcome, float]:
    weights: dict[SimOutcome, float] = {}
    for name, weight in _mapping(value, where).items():
        weights[_outcome(name, f"{where}.{name}")] = _number(weight, f"{where}.{name}", low=0, high=1)
    if sum(weights.values()) > 1 + 1e-9:
        raise ValueError(f"{where}: weights sum to {sum(weights.values()):g}, must be at most 1 (the rest is ok)")
    return weights


def _phase(value: Any, where: str) -> Phase:
    spec = _mapping(value, where)
    _check_keys(spec, {"outcome", "weights", "requests", "seconds"}, where)
    if ("outcome" in spec) == ("weights" in spec):
        raise ValueError(f"{where}: needs exactly one of 'outcome' or 'weights'")
    if "requests" in spec and "seconds" in spec:
        raise ValueError(f"{where}: give 'requests' or 'seconds', not both")
    return Phase(
        outcome=_outcome(spec["outcome"], f"{where}.outcome") if "outcome" in spec else None,
        weights=_weights(spec["weights"], f"{where}.weights") if "weights" in spec else None,
        requests=_int(spec["requests"], f"{where}.requests", low=1) if "requests" in spec else None,
        seconds=_number(spec["seconds"], f"{where}.seconds", low=1e-6) if "seconds" in spec else None,
    )


def _scenario(spec: Mapping[str, Any], seed: int) -> ScenarioProfile:
    name = spec.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"profile.name: must be a string, got {name!r}")
    if "phases" not in spec:
        if name not in BUILTIN_SCENARIOS:
            raise ValueError(
                f"profile.name: unknown scenario {name!r}; built-in scenarios: {', '.join(BUILTIN_SCENARIOS)}"
            )
        spec = {**BUILTIN_SCENARIOS[name], **spec}
    phases_spec = spec["phases"]
    if not isinstance(phases_spec, list) or not phases_spec:
        raise ValueError("profile.phases: must be a non-empty list")
    phases = [_phase(p, f"profile.phases[{i}]") for i, p in enumerate(phases_spec)]
    loop = spec.get("loop", False)
    if not isinstance(loop, bool):
        raise ValueError(f"profile.loop: must be true or false, got {loop!r}")
    for i, phase in enumerate(phases):
        unlimited = phase.requests is None and phase.seconds is None
        if unlimited and (loop or i < len(phases) - 1):
            what = "every phase of a looping scenario" if loop else "only the last phase may omit them"
            raise ValueError(f"profile.phases[{i}]: needs 'requests' or 'seconds' ({what})")
    return ScenarioProfile(phases, loop=loop, name=name, seed=seed)


_KEYS: Final[dict[str, set[str]]] = {
    "fixed": {"outcome"},
    "sequence": {"outcomes", "then"},
    "mix": {"weights", "models"},
    "hourly": {"peak", "offpeak", "speed", "start_hour", "flash_factor"},
    "scenario": {"name", "phases", "loop"},
}


def profile_from_spec(spec: Mapping[str, Any], *, seed: int | None = None) -> Profile:
    """Build a profile from a JSON-compatible spec; `seed` is used when the spec has none (default 0)."""
    spec = _mapping(spec, "profile")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"profile.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    _check_keys(spec, {"kind", "seed", *_KEYS[kind]}, "profile")
    seed = _int(spec.get("seed", seed or 0), "profile.seed", low=0)
    if kind == "fixed":
        return FixedProfile(_outcome(spec.get("outcome"), "profile.outcome"), seed=seed)
    if kind == "sequence":
        outcomes = spec.get("outcomes")
        if not isinstance(outcomes, list) or not outcomes:
            raise ValueError("profile.outcomes: must be a non-empty list of outcome names")
        script = [_outcome(o, f"profile.outcomes[{i}]") for i, o in enumerate(outcomes)]
        return SequenceProfile(script, then=_outcome(spec.get("then", "ok"), "profile.then"), seed=seed)
    if kind == "mix":
        models = {
            str(m): _weights(w, f"profile.models.{m}")
            for m, w in _mapping(spec.get("models", {}), "profile.models").items()
        }
        return MixProfile(_weights(spec.get("weights", {}), "profile.weights"), models, seed=seed)
    if kind == "hourly":
        peak = _number(spec.get("peak", 0.45), "profile.peak", low=0, high=1)
        offpeak = _number(spec.get("offpeak", 0.08), "profile.offpeak", low=0, high=1)
        if offpeak > peak:
            raise ValueError(f"profile.offpeak: must not exceed profile.peak ({offpeak:g} > {peak:g})")
        start = spec.get("start_hour")
        return HourlyProfile(
            peak=peak,
            offpeak=offpeak,
            speed=_number(spec.get("speed", 1.0), "profile.speed", low=0),
            start_hour=None if start is None else _number(start, "profile.start_hour", low=0, high=24),
            flash_factor=_number(spec.get("flash_factor", 0.15), "profile.flash_factor", low=0, high=1),
            seed=seed,
        )
    return _scenario(spec, seed)


def _scalar(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def spec_from_text(text: str) -> dict[str, Any]:
    """The compact CLI syntax as a spec: `mix:overloaded=0.4,seed=3`, `hourly:peak=0.45,speed=720`,
    `scenario:outage`, `fixed:safety_block`, `sequence:overloaded,ok,then=ok`; a JSON object is read as is."""
    text = text.strip()
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"profile: invalid JSON ({exc})") from None
        return dict(_mapping(loaded, "profile"))
    kind, _, rest = text.partition(":")
    items = [item.strip() for item in rest.split(",") if item.strip()]
    pairs = dict(item.split("=", 1) for item in items if "=" in item)
    bare = [item for item in items if "=" not in item]
    spec: dict[str, Any] = {"kind": kind}
    if "seed" in pairs:
        spec["seed"] = _scalar(pairs.pop("seed"))
    if kind in {"fixed", "scenario"}:
        if len(bare) != 1 or pairs:
            raise ValueError(f"profile: {kind} takes one name, e.g. {kind}:{'outage' if kind == 'scenario' else 'ok'}")
        spec["outcome" if kind == "fixed" else "name"] = bare[0]
    elif kind == "sequence":
        if pairs.keys() - {"then"}:
            raise ValueError("profile: sequence takes outcome names and an optional then=<outcome>")
        spec["outcomes"] = bare
        if "then" in pairs:
            spec["then"] = pairs["then"]
    elif kind in {"mix", "hourly"}:
        if bare:
            raise ValueError(f"profile: {kind} takes key=value pairs, cannot read {', '.join(bare)!r}")
        values = {k: _scalar(v) for k, v in pairs.items()}
        spec.update({"weights": values} if kind == "mix" else values)
    return spec


def parse_profile(spec: str | Mapping[str, Any] | Profile | None, *, seed: int | None = None) -> Profile:
    """A Profile from the CLI syntax, a spec dict or a Profile (returned as is); None means `fixed:ok`."""
    if isinstance(spec, Profile):
        return spec
    if spec is None:
        return FixedProfile(SimOutcome.OK, seed=seed or 0)
    if isinstance(spec, str):
        spec = spec_from_text(spec)
    return profile_from_spec(spec, seed=seed)
