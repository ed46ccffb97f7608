"""`[fleet]`: parsed once with every error keyed, the Redis URL (a secret) never repeated in an error or a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.daemon.config import ConfigErrors, from_mapping, load, missing_packages
from monitor.errors import ConfigError
from monitor.fleet import FleetSettings, fleet_settings_from_mapping
from tests.support.redis import RedisServer


def test_defaults_mean_no_redis_and_one_replica() -> None:
    fleet = from_mapping({}).fleet
    assert fleet == FleetSettings()
    assert fleet.redis_url is None and fleet.replicas == 1 and fleet.project == "default"


def test_a_full_section_parses_and_keys_keep_a_project_in_one_cluster_slot() -> None:
    fleet = from_mapping(
        {
            "fleet": {
                "redis_url": "redis://:s3cret@redis:6379/0",
                "project": "acme-prod",
                "replicas": 3,
                "timeout": "100ms",
            }
        }
    ).fleet
    assert (fleet.project, fleet.replicas, fleet.timeout_s) == ("acme-prod", 3, 0.1)
    assert fleet.key("pace", "gemini-3-pro-image", "rpm") == "nbmon:{acme-prod}:pace:gemini-3-pro-image:rpm"
    assert "s3cret" not in repr(fleet)


def test_every_bad_key_is_reported_at_once_without_the_url() -> None:
    with pytest.raises(ConfigErrors) as caught:
        from_mapping(
            {"fleet": {"redis_url": "http://user:s3cret@x", "replicas": 0, "timeout": "1h", "project": "a b", "x": 1}}
        )
    message = str(caught.value)
    for key in ("fleet.redis_url", "fleet.replicas", "fleet.timeout", "fleet.project", "fleet.x"):
        assert key in message
    assert "s3cret" not in message


@pytest.mark.parametrize("replicas", [True, "three", 10_001, -1])
def test_replicas_must_be_a_sane_whole_number(replicas: object) -> None:
    errors: list[ConfigError] = []
    assert fleet_settings_from_mapping({"replicas": replicas}, errors).replicas == 1
    assert [e.key for e in errors] == ["fleet.replicas"]


def test_the_environment_names_the_redis_url() -> None:
    config = load(None, environ={"NBMON_REDIS_URL": "redis://127.0.0.1:6390/2", "NBMON_FLEET_PROJECT": "p2"})
    assert config.fleet.redis_url == "redis://127.0.0.1:6390/2"
    assert config.fleet.project == "p2"
    errors: list[ConfigError] = []
    app_side = fleet_settings_from_mapping({}, errors, environ={"NBMON_REDIS_URL": "rediss://r:6380/0"})
    assert app_side.redis_url == "rediss://r:6380/0" and not errors


def test_check_config_names_the_fleet_extra_only_when_redis_is_configured() -> None:
    assert not [e for e in missing_packages(from_mapping({})) if e.key.startswith("fleet")]
    # redis is installed here (the dev extra), so a configured URL needs nothing more.
    assert not [
        e for e in missing_packages(from_mapping({"fleet": {"redis_url": "redis://r/0"}})) if e.key.startswith("fleet")
    ]


def test_the_app_side_reads_the_fleet_project_from_the_environment_as_the_daemon_does() -> None:
    errors: list[ConfigError] = []
    environ = {"NBMON_FLEET_PROJECT": "p2"}
    assert fleet_settings_from_mapping({"project": "p1"}, errors, environ).project == "p2"
    assert load(None, environ=environ).fleet.project == "p2"
    fleet_settings_from_mapping({}, errors, {"NBMON_FLEET_PROJECT": "a b"})
    assert [e.key for e in errors] == ["fleet.project"]


def test_load_pacer_paces_under_the_environments_project(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.pacing import load_pacer

    path = tmp_path / "nbmon.toml"
    path.write_text('[fleet]\nproject = "file"\n\n[pacing.limits."m"]\nrpm = 5\n')
    monkeypatch.setenv("NBMON_REDIS_URL", redis_server.url)
    monkeypatch.setenv("NBMON_FLEET_PROJECT", "from-env")
    pacer = load_pacer(str(path), registry=CollectorRegistry())
    assert pacer is not None and pacer.acquire("m").admitted
    client = redis_server.client()
    assert [str(key, "utf-8") if isinstance(key, bytes) else key for key in client.keys("*")] == [
        "nbmon:{from-env}:pace:m:rpm"
    ]  # as the daemon's proxy's key
    client.close()


def test_connecting_registers_the_urls_password_for_redaction() -> None:
    from monitor.fleet.redis_client import connect
    from monitor.logs import redact_text

    connect(FleetSettings(redis_url="redis://:p4ssw0rd-for-redis@127.0.0.1:1/0")).close()
    assert "p4ssw0rd-for-redis" not in redact_text("connecting to redis with p4ssw0rd-for-redis failed")
