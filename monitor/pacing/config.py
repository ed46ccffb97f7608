"""The `[pacing]` section: the limits to pace at, and what a call over them does.

```toml
[pacing]
on_limit = "wait"        # or "fail": refuse at once (PacingRejectedError; the proxy answers 429 with RetryInfo)
max_wait = "60s"         # a cap on any wait (the caller's deadline bounds it too); absent: one window + margin
margin = "1s"             # added to the window: the slot freed at t + 60 s is used at t + 61 s
window = "60s"           # Google's per-minute quotas roll over 60 s
from_quota = false       # true: the quota poller's per-minute limits too (in `nbmon run`); configured ones win
redis_retry = "5s"       # with Redis down, how long before it is asked again (by one caller)
tokens_per_image = 258   # the input-token estimate of a tpm limit: an image ...
chars_per_token = 4      # ... and text

[pacing.limits."gemini-3-pro-image"]
rpm = 30                 # requests per minute; ipm (images) and tpm (input tokens) too
```

With `[fleet] redis_url` the window is shared by every replica; without Redis (or with it down) each process paces
on its own at limit / `[fleet] replicas`. Pure: check-config reads it on any install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.errors import ConfigError, unknown_keys
from monitor.fleet.settings import FleetSettings
from monitor.pacing.estimate import CHARS_PER_TOKEN, TOKENS_PER_IMAGE
from monitor.pacing.limits import QUOTAS
from monitor.pacing.pacer import DEFAULT_MARGIN_S

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from monitor.pacing.limits import QuotaSnapshotSource
    from monitor.pacing.pacer import Pacer

KEYS = frozenset(
    {
        "on_limit",
        "max_wait",
        "margin",
        "window",
        "from_quota",
        "limits",
        "redis_retry",
        "tokens_per_image",
        "chars_per_token",
    }
)


@dataclass(frozen=True, slots=True)
class PacingConfig:
    limits: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    on_limit: str = "wait"
    max_wait_s: float | None = None  # None: one window (plus the margin)
    margin_s: float = DEFAULT_MARGIN_S
    window_s: float = 60.0
    from_quota: bool = False
    redis_retry_s: float = 5.0
    tokens_per_image: int = TOKENS_PER_IMAGE
    chars_per_token: float = CHARS_PER_TOKEN

    @property
    def enabled(self) -> bool:
        return bool(self.limits) or self.from_quota


def pacing_config_from_mapping(table: object, errors: list[ConfigError]) -> PacingConfig:
    """Parse `[pacing]`; each problem is appended to `errors` with its key, and the default kept in its place."""
    if not isinstance(table, Mapping):
        errors.append(ConfigError("pacing", "must be a table/mapping"))
        return PacingConfig()
    errors.extend(unknown_keys(table, "pacing", KEYS))
    values: dict[str, Any] = {}
    if "on_limit" in table:
        if table["on_limit"] in ("wait", "fail"):
            values["on_limit"] = table["on_limit"]
        else:
            errors.append(ConfigError("pacing.on_limit", 'must be "wait" or "fail"'))
    for key, attribute, low, high in (
        ("max_wait", "max_wait_s", 0.0, 86_400.0),
        ("margin", "margin_s", 0.0, 60.0),
        ("window", "window_s", 0.001, 86_400.0),
        ("redis_retry", "redis_retry_s", 0.0, 3_600.0),
    ):
        if key in table:
            seconds = _seconds(table[key], f"pacing.{key}", errors)
            if seconds is not None and not low <= seconds <= high:
                errors.append(ConfigError(f"pacing.{key}", f"must be between {low:g}s and {high:g}s"))
            elif seconds is not None:
                values[attribute] = seconds
    if "from_quota" in table:
        if isinstance(table["from_quota"], bool):
            values["from_quota"] = table["from_quota"]
        else:
            errors.append(ConfigError("pacing.from_quota", "must be true or false"))
    for key, low, high, whole in (("tokens_per_image", 0, 100_000, True), ("chars_per_token", 0.1, 100, False)):
        if key in table:
            value = table[key]
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or (whole and not isinstance(value, int)) or not low <= value <= high:
                kind = "a whole number" if whole else "a number"
                errors.append(ConfigError(f"pacing.{key}", f"must be {kind} between {low:g} and {high:g}"))
            else:
                values[key] = value if whole else float(value)
    if "limits" in table:
        values["limits"] = _limits(table["limits"], errors)
    return PacingConfig(**values)


def _limits(table: object, errors: list[ConfigError]) -> dict[str, dict[str, float]]:
    if not isinstance(table, Mapping):
        errors.append(ConfigError("pacing.limits", 'must be a table of model id -> {rpm, ipm, tpm} ("*": any model)'))
        return {}
    limits: dict[str, dict[str, float]] = {}
    for model, quotas in table.items():
        where = f"pacing.limits.{model}"
        if not isinstance(quotas, Mapping) or not quotas:
            errors.append(ConfigError(where, f"must be a table of {', '.join(QUOTAS)} -> limit per window"))
            continue
        for quota, value in quotas.items():
            if quota not in QUOTAS:
                errors.append(ConfigError(f"{where}.{quota}", f"unknown quota (expected one of {', '.join(QUOTAS)})"))
            elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                errors.append(ConfigError(f"{where}.{quota}", f"must be a number > 0, got {value!r}"))
            else:
                limits.setdefault(str(model), {})[quota] = float(value)
    return limits


def _seconds(value: object, key: str, errors: list[ConfigError]) -> float | None:
    from monitor.alerts.rules import parse_duration  # the one duration syntax ("500ms", "60s")

    try:
        return parse_duration(value, key)
    except ConfigError as exc:
        errors.append(exc)
        return None


def build_pacer(
    config: PacingConfig,
    fleet: FleetSettings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    quota_source: QuotaSnapshotSource | None = None,
    redis_client: Any = None,
) -> Pacer:
    """The Pacer a config describes: Redis-shared (with per-process fallback) when `[fleet] redis_url` is set;
    else this process's own window at limit / `[fleet] replicas`. ConfigError (`pacing.from_quota`) when the limits
    are to come from the quota poller only and there is no `quota_source`."""
    from monitor.pacing.fallback import FallbackWindow, Window
    from monitor.pacing.limits import ConfiguredLimits, LimitProvider, PerReplicaLimits, QuotaLimits
    from monitor.pacing.local import InProcessWindow
    from monitor.pacing.metrics import PacingMetrics
    from monitor.pacing.pacer import Pacer

    fleet = fleet or FleetSettings()
    if config.from_quota and quota_source is None and not config.limits:
        raise ConfigError(
            "pacing.from_quota",
            "no quota poller here to read the limits from (only `nbmon run` with [quota] has one): "
            "set [pacing.limits] too",
        )
    limits: LimitProvider = ConfiguredLimits(config.limits)
    if config.from_quota and quota_source is not None:
        limits = QuotaLimits(quota_source, project=fleet.project, configured=limits)
    window: Window = InProcessWindow()
    if redis_client is not None or fleet.redis_url:
        from monitor.fleet.redis_client import connect
        from monitor.pacing.redis_window import RedisWindow

        shared = RedisWindow(redis_client if redis_client is not None else connect(fleet))
        metrics = PacingMetrics.for_registry(registry)
        window = FallbackWindow(shared, replicas=fleet.replicas, metrics=metrics, retry_s=config.redis_retry_s)
    elif fleet.replicas > 1:  # no shared window: each replica keeps to its share
        limits = PerReplicaLimits(limits, fleet.replicas)
    return Pacer(
        limits,
        window,
        on_limit=config.on_limit,
        max_wait_s=config.max_wait_s,
        window_s=config.window_s,
        margin_s=config.margin_s,
        project=fleet.project,
        key_prefix=fleet.key_prefix,
        registry=registry,
        tokens_per_image=config.tokens_per_image,
        chars_per_token=config.chars_per_token,
    )


def load_pacer(path: str | None = None, *, registry: CollectorRegistry | None = None) -> Pacer | None:
    """The Pacer of a config file's `[pacing]` and `[fleet]` (path, else $NBMON_CONFIG, else $NBMON_CONFIG_FILE);
    None when it sets no limits. ConfigError naming the first bad key, or `pacing.from_quota` when that is all it
    sets: there is no quota poller outside `nbmon run`."""
    import os

    from monitor.config import read_document
    from monitor.fleet.settings import fleet_settings_from_mapping

    path = path or os.environ.get("NBMON_CONFIG") or os.environ.get("NBMON_CONFIG_FILE")
    document = read_document(path) if path else {}
    errors: list[ConfigError] = []
    config = pacing_config_from_mapping(document.get("pacing", {}), errors)
    fleet = fleet_settings_from_mapping(document.get("fleet", {}), errors, os.environ)
    if errors:
        raise errors[0]
    return build_pacer(config, fleet, registry=registry) if config.enabled else None
