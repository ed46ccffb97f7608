"""The daemon's configuration: a TOML or YAML file plus NBMON_* environment variables, validated at start.

Every problem is reported with the dotted key that caused it (`nbmon check-config` lists them all), and a
bad value never starts a half-working daemon. Environment variables win over the file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.alerts.rules import Action, Rule, rules_from_mapping
from monitor.alerts.rules import parse_duration as rule_duration
from monitor.budget.config import BudgetConfig, budget_config_from_mapping, budget_consistency
from monitor.config import ConfigError, ShimConfig, config_from_document, read_document
from monitor.errors import unknown_keys
from monitor.fleet.settings import FleetSettings, fleet_settings_from_mapping
from monitor.net import host_setting, port_setting
from monitor.notify.config import NotifyConfig, notify_config_from_mapping
from monitor.pacing.config import PacingConfig, pacing_config_from_mapping
from monitor.proxy.config import ProxyConfig, proxy_config_from_mapping

SOURCE_KINDS = ("scrape", "inprocess", "promql", "proxy")  # proxy: the [proxy] this process serves
DEFAULT_OUTBOX_NAME = "nbmon-outbox.sqlite"  # in the state file's directory unless notify.outbox_path says
MIN_LEASE_TTL_S, MAX_LEASE_TTL_S = 1.0, 3600.0  # quota.lease_ttl: tests use 2 s, production 30 s
MIN_INTERVAL_S = 0.05  # intervals are seconds for a sidecar (15 s by default); tests compress them to 50 ms
LOG_FORMATS = ("json", "console", "auto")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# NBMON_* variable -> dotted key. Lists are comma-separated.
ENV_KEYS = {
    "NBMON_LISTEN_HOST": "listen.host",
    "NBMON_LISTEN_PORT": "listen.port",
    "NBMON_SOURCE_KIND": "source.kind",
    "NBMON_SOURCE_TARGETS": "source.targets",
    "NBMON_SOURCE_INTERVAL": "source.interval",
    "NBMON_PROMQL_URL": "source.promql_url",
    "NBMON_EVALUATION_INTERVAL": "evaluation.interval",
    "NBMON_STATE_FILE": "state.path",
    "NBMON_FLAGD_FILE": "state.flagd_path",
    "NBMON_ADMIN_TOKEN": "admin.token",
    "NBMON_ADMIN_TOKEN_FILE": "admin.token_file",
    "NBMON_LOG_FORMAT": "log.format",
    "NBMON_LOG_LEVEL": "log.level",
    "NBMON_PRIMARY_MODEL": "models.primary",
    "NBMON_FALLBACK_MODEL": "models.fallback",
    "NBMON_MODEL_CATALOG": "models.catalog",
    "NBMON_ALERTMANAGER_ALERTS": "alertmanager.alerts",
    "NBMON_QUOTA_PROJECTS": "quota.projects",
    "NBMON_QUOTA_KEY_FILE": "quota.key_file",
    "NBMON_REDIS_URL": "fleet.redis_url",
    "NBMON_FLEET_PROJECT": "fleet.project",
}


class ConfigErrors(ValueError):
    """All problems found in one configuration, each with its key."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    listen_host: str = "127.0.0.1"  # loopback by default: the sidecar serves its own pod
    listen_port: int = 8016
    source_kind: str = "scrape"
    targets: tuple[str, ...] = ("http://127.0.0.1:9464/metrics",)
    source_interval_s: float = 15.0
    promql_url: str | None = None
    evaluation_interval_s: float = 15.0
    state_path: Path = Path("nbmon-state.json")
    flagd_path: Path | None = None
    admin_token: str | None = field(default=None, repr=False)  # a secret: never in repr or logs
    log_format: str = "json"
    log_level: str = "INFO"
    rules: Mapping[str, Any] = field(default_factory=dict)  # validated by monitor.alerts.rules_from_mapping
    alertmanager_alerts: tuple[str, ...] = ("NbmonImage503RateHigh",)  # POST /v1/alertmanager: alerts that degrade
    shim: ShimConfig = field(default_factory=ShimConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    quota_projects: tuple[str, ...] = ()  # Cloud Monitoring quota polling is on when set
    quota_services: tuple[str, ...] = ("generativelanguage.googleapis.com",)
    quota_interval_s: float = 60.0
    quota_timeout_s: float = 30.0
    quota_key_file: Path | None = None
    quota_rules: Mapping[str, Any] = field(default_factory=dict)
    quota_lease: bool = False  # one poller per fleet, elected in Redis; on by default when fleet.redis_url is set
    quota_lease_ttl_s: float = 30.0
    proxy: ProxyConfig | None = None  # [proxy]: the pass-through proxy, served by `nbmon run` on its own port
    fleet: FleetSettings = field(default_factory=FleetSettings)  # [fleet]: the Redis the replicas share
    pacing: PacingConfig = field(default_factory=PacingConfig)  # [pacing]: limits the proxy paces at (pace = true)
    budget: BudgetConfig | None = None  # [budget]: the spend budget (monitor.budget)
    warnings: tuple[str, ...] = ()  # legal but probably not meant: said by check-config and at start
    # `rules` parsed once, against the models' roles: what check-config checks is what run evaluates.
    rule_set: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rules = rules_from_mapping(
            self.rules, primary_model=self.shim.primary_ids, fallback_model=self.shim.fallback_ids
        )
        object.__setattr__(self, "rule_set", rules)

    @property
    def primary_model(self) -> str:
        """The model the rules watch as the primary: [models] primary, resolved through the catalog."""
        return self.shim.primary_model

    @property
    def fallback_model(self) -> str:
        return self.shim.fallback_model


def positive_seconds(value: object, key: str) -> float:
    """Seconds > 0 from a number, a bare number in a string (as environment variables carry them: "15"), or a
    duration in the rules' syntax ("15s", "1m", "1h30m", "500ms": monitor.alerts.parse_duration, the one parser)."""
    try:  # a bare number of seconds, as environment variables carry them ("15")
        seconds = float(value) if isinstance(value, str) else rule_duration(value, key)
    except ValueError:
        seconds = rule_duration(value, key)
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(key, "must be > 0")
    return seconds


def read_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml) file as a mapping; ConfigError naming the file otherwise."""
    return read_document(path)


def load(path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """File (optional) + environment -> a validated DaemonConfig, or ConfigErrors listing every problem."""
    data = read_file(path) if path else {}
    env = os.environ if environ is None else environ
    for var, dotted in ENV_KEYS.items():
        if var in env:
            section, key = dotted.split(".")
            table = data.setdefault(section, {})
            if isinstance(table, dict):
                table[key] = env[var]
    return from_mapping(data, base_dir=Path(path).parent if path else None)


def from_mapping(data: Mapping[str, Any], *, base_dir: Path | None = None) -> DaemonConfig:
    errors: list[ConfigError] = []
    known = {
        "listen",
        "source",
        "evaluation",
        "state",
        "admin",
        "log",
        "models",
        "rules",
        "shim",
        "alertmanager",
        "notify",
        "quota",
        "proxy",
        "fleet",
        "budget",
        "pacing",
    }
    errors.extend(
        ConfigError(k, f"unknown section (expected one of {', '.join(sorted(known))})") for k in data if k not in known
    )

    def section(name: str, keys: set[str]) -> Mapping[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, Mapping):
            errors.append(ConfigError(name, "must be a table/mapping"))
            return {}
        errors.extend(unknown_keys(value, name, keys))
        return value

    def get(name: str, convert: Any, default: Any, table: Mapping[str, Any], key: str) -> Any:
        if key not in table:
            return default
        try:
            return convert(table[key], f"{name}.{key}")
        except ConfigError as exc:
            errors.append(exc)
            return default

    defaults = DaemonConfig()
    listen = section("listen", {"host", "port"})
    source = section("source", {"kind", "targets", "interval", "promql_url"})
    evaluation = section("evaluation", {"interval"})
    state = section("state", {"path", "flagd_path"})
    admin = section("admin", {"token", "token_file"})
    log = section("log", {"format", "level"})
    alertmanager = section("alertmanager", {"alerts"})
    quota = section("quota", {"projects", "services", "interval", "timeout", "key_file", "rules", "lease", "lease_ttl"})
    rules = data.get("rules", {})
    if not isinstance(rules, Mapping):
        errors.append(ConfigError("rules", "must be a table/mapping of rule name -> settings"))
        rules = {}
    shim = defaults.shim
    try:  # [models] and [shim]: the one parse the shim and the generator make of the same file
        shim = config_from_document(data, base_dir=base_dir, environ={})
    except ConfigError as exc:
        errors.append(exc)
    rule_errors: list[ConfigError] = []
    try:  # every rule's errors at once; the good rules parse again (cheaply) in DaemonConfig
        parsed = rules_from_mapping(
            rules, primary_model=shim.primary_ids, fallback_model=shim.fallback_ids, errors=rule_errors
        )
    except ConfigError as exc:  # the table as a whole (too many rules)
        rule_errors.append(exc)
        parsed = ()
    errors.extend(rule_errors)
    if rule_errors:
        rules = {}  # reported above; DaemonConfig must still be built to check the rest

    notify = NotifyConfig()
    if "notify" in data:
        try:
            notify = notify_config_from_mapping(data["notify"], errors=errors)
        except ConfigError as exc:
            errors.append(exc)
    state_path = get("state", _path, defaults.state_path, state, "path")
    proxy = proxy_config_from_mapping(data["proxy"], errors) if "proxy" in data else None
    fleet = fleet_settings_from_mapping(data.get("fleet", {}), errors)
    pacing = pacing_config_from_mapping(data.get("pacing", {}), errors)
    budget = budget_config_from_mapping(data["budget"], errors) if "budget" in data else None
    if not isinstance(data.get("notify"), Mapping) or "outbox_path" not in data["notify"]:
        # Beside the state file by default: one directory (one volume) holds everything the daemon must keep.
        notify = dataclasses.replace(notify, outbox_path=Path(state_path).parent / DEFAULT_OUTBOX_NAME)

    config = DaemonConfig(
        listen_host=get("listen", host_setting, defaults.listen_host, listen, "host"),
        listen_port=get("listen", port_setting, defaults.listen_port, listen, "port"),
        # With [proxy] the rules read its counters in-process, unless [source] says otherwise.
        source_kind=get(
            "source", _choice(SOURCE_KINDS), "proxy" if proxy is not None else defaults.source_kind, source, "kind"
        ),
        targets=get("source", _urls, defaults.targets, source, "targets"),
        source_interval_s=get("source", positive_seconds, defaults.source_interval_s, source, "interval"),
        promql_url=get("source", _url, None, source, "promql_url"),
        evaluation_interval_s=get(
            "evaluation", positive_seconds, defaults.evaluation_interval_s, evaluation, "interval"
        ),
        state_path=state_path,
        flagd_path=get("state", _path, None, state, "flagd_path"),
        admin_token=_token(admin, errors),
        log_format=get("log", _choice(LOG_FORMATS), defaults.log_format, log, "format"),
        log_level=get("log", _choice(LOG_LEVELS, upper=True), defaults.log_level, log, "level"),
        rules=dict(rules),
        alertmanager_alerts=get("alertmanager", _names, defaults.alertmanager_alerts, alertmanager, "alerts"),
        shim=shim,
        notify=notify,
        quota_projects=get("quota", _names, (), quota, "projects"),
        quota_services=get("quota", _names, defaults.quota_services, quota, "services"),
        quota_interval_s=get("quota", positive_seconds, defaults.quota_interval_s, quota, "interval"),
        quota_timeout_s=get("quota", positive_seconds, defaults.quota_timeout_s, quota, "timeout"),
        quota_key_file=get("quota", _path, None, quota, "key_file"),
        quota_rules=dict(quota.get("rules", {})) if isinstance(quota.get("rules", {}), Mapping) else {},
        quota_lease=get("quota", _bool, bool(fleet.redis_url), quota, "lease"),
        quota_lease_ttl_s=get("quota", positive_seconds, defaults.quota_lease_ttl_s, quota, "lease_ttl"),
        proxy=proxy,
        fleet=fleet,
        pacing=pacing,
        budget=budget,
    )
    if config.source_kind == "inprocess":
        errors.append(
            ConfigError("source.kind", "inprocess reads the app's own registry: use monitor.embed() in the app")
        )
    if config.source_kind == "proxy" and config.proxy is None:
        errors.append(
            ConfigError("source.kind", "proxy reads the counters of the [proxy] this daemon serves: add [proxy]")
        )
    if config.source_kind == "promql" and not config.promql_url:
        errors.append(ConfigError("source.promql_url", "required when source.kind is promql"))
    if config.budget is not None:
        errors.extend(
            budget_consistency(
                config.budget,
                source_kind=config.source_kind,
                promql_url=config.promql_url,
                redis_url=config.fleet.redis_url,
            )
        )
    if config.quota_projects and config.quota_timeout_s >= config.quota_interval_s:
        errors.append(ConfigError("quota.timeout", "must be shorter than quota.interval"))
    errors.extend(_lease_errors(config))
    if config.pacing.from_quota and not config.pacing.limits and not config.quota_projects:
        errors.append(
            ConfigError("pacing.from_quota", "needs [quota] projects to read the limits from, or [pacing.limits]")
        )
    if config.quota_rules:
        try:
            from monitor.quota.rules import quota_rules_from_mapping

            quota_rules_from_mapping(config.quota_rules)
        except ConfigError as exc:
            errors.append(exc)
    errors.extend(_consistency(config, parsed))
    if errors:
        raise ConfigErrors(errors)
    warnings = tuple(_warnings(parsed, config))
    return dataclasses.replace(config, warnings=warnings) if warnings else config


def _consistency(config: DaemonConfig, rules: tuple[Rule, ...]) -> list[ConfigError]:
    """Values that are fine one by one and wrong together, or absurd."""
    found: list[ConfigError] = []
    for key, seconds in (
        ("source.interval", config.source_interval_s),
        ("evaluation.interval", config.evaluation_interval_s),
    ):
        if seconds < MIN_INTERVAL_S:
            found.append(ConfigError(key, f"{seconds:g}s is below {MIN_INTERVAL_S:g}s: a tick would never rest"))
    if (
        config.proxy is not None
        and config.listen_port
        and (config.proxy.host, config.proxy.port)
        == (
            config.listen_host,
            config.listen_port,
        )
    ):
        found.append(ConfigError("proxy.port", f"{config.proxy.port} is listen.port too: give the proxy its own"))
    if config.source_kind in ("scrape", "proxy"):
        seen: dict[str, int] = {}
        for index, target in enumerate(config.targets):
            if target in seen:  # the URLs are normalised (trailing slash) on parsing
                found.append(
                    ConfigError(f"source.targets[{index}]", f"the same target as source.targets[{seen[target]}]")
                )
            seen.setdefault(target, index)
        # Two readings at least must fall inside a window for it to hold a delta.
        least = 2 * config.source_interval_s
        found.extend(
            ConfigError(
                f"rules.{rule.name}.window_s",
                f"{rule.window_s:g}s holds fewer than two scrapes (source.interval {config.source_interval_s:g}s): "
                f"the rule would never have data; use at least {least:g}s",
            )
            for rule in rules
            if rule.window_s < least
        )
    return found


def _lease_errors(config: DaemonConfig) -> list[ConfigError]:
    """The quota poller's lease: Redis to hold it, and a ttl whose renewals (every third of it) fit their timeout."""
    found = []
    if config.quota_lease and not config.fleet.redis_url:
        found.append(ConfigError("quota.lease", "needs fleet.redis_url (or NBMON_REDIS_URL): the lease is held there"))
    ttl, least = config.quota_lease_ttl_s, max(MIN_LEASE_TTL_S, 6 * config.fleet.timeout_s)
    if not least <= ttl <= MAX_LEASE_TTL_S:
        found.append(
            ConfigError(
                "quota.lease_ttl",
                f"{ttl:g}s: must be between {least:g}s and {MAX_LEASE_TTL_S:g}s (at least 1s and 6 x fleet.timeout:"
                " the lease is renewed every third of it, each renewal within half of that)",
            )
        )
    return found


