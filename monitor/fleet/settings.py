"""The `[fleet]` section: the Redis the replicas share, how many there are, and the project they spend for.

```toml
[fleet]
redis_url = "redis://redis:6379/0"   # or $NBMON_REDIS_URL; none: every replica on its own (in-process pacing)
project = "my-project"               # or $NBMON_FLEET_PROJECT: the namespace of shared keys (quotas and budgets)
replicas = 3                         # with Redis down, each replica paces at limit / replicas
timeout = "250ms"                    # per Redis command: a slow Redis must not slow the app
```

Read by the app side (ImageGenerator, the proxy) and by the daemon from the same document: one parse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import ConfigError, unknown_keys

FLEET_KEYS = frozenset({"redis_url", "project", "replicas", "timeout", "key_prefix"})
REDIS_URL_ENV = "NBMON_REDIS_URL"
PROJECT_ENV = "NBMON_FLEET_PROJECT"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
NAME = _NAME  # a fleet name (project, key prefix): also what [budget] project must be


@dataclass(frozen=True, slots=True)
class FleetSettings:
    redis_url: str | None = field(default=None, repr=False)  # may carry a password: never in repr or logs
    project: str = "default"
    replicas: int = 1
    timeout_s: float = 0.25
    key_prefix: str = "nbmon"

    def key(self, *parts: str) -> str:
        """A Redis key of this fleet: nbmon:{project}:part:part (the braces keep a project in one cluster slot)."""
        return ":".join((self.key_prefix, "{" + self.project + "}", *parts))


def fleet_settings_from_mapping(
    table: object, errors: list[ConfigError], environ: Mapping[str, str] | None = None
) -> FleetSettings:
    """Parse `[fleet]`; each problem is appended to `errors` with its key, and the default kept in its place.

    `environ`'s NBMON_REDIS_URL and NBMON_FLEET_PROJECT win over the table's redis_url and project (the daemon maps
    the same two variables), so the app side and the daemon share the same keys."""
    if not isinstance(table, Mapping):
        errors.append(ConfigError("fleet", "must be a table/mapping"))
        table = {}
    errors.extend(unknown_keys(table, "fleet", FLEET_KEYS))
    values: dict[str, Any] = {}
    environ = environ or {}
    url = environ.get(REDIS_URL_ENV) or table.get("redis_url")
    if url is not None:
        scheme = urlsplit(url).scheme if isinstance(url, str) else ""
        if scheme not in ("redis", "rediss", "unix"):
            # The value itself is not repeated: it may hold a password.
            errors.append(ConfigError("fleet.redis_url", "must be a redis://, rediss:// or unix:// URL"))
        else:
            values["redis_url"] = url
    named = {"project": environ.get(PROJECT_ENV) or table.get("project"), "key_prefix": table.get("key_prefix")}
    for key, value in named.items():
        if value is not None:
            if isinstance(value, str) and _NAME.match(value):
                values[key] = value
            else:
                errors.append(ConfigError(f"fleet.{key}", "must be 1-100 letters, digits, '.', '_', ':' or '-'"))
    if "replicas" in table:
        replicas = table["replicas"]
        try:
            count = int(replicas)
        except (TypeError, ValueError):
            count = 0
        if isinstance(replicas, bool) or count < 1 or count > 10_000:
            errors.append(ConfigError("fleet.replicas", "must be a whole number between 1 and 10000"))
        else:
            values["replicas"] = count
    if "timeout" in table:
        seconds = _seconds(table["timeout"])
        if seconds is None or not (math.isfinite(seconds) and 0 < seconds <= 10):
            errors.append(ConfigError("fleet.timeout", "must be a duration between 1ms and 10s (e.g. 250ms)"))
        else:
            values["timeout_s"] = seconds
    return FleetSettings(**values)


def _seconds(value: object) -> float | None:
    """Seconds from a duration ("250ms"), a number, or a bare number in a string (environment variables); None
    when it is none of these."""
    from monitor.alerts.rules import parse_duration  # the one duration syntax

    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    try:
        return parse_duration(value, "fleet.timeout")
    except ConfigError:
        return None
