"""Alert rules: a ratio of two selections of `nbmon_requests_total` series, with enter and leave conditions.

A `Rule` is frozen and validated at construction, so a bad rule fails at start, not at 3 a.m.; every error is a
`ConfigError` (a ValueError) naming the dotted key `rules.<name>.<field>`. `default_rules()` is the built-in set;
`rules_from_mapping()` applies the `[rules]` table of the config file over it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

from monitor.config import ConfigError, ShimConfig
from monitor.signals import Counts, Series

ModelIds = str | Iterable[str]  # one model ID, or every ID of a role (the model, its aliases, what routes to it)

DEGRADED_MODE = "degraded-mode"
QUOTA_EXHAUSTION = "quota-exhaustion"
CLIENT_ERROR_SPIKE = "client-error-spike"
SAFETY_BLOCK_SPIKE = "safety-block-spike"

MAX_RULES = 100
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # a metric label value and one segment of a dotted key
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Action(StrEnum):
    NOTIFY = "notify"
    SET_FLAG = "set_flag"  # the rule drives the degraded-mode flag


@dataclass(frozen=True, slots=True)
class Selector:
    """Matches series by allowed label values; an empty set allows any value of that label."""

    models: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()
    error_classes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for name in ("models", "codes", "error_classes"):
            object.__setattr__(self, name, _label_set(getattr(self, name), name))

    def matches(self, series: Series) -> bool:
        return (
            (not self.models or series.model in self.models)
            and (not self.codes or series.code in self.codes)
            and (not self.error_classes or series.error_class in self.error_classes)
        )

    def count(self, counts: Counts) -> float:
        """Sum of the counts of the matching series."""
        return sum((value for series, value in counts.items() if self.matches(series)), 0.0)


@dataclass(frozen=True, slots=True)
class Rule:
    """Enter when numerator/denominator > threshold for hold_s; leave when < recovery_threshold for recovery_hold_s.

    Times are seconds. `min_volume` is the minimum denominator count in the window for a ratio to count at all.
    `probe_after_s`: after that long with no denominator traffic while degraded, go half-open (None: never).
    `enabled=False` keeps a rule defined but unevaluated (the optional built-in rules start that way).
    """

    name: str
    numerator: Selector
    denominator: Selector
    threshold: float
    window_s: float = 60.0
    hold_s: float = 300.0
    min_volume: int = 20
    recovery_threshold: float = 0.10
    recovery_hold_s: float = 600.0
    probe_after_s: float | None = 600.0
    severity: Severity = Severity.WARNING
    actions: frozenset[Action] = frozenset({Action.NOTIFY})
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError(f"rules.{self.name}.name", "must be lowercase letters, digits, '-' or '_' (max 63)")
        for name in ("numerator", "denominator"):
            if not isinstance(getattr(self, name), Selector):
                raise ConfigError(self._key(name), "must be a Selector")
        self._check("threshold", lambda v: 0 < v <= 1, "must be in (0, 1]")
        self._check("recovery_threshold", lambda v: 0 < v <= self.threshold, "must be in (0, threshold]")
        self._check("window_s", lambda v: v > 0, "must be > 0 seconds")
        self._check("hold_s", lambda v: v >= 0, "must be >= 0 seconds")
        self._check("recovery_hold_s", lambda v: v >= 0, "must be >= 0 seconds")
        if self.probe_after_s is not None:
            self._check("probe_after_s", lambda v: v > 0, "must be > 0 seconds, or None to disable probing")
        if isinstance(self.min_volume, bool) or not isinstance(self.min_volume, int) or self.min_volume < 1:
            raise ConfigError(self._key("min_volume"), "must be an integer >= 1 (a ratio needs requests)")
        try:
            object.__setattr__(self, "severity", Severity(self.severity))
        except (TypeError, ValueError):
            raise ConfigError(self._key("severity"), f"must be one of {', '.join(Severity)}") from None
        try:
            actions = [self.actions] if isinstance(self.actions, str) else list(self.actions)
            object.__setattr__(self, "actions", frozenset(Action(a) for a in actions))
        except (TypeError, ValueError):
            raise ConfigError(self._key("actions"), f"must be a set drawn from {', '.join(Action)}") from None
        if not isinstance(self.enabled, bool):
            raise ConfigError(self._key("enabled"), "must be true or false")

    def _key(self, name: str) -> str:
        return f"rules.{self.name}.{name}"

    def _check(self, name: str, ok: Callable[[float], bool], problem: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or not ok(value):
            raise ConfigError(self._key(name), problem)


def default_rules(primary_model: ModelIds, fallback_model: ModelIds) -> tuple[Rule, ...]:
    """The built-in rules: degraded-mode (enabled) and three notify-only rules the config can switch on.

    - degraded-mode: 503s / all responses of the primary model over 1m > 0.30 for 5m with >= 20 requests; leaves
      below 0.10 for 10m; probes after 10m without traffic. Critical, notifies and sets the flag.
    - quota-exhaustion: quota_exhausted / all responses of both models over 5m > 0.05 for 2m. Hard quota (per-day
      or billing) does not heal by retrying, and in degraded mode it would take the fallback down too, so a small
      sustained share is worth a warning.
    - client-error-spike: invalid_argument, failed_precondition, permission_denied, not_found / all over 5m > 0.10
      for 5m. Healthy traffic has almost none: a share this size is a bad deploy, a revoked key or a retired
      preview model, none of which degraded mode fixes, hence notify only.
    - safety-block-spike: safety_block, policy_block / all over 15m > 0.20 for 10m. Some image prompts are blocked
      routinely; a fifth of them is prompt abuse or a policy change. Long window: block rates are noisy.
    The notify-only rules never probe: there is no flag to release.
    """
    primary = Selector(models=_ids(primary_model))
    both = Selector(models=_ids(primary_model) | _ids(fallback_model))
    notify = frozenset({Action.NOTIFY})

    def share(error_classes: Iterable[str]) -> Selector:
        return Selector(models=both.models, error_classes=frozenset(error_classes))

    return (
        Rule(
            DEGRADED_MODE,
            numerator=Selector(models=primary.models, codes=frozenset({"503"})),
            denominator=primary,
            threshold=0.30,
            severity=Severity.CRITICAL,
            actions=frozenset({Action.NOTIFY, Action.SET_FLAG}),
        ),
        Rule(
            QUOTA_EXHAUSTION,
            numerator=share({"quota_exhausted"}),
            denominator=both,
            threshold=0.05,
            window_s=300.0,
            hold_s=120.0,
            recovery_threshold=0.01,
            probe_after_s=None,
            actions=notify,
            enabled=False,
        ),
        Rule(
            CLIENT_ERROR_SPIKE,
            numerator=share({"invalid_argument", "failed_precondition", "permission_denied", "not_found"}),
            denominator=both,
            threshold=0.10,
            window_s=300.0,
            recovery_threshold=0.02,
            probe_after_s=None,
            actions=notify,
            enabled=False,
        ),
        Rule(
            SAFETY_BLOCK_SPIKE,
            numerator=share({"safety_block", "policy_block"}),
            denominator=both,
            threshold=0.20,
            window_s=900.0,
            hold_s=600.0,
            recovery_threshold=0.05,
            probe_after_s=None,
            actions=notify,
            enabled=False,
        ),
    )


def rules_from_mapping(
    data: Mapping[str, Any],
    *,
    primary_model: ModelIds | None = None,
    fallback_model: ModelIds | None = None,
    errors: list[ConfigError] | None = None,
) -> tuple[Rule, ...]:
    """The enabled rules: `default_rules()` with the `[rules]` table applied over them.

    With `errors` every problem is appended there (each rule that has one is left out) instead of raising the
    first, so a config check can list them all.

    `data` maps a rule name to a table of Rule fields. A built-in name overrides only the fields given (e.g.
    `enabled = true`); a new name defines a rule and needs numerator, denominator and threshold. Durations are
    seconds or strings like "30s", "5m", "1h", "1h30m"; `probe_after_s = false` (or "off") disables probing.
    Selectors are tables of label -> value or list: `{model = [...], code = ["503"], error_class = [...]}`, or
    `role = "primary"` (or fallback) for the configured model's IDs, so a rule never names a model.
    The models default to the built-in catalog's primary and fallback.
    """
    if not isinstance(data, Mapping):
        raise ConfigError("rules", "must be a table of rule name -> rule")
    if primary_model is None or fallback_model is None:
        defaults = ShimConfig()
        primary_model = defaults.primary_ids if primary_model is None else primary_model
        fallback_model = defaults.fallback_ids if fallback_model is None else fallback_model
    roles = {"primary": _ids(primary_model), "fallback": _ids(fallback_model)}
    if len(data) > MAX_RULES:
        raise ConfigError("rules", f"{len(data):,} rules: at most {MAX_RULES} (each is evaluated every tick)")
    rules = {rule.name: rule for rule in default_rules(primary_model, fallback_model)}
    for name, table in data.items():
        try:
            rules[str(name)] = _rule(str(name), table, rules.get(str(name)), roles)
        except ConfigError as error:
            if errors is None:
                raise
            errors.append(error)
            rules.pop(str(name), None)
    return tuple(rule for rule in rules.values() if rule.enabled)


def _rule(name: str, table: object, base: Rule | None, roles: Mapping[str, frozenset[str]]) -> Rule:
    where = f"rules.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(where, "must be a table")
    known = {f.name for f in fields(Rule)} - {"name"}
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(known))})")
    values: dict[str, Any] = {key: _parse(key, value, f"{where}.{key}", roles) for key, value in table.items()}
    if base is not None:
        return replace(base, **values)
    for required in ("numerator", "denominator", "threshold"):
        if required not in values:
            raise ConfigError(f"{where}.{required}", "required for a rule that is not built in")
    return Rule(name=name, **values)


def parse_duration(value: object, key: str) -> float:
    """Seconds from a number or a string like "30s", "5m", "1h30m"; ConfigError naming `key` otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(value))
    raise ConfigError(key, f'must be seconds or a duration like "30s", "5m", "1h", got {value!r}')


