"""The `[budget]` section: a daily (Pacific-day) and monthly USD budget for the project, and what to do when spent.

```toml
[budget]
daily_usd = 50.0                # the Pacific day, reset at midnight America/Los_Angeles with the quota
monthly_usd = 1200.0            # at least one of the two
thresholds = [0.5, 0.8, 1.0]    # told once per period each; 1.0 and above page (critical)
burn_rate_window = "1h"         # the day's pace: "at this pace the day's budget runs out at 15:40"
action = "none"                 # none | degraded (the cheaper model) | stop (generation-allowed = false)
source = "auto"                 # auto | local | redis | promql: where the spend is read
interval = "60s"
```
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.budget.state import Limits
from monitor.daily_reset import RESET_TIMEZONE
from monitor.errors import ConfigError, unknown_keys
from monitor.fleet.settings import NAME

ACTIONS = ("none", "degraded", "stop")
SOURCES = ("auto", "local", "redis", "promql")
BUDGET_KEYS = frozenset(
    {
        "daily_usd",
        "monthly_usd",
        "thresholds",
        "burn_rate_window",
        "action",
        "source",
        "interval",
        "state_path",
        "project",
        "timezone",
    }
)
DEFAULT_STATE_NAME = "nbmon-budget.json"  # beside the flag state file unless budget.state_path says
Action = Literal["none", "degraded", "stop"]
Source = Literal["local", "redis", "promql"]


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    limits: Limits
    action: Action = "none"
    source: str = "auto"  # resolved to local | redis | promql by `resolve_source`
    interval_s: float = 60.0
    state_path: Path | None = None  # None: beside [state] path
    project: str | None = None  # None: [fleet] project (the same name pattern)

    def resolved_source(self, source_kind: str, redis_url: str | None) -> Source:
        """auto: the fleet-wide PromQL when the rules read PromQL, else the shared Redis, else this sidecar."""
        if self.source in ("local", "redis", "promql"):
            return self.source  # type: ignore[return-value]
        if source_kind == "promql":
            return "promql"
        return "redis" if redis_url else "local"


def budget_config_from_mapping(table: object, errors: list[ConfigError]) -> BudgetConfig | None:
    """Parse `[budget]`; each problem is appended to `errors` with its key. None when the section is unusable."""
    from monitor.alerts.rules import parse_duration

    if not isinstance(table, Mapping):
        errors.append(ConfigError("budget", "must be a table/mapping"))
        return None
    found = unknown_keys(table, "budget", BUDGET_KEYS)
    daily = _usd(table, "daily_usd", found)
    monthly = _usd(table, "monthly_usd", found)
    if daily is None and monthly is None and not any(e.key.endswith("_usd") for e in found):
        found.append(ConfigError("budget.daily_usd", "set budget.daily_usd or budget.monthly_usd (or both)"))
    if daily is not None and monthly is not None and daily > monthly:
        found.append(ConfigError("budget.daily_usd", f"{daily:g} is more than budget.monthly_usd {monthly:g}"))
    thresholds = _thresholds(table.get("thresholds", [0.5, 0.8, 1.0]), found)
    seconds: dict[str, float] = {}
    for key, default in (("burn_rate_window", 3600.0), ("interval", 60.0)):
        try:
            value = parse_duration(table.get(key, default), f"budget.{key}")
        except ConfigError as exc:
            found.append(exc)
            value = default
        if not (math.isfinite(value) and value > 0):
            found.append(ConfigError(f"budget.{key}", "must be > 0"))
            value = default
        seconds[key] = value
    action = table.get("action", "none")
    if action not in ACTIONS:
        found.append(ConfigError("budget.action", f"{action!r} is not one of {', '.join(ACTIONS)}"))
    source = table.get("source", "auto")
    if source not in SOURCES:
        found.append(ConfigError("budget.source", f"{source!r} is not one of {', '.join(SOURCES)}"))
    timezone = table.get("timezone", RESET_TIMEZONE)
    try:
        ZoneInfo(str(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        found.append(ConfigError("budget.timezone", f"{timezone!r} is not an IANA time zone"))
    state_path = table.get("state_path")
    if state_path is not None and (not isinstance(state_path, str) or not state_path):
        found.append(ConfigError("budget.state_path", "must be a file path"))
    project = table.get("project")
    if project is not None and (not isinstance(project, str) or not NAME.match(project)):
        # It is the {hash tag} of the budget's Redis keys: '}' or a space would break it.
        found.append(ConfigError("budget.project", "must be 1-100 letters, digits, '.', '_', ':' or '-'"))
    errors.extend(found)
    if found:
        return None
    limits = Limits(daily, monthly, thresholds, seconds["burn_rate_window"], str(timezone))
    return BudgetConfig(
        limits,
        action=action,
        source=source,
        interval_s=seconds["interval"],
        state_path=Path(state_path) if state_path else None,
        project=project,
    )


def budget_consistency(
    budget: BudgetConfig, *, source_kind: str, promql_url: str | None, redis_url: str | None
) -> list[ConfigError]:
    """What `[budget] source` needs from the rest of the file."""
    source = budget.resolved_source(source_kind, redis_url)
    if source == "promql" and not promql_url:
        return [ConfigError("budget.source", "promql reads source.promql_url: set it")]
    if source == "redis" and not redis_url:
        return [ConfigError("budget.source", "redis counts in fleet.redis_url: set it")]
    if source in ("local", "redis") and source_kind in ("promql", "inprocess"):
        return [
            ConfigError(
                "budget.source",
                f"{source} counts the cost this sidecar reads (scrape or proxy), and source.kind is {source_kind}",
            )
        ]
    return []


def _usd(table: Mapping[str, Any], key: str, found: list[ConfigError]) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        found.append(ConfigError(f"budget.{key}", f"must be a positive amount of US dollars, got {value!r}"))
        return None
    return float(value)


def _thresholds(value: object, found: list[ConfigError]) -> tuple[float, ...]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(isinstance(t, int | float) and not isinstance(t, bool) and 0 < t <= 10 for t in value)
    ):
        found.append(ConfigError("budget.thresholds", "must be a non-empty list of fractions (0.8 is 80%), each > 0"))
        return (0.5, 0.8, 1.0)
    if len(set(value)) != len(value):
        found.append(ConfigError("budget.thresholds", "a threshold is listed twice"))
    return tuple(sorted(float(t) for t in value))