def _warnings(rules: tuple[Rule, ...], config: DaemonConfig) -> list[str]:
    said = [f"{note.key}: {note.message}" for note in config.shim.lifecycle_notes()]
    if not any(Action.SET_FLAG in rule.actions for rule in rules):
        said.append(
            "rules: no enabled rule sets the degraded-mode flag: only an override or Alertmanager can turn it on"
        )
    if config.proxy is not None and config.source_kind != "proxy":
        said.append(
            f"source.kind: {config.source_kind} while [proxy] is on: the rules do not read the proxy's counters "
            "(and a call both the app and the proxy report counts once, by the proxy, only if the rules read it)"
        )
    if config.proxy is not None and config.proxy.host not in ("127.0.0.1", "::1", "localhost"):
        said.append(
            f"proxy.host: {config.proxy.host} takes clients from other machines; the proxy forwards only to its "
            "upstream, with the caller's own key, but anyone who reaches it is counted in your metrics"
        )
    return said


def preflight(config: DaemonConfig) -> list[ConfigError]:
    """What the machine must allow for `run` to start: the port is free, the files' directories writable.

    Shared by `check-config` and `run` (which checks before it starts anything), so both refuse the same things."""
    found: list[ConfigError] = []
    ports = [("listen.port", config.listen_host, config.listen_port)]
    if config.proxy is not None:
        ports.append(("proxy.port", config.proxy.host, config.proxy.port))
    for key, host, port in ports:
        if port:  # 0 picks a free one
            try:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.bind((host, port))
            except OSError as exc:
                found.append(ConfigError(key, f"{host}:{port}: {exc.strerror}"))
    found.extend(missing_packages(config))
    files = [("state.path", config.state_path), ("state.flagd_path", config.flagd_path)]
    if config.budget is not None and config.budget.state_path is not None:
        files.append(("budget.state_path", config.budget.state_path))
    if config.notify.channels:
        files.append(("notify.outbox_path", config.notify.outbox_path))
    for key, path in files:
        if path is not None and not _writable_dir(Path(path).parent):
            found.append(ConfigError(key, f"cannot create or write {path}: its directory is not writable"))
    return found


