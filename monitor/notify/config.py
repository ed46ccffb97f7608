"""The [notify] section: channels (secrets from the environment or files only), routes, links, outbox.

```toml
[notify]
environment = "production"
dashboard_url = "https://grafana.example.com/d/nbmon"
runbook_url = "https://wiki.example.com/runbooks/nbmon"
outbox_path = "/var/lib/nbmon/outbox.sqlite"

[notify.channels.oncall]
kind = "slack"
webhook_url_env = "NBMON_SLACK_WEBHOOK_URL"       # or webhook_url_file = "/run/secrets/slack"

[notify.channels.pager]
kind = "pagerduty"
routing_key_file = "/run/secrets/pagerduty"       # or routing_key_env

[[notify.routes]]                                  # none: every channel gets everything
rules = ["degraded-mode"]                          # empty or missing: any rule
severities = ["critical"]                          # empty or missing: any severity
channels = ["oncall", "pager"]
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.config import ConfigError

KINDS = {"slack": "webhook_url", "pagerduty": "routing_key", "webhook": "url"}
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True, slots=True)
class ChannelConfig:
    name: str
    kind: str
    secret: str = field(repr=False)  # webhook URL or routing key: never in repr, logs or metrics
    options: Mapping[str, str] = field(default_factory=dict)  # events_url (PagerDuty), severity, ...


@dataclass(frozen=True, slots=True)
class Route:
    rules: frozenset[str]
    severities: frozenset[str]
    channels: tuple[str, ...]

    def matches(self, rule: str, severity: str) -> bool:
        return (not self.rules or rule in self.rules) and (not self.severities or severity in self.severities)


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    channels: tuple[ChannelConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    environment: str = "production"
    dashboard_url: str | None = None
    runbook_url: str | None = None
    outbox_path: Path = Path("nbmon-outbox.sqlite")
    # A fleet ([fleet] redis_url): how long a rule notice's claim in Redis lasts (the sidecars' spread). None:
    # max(60 s, 4 x evaluation.interval), which the daemon works out.
    claim_ttl_s: float | None = None

    def rule_claim_ttl_s(self, evaluation_interval_s: float) -> float:
        return self.claim_ttl_s if self.claim_ttl_s is not None else max(60.0, 4 * evaluation_interval_s)

    @property
    def links(self) -> dict[str, str]:
        """The links every notification carries: the dashboard and the runbook, when configured."""
        return {k: v for k, v in (("dashboard", self.dashboard_url), ("runbook", self.runbook_url)) if v}

    def channels_for(self, rule: str, severity: str) -> list[str]:
        if not self.routes:
            return [c.name for c in self.channels]
        names: list[str] = []
        for route in self.routes:
            if route.matches(rule, severity):
                names.extend(n for n in route.channels if n not in names)
        return names


def notify_config_from_mapping(
    data: Any, environ: Mapping[str, str] | None = None, errors: list[ConfigError] | None = None
) -> NotifyConfig:
    """Validate [notify]; every error names its key (`notify.channels.oncall.webhook_url_env: ...`).

    With `errors`, every problem is appended there (a broken channel or route is left out) instead of raising the
    first, so a config check lists them all."""
    env = os.environ if environ is None else environ
    found: list[ConfigError] = []

    def collect(build: Any, *args: Any) -> Any:
        try:
            return build(*args)
        except ConfigError as error:
            found.append(error)
            return None

    if not isinstance(data, Mapping):
        raise ConfigError("notify", "must be a table")
    known = {"channels", "routes", "environment", "dashboard_url", "runbook_url", "outbox_path", "claim_ttl"}
    found.extend(
        ConfigError(f"notify.{key}", f"unknown key (expected one of {', '.join(sorted(known))})")
        for key in data
        if key not in known
    )
    table = collect(_table, data, "channels") or {}
    channels = tuple(c for c in (collect(_channel, name, spec, env) for name, spec in table.items()) if c)
    names = {c.name for c in channels} | {str(name) for name in table}  # a broken channel is not "unknown" too
    listed = collect(_list, data, "routes") or []
    routes = tuple(r for r in (collect(_route, i, spec, names) for i, spec in enumerate(listed)) if r)
    config = NotifyConfig(
        channels=channels,
        routes=routes,
        environment=collect(_text, data.get("environment", "production"), "notify.environment") or "production",
        dashboard_url=collect(_url, data.get("dashboard_url"), "notify.dashboard_url"),
        runbook_url=collect(_url, data.get("runbook_url"), "notify.runbook_url"),
        outbox_path=Path(
            collect(_text, data.get("outbox_path", "nbmon-outbox.sqlite"), "notify.outbox_path")
            or "nbmon-outbox.sqlite"
        ),
        claim_ttl_s=collect(_claim_ttl, data.get("claim_ttl")),
    )
    if found:
        if errors is None:
            raise found[0]
        errors.extend(found)
    return config


def _channel(name: str, spec: Any, env: Mapping[str, str]) -> ChannelConfig:
    where = f"notify.channels.{name}"
    if not isinstance(spec, Mapping):
        raise ConfigError(where, "must be a table")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind", f"must be one of {', '.join(KINDS)}")
    secret_name = KINDS[kind]
    if secret_name in spec:
        raise ConfigError(
            f"{where}.{secret_name}", f"a secret: use {secret_name}_env or {secret_name}_file, not inline"
        )
    allowed = {"kind", f"{secret_name}_env", f"{secret_name}_file", "events_url", "severity", "source"}
    for key in spec:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(allowed))})")
    if f"{secret_name}_env" in spec:
        var = str(spec[f"{secret_name}_env"])
        secret = env.get(var, "").strip()
        if not secret:
            raise ConfigError(f"{where}.{secret_name}_env", f"environment variable {var} is not set")
    elif f"{secret_name}_file" in spec:
        try:
            secret = Path(str(spec[f"{secret_name}_file"])).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}.{secret_name}_file", f"cannot read: {exc.strerror}") from None
        if not secret:
            raise ConfigError(f"{where}.{secret_name}_file", "the file is empty")
    else:
        raise ConfigError(where, f"needs {secret_name}_env or {secret_name}_file")
    if kind != "pagerduty" and not secret.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.{secret_name}_env", "does not hold an http(s) URL")  # value itself never shown
    options = {k: str(v) for k, v in spec.items() if k in ("events_url", "severity", "source")}
    if "severity" in options and options["severity"] not in SEVERITIES:
        raise ConfigError(f"{where}.severity", f"must be one of {', '.join(SEVERITIES)}")
    if "events_url" in options:
        _url(options["events_url"], f"{where}.events_url")
    return ChannelConfig(name, kind, secret, options)


def _route(index: int, spec: Any, names: set[str]) -> Route:
    where = f"notify.routes[{index}]"
    if not isinstance(spec, Mapping):
        raise ConfigError(where, "must be a table")
    for key in spec:
        if key not in ("rules", "severities", "channels"):
            raise ConfigError(f"{where}.{key}", "unknown key (expected rules, severities, channels)")
    channels = spec.get("channels")
    if not isinstance(channels, list) or not channels:
        raise ConfigError(f"{where}.channels", "must be a non-empty list of channel names")
    for channel in channels:
        if channel not in names:
            raise ConfigError(f"{where}.channels", f"{channel!r} is not a channel in notify.channels")
    severities = frozenset(str(s) for s in spec.get("severities", []))
    bad = severities - set(SEVERITIES)
    if bad:
        raise ConfigError(f"{where}.severities", f"unknown severities {sorted(bad)}")
    return Route(frozenset(str(r) for r in spec.get("rules", [])), severities, tuple(str(c) for c in channels))


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"notify.{key}", "must be a table")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"notify.{key}", "must be a list of tables ([[notify.routes]])")
    return value


def _claim_ttl(value: Any) -> float | None:
    import math

    from monitor.alerts.rules import parse_duration

    if value is None:
        return None
    seconds = parse_duration(value, "notify.claim_ttl")
    if not (math.isfinite(seconds) and 1 <= seconds <= 86_400):
        raise ConfigError("notify.claim_ttl", "must be a duration between 1s and 24h")
    return seconds


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a non-empty string")
    return value


def _url(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(key, "must be an http(s) URL")
    return value


def build_notifiers(config: NotifyConfig) -> dict[str, Any]:
    """One Notifier per configured channel (imported here: slack-sdk loads only when Slack is used)."""
    from monitor.notify.pagerduty import EVENTS_URL, PagerDutyNotifier
    from monitor.notify.slack import SlackNotifier
    from monitor.notify.webhook import WebhookNotifier

    notifiers: dict[str, Any] = {}
    for channel in config.channels:
        if channel.kind == "slack":
            notifiers[channel.name] = SlackNotifier(
                channel.name, channel.secret, dashboard_url=config.dashboard_url, runbook_url=config.runbook_url
            )
        elif channel.kind == "pagerduty":
            notifiers[channel.name] = PagerDutyNotifier(
                channel.name,
                channel.secret,
                events_url=channel.options.get("events_url", EVENTS_URL),
                source=channel.options.get("source", "nbmon"),
                severity=channel.options.get("severity"),
                dashboard_url=config.dashboard_url,
                runbook_url=config.runbook_url,
            )
        else:
            notifiers[channel.name] = WebhookNotifier(channel.name, channel.secret)
    return notifiers