def _ids(models: ModelIds) -> frozenset[str]:
    return frozenset({models}) if isinstance(models, str) else frozenset(models)


def _parse(key: str, value: object, where: str, roles: Mapping[str, frozenset[str]]) -> object:
    """Config value -> Rule field value; range checks are Rule's, type and syntax checks are here."""
    if key in ("numerator", "denominator"):
        return _selector(value, where, roles)
    if key == "probe_after_s" and (value is False or value in ("off", "never", "none")):
        return None
    if key.endswith("_s"):
        return parse_duration(value, where)
    if key == "actions":
        if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
            raise ConfigError(where, f"must be a list drawn from {', '.join(Action)}")
        return frozenset(value)
    return value  # threshold, recovery_threshold, min_volume, severity, enabled: Rule validates them


def _selector(value: object, where: str, roles: Mapping[str, frozenset[str]]) -> Selector:
    labels = {"model": "models", "code": "codes", "error_class": "error_classes", "role": "roles"}
    if not isinstance(value, Mapping):
        raise ConfigError(where, "must be a table of label (model, role, code, error_class) -> value or list of values")
    selected: dict[str, frozenset[str]] = {}
    for label, allowed in value.items():
        if label not in labels:
            raise ConfigError(f"{where}.{label}", "unknown label (expected model, role, code or error_class)")
        items = allowed if isinstance(allowed, list | tuple) else [allowed]
        # TOML writes codes as integers: 503 and "503" mean the same label value.
        if not all(isinstance(i, str | int) and not isinstance(i, bool) and str(i) for i in items):
            raise ConfigError(f"{where}.{label}", "must be a string or a list of strings")
        selected[labels[label]] = frozenset(str(i) for i in items)
    if "roles" in selected:  # a role is its models' IDs, resolved now: the evaluator only sees model IDs
        unknown = selected["roles"] - set(roles)
        if unknown:
            raise ConfigError(f"{where}.role", f"unknown role {sorted(unknown)[0]!r} (expected primary or fallback)")
        by_role = frozenset().union(*(roles[r] for r in selected.pop("roles")))
        selected["models"] = selected["models"] & by_role if "models" in selected else by_role
    return Selector(**selected)


def _label_set(value: object, name: str) -> frozenset[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(i, str) and i for i in items):
        raise ValueError(f"Selector.{name}: must be a set of non-empty strings")
    return frozenset(items)