def missing_packages(config: DaemonConfig) -> list[ConfigError]:
    """The daemon's packages come with the `daemon` extra; a base install (`pip install nbmon`) has none of them."""
    needed = {"aiohttp": ("listen", "daemon"), "apscheduler": ("source", "daemon")}
    if any(channel.kind == "slack" for channel in config.notify.channels):
        needed["slack_sdk"] = ("notify.channels", "daemon")
    if config.quota_projects:
        needed["google.cloud.monitoring_v3"] = ("quota.projects", "daemon")
    if config.fleet.redis_url:
        needed["redis"] = ("fleet.redis_url", "fleet")
    found: list[ConfigError] = []
    for module, (key, extra) in needed.items():
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a parent package (google.cloud) is missing
            spec = None
        if spec is None:
            found.append(ConfigError(key, f"needs {module}, which is not installed: pip install 'nbmon[{extra}]'"))
    return found


def _writable_dir(directory: Path) -> bool:
    """The directory, or the nearest existing ancestor that would hold it, can be written."""
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            return candidate.is_dir() and os.access(candidate, os.W_OK | os.X_OK)
    return False


def _choice(options: tuple[str, ...], upper: bool = False) -> Any:
    def convert(value: object, key: str) -> str:
        text = str(value).upper() if upper else str(value)
        if text not in options:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(options)}")
        return text

    return convert


