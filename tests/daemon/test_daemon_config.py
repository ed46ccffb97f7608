"""The daemon's config, branch by branch: every bad value is refused with its dotted key, all at once; the
environment overrides the file; `preflight` refuses what the machine would refuse at start."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from monitor.daemon import config as daemon_config
from monitor.daemon.config import ConfigErrors, DaemonConfig, from_mapping, load, positive_seconds, preflight
from monitor.errors import ConfigError

TARGET = "http://127.0.0.1:9464/metrics"
REDIS = "redis://:a-redis-password@127.0.0.1:6379/0"


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        from_mapping(data)
    return [str(error) for error in caught.value.errors]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"listen": "0.0.0.0:8016"}, "listen: must be a table/mapping"),
        ({"rules": ["degraded-mode"]}, "rules: must be a table/mapping of rule name -> settings"),
        ({"models": "gemini-3-pro-image"}, "models: must be a table"),
        ({"notify": ["slack"]}, "notify: "),
        ({"listen": {"host": ""}}, "listen.host: must be a host name or IP address"),
        ({"listen": {"host": 8016}}, "listen.host: must be a host name or IP address"),
        ({"listen": {"host": "my host!"}}, "listen.host: 'my host!' is not a host name or IP address"),
        ({"listen": {"port": "eighty"}}, "listen.port: 'eighty' is not a port number"),
        ({"listen": {"port": -1}}, "listen.port: must be between 0 and 65535 (0 picks a free port)"),
        ({"source": {"kind": "inprocess"}}, "source.kind: inprocess reads the app's own registry"),
        ({"source": {"kind": "promql"}}, "source.promql_url: required when source.kind is promql"),
        ({"source": {"kind": "promql", "promql_url": "prometheus:9090"}}, "source.promql_url: 'prometheus:9090' is"),
        ({"source": {"targets": []}}, "source.targets: must be a non-empty list of http(s) URLs"),
        ({"source": {"targets": 9464}}, "source.targets: must be a non-empty list of http(s) URLs"),
        ({"source": {"targets": ["http:///metrics"]}}, "source.targets[0]: 'http:///metrics' names no host"),
        ({"source": {"interval": "0"}}, "source.interval: must be > 0"),
        ({"source": {"interval": "nan"}}, "source.interval: must be > 0"),
        ({"source": {"interval": 0.01}}, "source.interval: 0.01s is below"),
        ({"evaluation": {"interval": "1ms"}}, "evaluation.interval: 0.001s is below"),
        (
            {"source": {"targets": [TARGET, TARGET + "/"]}},
            "source.targets[1]: the same target as source.targets[0]",
        ),
        (
            {"source": {"interval": "30s"}, "rules": {"degraded-mode": {"window_s": "45s"}}},
            "rules.degraded-mode.window_s: 45s holds fewer than two scrapes (source.interval 30s)",
        ),
        ({"state": {"path": ""}}, "state.path: must be a file path"),
        ({"state": {"flagd_path": 3}}, "state.flagd_path: must be a file path"),
        ({"log": {"level": "LOUD"}}, "log.level: 'LOUD' is not one of"),
        ({"log": {"format": "xml"}}, "log.format: 'xml' is not one of"),
        ({"alertmanager": {"alerts": []}}, "alertmanager.alerts: must be a non-empty list of alert names"),
        ({"alertmanager": {"alerts": ["ok", ""]}}, "alertmanager.alerts: must be a non-empty list of alert names"),
        (
            {"quota": {"projects": ["p"], "interval": "60s", "timeout": "60s"}},
            "quota.timeout: must be shorter than quota.interval",
        ),
        ({"quota": {"rules": {"no-such-rule": {}}}}, "quota.rules.no-such-rule: must be a table for one of"),
        ({"quota": {"lease": True}}, "quota.lease: needs fleet.redis_url"),
        ({"quota": {"lease": "yes"}, "fleet": {"redis_url": REDIS}}, "quota.lease: 'yes' is not true or false"),
        ({"quota": {"lease_ttl": "0.5s"}}, "quota.lease_ttl: 0.5s: must be between 1.5s and 3600s"),
        ({"quota": {"lease_ttl": "2h"}}, "quota.lease_ttl: 7200s: must be between 1.5s"),
        ({"quota": {"lease_ttl": "2s"}, "fleet": {"timeout": "1s"}}, "quota.lease_ttl: 2s: must be between 6s"),
        ({"quota": {"lease_ttl": "0"}}, "quota.lease_ttl: must be > 0"),
        ({"admin": {"token": "   "}}, "admin.token: is blank"),
        ({"admin": {"token": "t", "token_file": "/run/secrets/t"}}, "admin.token_file: set admin.token or"),
        ({"admin": {"token_file": "/nonexistent/nbmon-token"}}, "admin.token_file: cannot read: No such file"),
    ],
)
def test_each_bad_value_is_named_by_its_key(data: dict[str, Any], expected: str) -> None:
    found = errors_of(data)
    assert any(error.startswith(expected) for error in found), found


def test_every_error_is_listed_at_once() -> None:
    found = errors_of(
        {
            "listen": {"port": 70000, "colour": "blue"},
            "source": {"kind": "carrier-pigeon"},
            "log": {"level": "LOUD"},
            "extra": {},
        }
    )
    keys = [error.split(":")[0] for error in found]
    assert keys == ["extra", "listen.colour", "listen.port", "source.kind", "log.level"]


def test_the_quota_lease_is_on_exactly_when_the_fleet_has_redis() -> None:
    assert not from_mapping({}).quota_lease  # one replica: it polls, as ever
    fleet = from_mapping({"fleet": {"redis_url": REDIS}})
    assert (fleet.quota_lease, fleet.quota_lease_ttl_s) == (True, 30.0)
    off = from_mapping({"fleet": {"redis_url": REDIS}, "quota": {"lease": False, "lease_ttl": "2s"}})
    assert (off.quota_lease, off.quota_lease_ttl_s) == (False, 2.0)


def test_a_lease_error_never_repeats_the_redis_password() -> None:
    found = errors_of({"fleet": {"redis_url": REDIS}, "quota": {"lease": 1, "lease_ttl": "0.1s"}})
    assert [e.split(":")[0] for e in found] == ["quota.lease", "quota.lease_ttl"]
    assert not any("a-redis-password" in e for e in found)


def test_a_token_file_is_read_stripped_and_must_be_long_enough(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("  file-token-0123456789\n")
    assert from_mapping({"admin": {"token_file": str(secret)}}).admin_token == "file-token-0123456789"
    secret.write_text("short\n")
    assert errors_of({"admin": {"token_file": str(secret)}}) == ["admin.token_file: must be at least 16 characters"]


def test_values_are_normalised() -> None:
    config = from_mapping(
        {
            "listen": {"host": "localhost", "port": "0"},
            "source": {"targets": f" {TARGET}/ , http://10.0.0.2:9464/metrics ", "interval": "0.5m"},
            "evaluation": {"interval": 5},
            "log": {"level": "debug"},
            "alertmanager": {"alerts": "NbmonDegraded, NbmonQuota"},
        }
    )
    assert (config.listen_host, config.listen_port) == ("localhost", 0)
    assert config.targets == (TARGET, "http://10.0.0.2:9464/metrics")
    assert (config.source_interval_s, config.evaluation_interval_s) == (30.0, 5.0)
    assert config.log_level == "DEBUG"
    assert config.alertmanager_alerts == ("NbmonDegraded", "NbmonQuota")


@pytest.mark.parametrize(("value", "seconds"), [("15", 15.0), (15, 15.0), ("1m30s", 90.0), ("500ms", 0.5)])
def test_positive_seconds_takes_numbers_and_durations(value: object, seconds: float) -> None:
    assert positive_seconds(value, "source.interval") == seconds


@pytest.mark.parametrize("value", ["-5", "0", "inf", 0, -1.5])
def test_positive_seconds_refuses_what_is_not_above_zero(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^source.interval: must be > 0$"):
        positive_seconds(value, "source.interval")


def test_the_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text(f'[listen]\nport = 9000\n[source]\ntargets = ["{TARGET}"]\n')
    config = load(path, environ={"NBMON_LISTEN_PORT": "9100", "NBMON_LOG_LEVEL": "warning"})
    assert (config.listen_port, config.log_level, config.targets) == (9100, "WARNING", (TARGET,))
    assert load(None, environ={"NBMON_SOURCE_TARGETS": TARGET}).targets == (TARGET,)


def test_an_environment_variable_never_replaces_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text("listen = 9000\n")
    with pytest.raises(ConfigErrors) as caught:
        load(path, environ={"NBMON_LISTEN_PORT": "9100"})
    assert [str(e) for e in caught.value.errors] == ["listen: must be a table/mapping"]


def test_a_config_without_a_rule_that_sets_the_flag_warns() -> None:
    config = from_mapping({"rules": {"degraded-mode": {"enabled": False}}})
    assert config.warnings == (
        "rules: no enabled rule sets the degraded-mode flag: only an override or Alertmanager can turn it on",
    )
    assert from_mapping({}).warnings == ()


# --- preflight: what the machine must allow ------------------------------------------------------------------------


def test_preflight_passes_on_a_free_port_and_writable_directories(tmp_path: Path) -> None:
    config = DaemonConfig(listen_port=0, state_path=tmp_path / "new" / "dir" / "state.json")
    assert preflight(config) == []


def test_preflight_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        found = preflight(DaemonConfig(listen_port=port, state_path=tmp_path / "s.json"))
    assert [str(e) for e in found] == [f"listen.port: 127.0.0.1:{port}: Address already in use"]


def test_preflight_refuses_files_whose_directory_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    secret = tmp_path / "hook-url"
    secret.write_text("https://hooks.example.com/nbmon\n")
    config = from_mapping(
        {
            "listen": {"port": 0},
            "state": {"path": str(blocker / "state.json"), "flagd_path": str(blocker / "flags.json")},
            "notify": {
                "outbox_path": str(blocker / "outbox.sqlite"),
                "channels": {"hook": {"kind": "webhook", "url_file": str(secret)}},
            },
        }
    )
    assert [e.key for e in preflight(config)] == ["state.path", "state.flagd_path", "notify.outbox_path"]


def test_preflight_names_the_packages_a_base_install_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What `pip install nbmon` without the daemon extra looks like to find_spec: the packages are not there.
    for module in ("aiohttp", "apscheduler", "slack_sdk"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "google.cloud.monitoring_v3", raising=False)
    monkeypatch.setitem(sys.modules, "google.cloud", None)  # the parent package itself is missing
    secret = tmp_path / "slack-url"
    secret.write_text("https://hooks.slack.com/services/T0/B0/XYZ\n")
    config = from_mapping(
        {
            "listen": {"port": 0},
            "state": {"path": str(tmp_path / "state.json")},
            "quota": {"projects": ["my-project"]},
            "notify": {"channels": {"chat": {"kind": "slack", "webhook_url_file": str(secret)}}},
        }
    )
    found = {e.key: e.problem for e in daemon_config.missing_packages(config)}
    assert found == {
        "listen": "needs aiohttp, which is not installed: pip install 'nbmon[daemon]'",
        "source": "needs apscheduler, which is not installed: pip install 'nbmon[daemon]'",
        "notify.channels": "needs slack_sdk, which is not installed: pip install 'nbmon[daemon]'",
        "quota.projects": "needs google.cloud.monitoring_v3, which is not installed: pip install 'nbmon[daemon]'",
    }
    assert {e.key for e in preflight(config)} >= set(found)
