"""The `[proxy]` section: where the pass-through proxy listens, where it forwards, and what it may do.

```toml
[proxy]
port = 8017                      # the app's base URL: http://127.0.0.1:8017
upstream = "https://generativelanguage.googleapis.com"
steer = false                    # while degraded, send the primary's requests to the fallback (a canary share stays)
retry = false                    # the generator's RetryPolicy, server-side, before the first byte of a response
canary_share = 0.05
pace = false                     # wait for a slot in [pacing]'s windows (or answer 429 with RetryInfo), see pacing.md

[proxy.retry_policy]             # RetryPolicy's fields; the defaults suit a proxy (seconds, not minutes)
max_attempts = 3
initial_backoff_s = 2
max_backoff_s = 20
deadline_s = 120                 # and never past the client's own timeout (X-Server-Timeout)
```

Pure: no aiohttp here, so `check-config` reads it on any install.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from monitor.errors import ConfigError, unknown_keys
from monitor.generator.policy import RetryPolicy
from monitor.net import host_setting, port_setting

DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com"
DEFAULT_PORT = 8017
# A proxy's retries must fit in a client's timeout: seconds, not the generator's minutes.
PROXY_RETRY_POLICY = RetryPolicy(max_attempts=3, initial_backoff_s=2.0, max_backoff_s=20.0, deadline_s=120.0)
_POLICY_KEYS = frozenset(
    {
        "max_attempts",
        "initial_backoff_s",
        "backoff_multiplier",
        "max_backoff_s",
        "jitter",
        "deadline_s",
        "min_call_s",
        "rate_limit_default_wait_s",
        "fallback_on_exhausted",
        "fallback_on_quota",
    }
)
KEYS = frozenset(
    {
        "host",
        "port",
        "upstream",
        "steer",
        "retry",
        "pace",
        "canary_share",
        "retry_policy",
        "max_request_bytes",
        "connect_timeout",
        "read_timeout",
        "header_timeout",
        "max_connections",
    }
)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    host: str = "127.0.0.1"  # loopback by default: the sidecar serves its own pod
    port: int = DEFAULT_PORT
    upstream: str = DEFAULT_UPSTREAM
    steer: bool = False
    retry: bool = False
    pace: bool = False  # the [pacing] section's limits, shared through [fleet]'s Redis
    canary_share: float = 0.05
    retry_policy: RetryPolicy = field(default_factory=lambda: PROXY_RETRY_POLICY)
    # A generate request is read whole (a retry or a steer sends it again); uploads and responses are streamed.
    max_request_bytes: int = 32 * 1024 * 1024  # Gemini takes 20 MB of inline data per request
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0  # between two reads of the upstream's response: a Pro image can take minutes
    header_timeout_s: float = 10.0  # a client's request head (slowloris)
    max_connections: int = 1024


def proxy_config_from_mapping(table: Any, errors: list[ConfigError]) -> ProxyConfig:
    """`[proxy]` -> ProxyConfig; every problem goes into `errors` with its key, the default stands in."""
    if not isinstance(table, Mapping):
        errors.append(ConfigError("proxy", "must be a table/mapping"))
        return ProxyConfig()
    errors.extend(unknown_keys(table, "proxy", KEYS))
    defaults = ProxyConfig()
    values: dict[str, Any] = {}
    checks: tuple[tuple[str, str, Any], ...] = (
        ("host", "host", host_setting),
        ("port", "port", port_setting),
        ("upstream", "upstream", _upstream),
        ("steer", "steer", _bool),
        ("retry", "retry", _bool),
        ("pace", "pace", _bool),
        ("canary_share", "canary_share", _share),
        ("max_request_bytes", "max_request_bytes", _positive_int),
        ("connect_timeout", "connect_timeout_s", _seconds),
        ("read_timeout", "read_timeout_s", _seconds),
        ("header_timeout", "header_timeout_s", _seconds),
        ("max_connections", "max_connections", _positive_int),
    )
    for key, attribute, convert in checks:
        if key in table:
            try:
                values[attribute] = convert(table[key], f"proxy.{key}")
            except ConfigError as exc:
                errors.append(exc)
    if "retry_policy" in table:
        values["retry_policy"] = _policy(table["retry_policy"], errors, defaults.retry_policy)
    return ProxyConfig(**values)


def _policy(table: Any, errors: list[ConfigError], base: RetryPolicy) -> RetryPolicy:
    if not isinstance(table, Mapping):
        errors.append(ConfigError("proxy.retry_policy", "must be a table/mapping"))
        return base
    errors.extend(unknown_keys(table, "proxy.retry_policy", _POLICY_KEYS))
    kinds = {f.name: f.type for f in fields(RetryPolicy)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _POLICY_KEYS:  # reported above
            continue
        boolean = kinds[key] in ("bool", bool)
        if boolean != isinstance(value, bool) or not isinstance(value, int | float | type(None)):
            errors.append(ConfigError(f"proxy.retry_policy.{key}", f"{value!r} is not a {kinds[key]}"))
            continue
        values[key] = value
    try:
        return dataclasses.replace(base, **values)
    except (ValueError, TypeError) as exc:  # RetryPolicy names the field
        errors.append(ConfigError("proxy.retry_policy", str(exc)))
        return base


def _upstream(value: object, key: str) -> str:
    """The one place requests go: an http(s) origin, optionally with a path prefix; no query, no credentials."""
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(key, f"{value!r} is not an http(s) URL")
    parts = urlsplit(value)
    if not parts.hostname:
        raise ConfigError(key, f"{value!r} names no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(key, "must be a plain origin (no query, fragment or credentials): the app sends its key")
    return value.rstrip("/")


def _bool(value: object, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ConfigError(key, f"{value!r} is not true or false")


def _share(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(key, f"{value!r} is not a share between 0 and 1")
    return float(value)


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, f"{value!r} is not a whole number >= 1")
    return value


def _seconds(value: object, key: str) -> float:
    from monitor.alerts.rules import parse_duration

    seconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if seconds is None:
        seconds = parse_duration(value, key)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(key, "must be > 0")
    return seconds