def _url(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(key, f"{value!r} is not an http(s) URL")
    if not urlsplit(value).hostname:
        raise ConfigError(key, f"{value!r} names no host")
    return value.rstrip("/")


def _urls(value: object, key: str) -> tuple[str, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ConfigError(key, "must be a non-empty list of http(s) URLs")
    return tuple(_url(item, f"{key}[{i}]") for i, item in enumerate(items))


def _names(value: object, key: str) -> tuple[str, ...]:
    items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(i, str) and i for i in items):
        raise ConfigError(key, "must be a non-empty list of alert names")
    return tuple(items)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"{value!r} is not true or false")
    return value


def _path(value: object, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(key, "must be a file path")
    return Path(value)


def _token(admin: Mapping[str, Any], errors: list[ConfigError]) -> str | None:
    """The admin bearer token: inline (env) or from a file (a mounted secret); never both."""
    if "token" in admin and "token_file" in admin:
        errors.append(ConfigError("admin.token_file", "set admin.token or admin.token_file, not both"))
        return None
    if "token_file" in admin:
        try:
            token = Path(str(admin["token_file"])).read_text().strip()
        except OSError as exc:
            errors.append(ConfigError("admin.token_file", f"cannot read: {exc.strerror}"))
            return None
    else:
        raw = str(admin.get("token", ""))
        token = raw.strip()
        if raw and not token:
            errors.append(ConfigError("admin.token", "is blank: set a token of 16 characters or more, or none"))
            return None
    if token and len(token) < 16:
        errors.append(
            ConfigError("admin.token" if "token" in admin else "admin.token_file", "must be at least 16 characters")
        )
        return None
    return token or None
