"""The compose stack: valid against the Compose specification's schema, and every mount and address wired."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from monitor.cli import build_parser
from monitor.daemon import config as daemon_config
from monitor.simulator import parse_profile
from tests.deploy.deploy_support import COMPOSE_FILE, Dockerfile, binds, compose_mounts, venv_tool
from tests.support.constants import ROOT
from tests.support.tools import promtool

COMPOSE_DIR = COMPOSE_FILE.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    command = [venv_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def namespace(compose: dict[str, Any], name: str) -> str:
    """The service whose network namespace `name` lives in."""
    mode = compose["services"][name].get("network_mode", "")
    return mode.removeprefix("service:") if mode.startswith("service:") else name


def secret_files(node: object) -> list[str]:
    """Every `*_file` value of an Alertmanager config (routing keys, webhook URLs, credentials)."""
    if isinstance(node, dict):
        own = [v for k, v in node.items() if k.endswith("_file") and isinstance(v, str)]
        return own + [f for v in node.values() for f in secret_files(v)]
    if isinstance(node, list):
        return [f for v in node for f in secret_files(v)]
    return []


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    return config


def test_the_compose_file_is_valid_against_the_compose_spec() -> None:
    done = check_compose_schema(COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_does_reject_an_unknown_service_key(tmp_path: Path) -> None:
    """The control: the schema forbids unknown keys, so a pass means it was applied."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump({"services": {"app": {"image": "nbmon:0.1.0", "volume": ["a:/a"]}}}))
    done = check_compose_schema(broken)
    assert done.returncode != 0
    assert "volume" in done.stdout


def test_every_host_path_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, host in binds(service).items():
            assert host.exists(), f"{name}: {host} (mounted at {target}) is missing"
        if "build" in service:
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / service["build"]["dockerfile"]).is_file()


def test_images_are_pinned_and_nbmon_is_this_version(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image, name
        assert not image.endswith(":latest"), name
        if "build" in service or image.startswith("nbmon:"):
            assert image == f"nbmon:{VERSION}"


def test_the_simulator_runs_a_real_nbmon_command(compose: dict[str, Any]) -> None:
    args = build_parser().parse_args(compose["services"]["gemini-sim"]["command"])
    assert args.command == "simulate"
    parse_profile(args.profile)  # raises on a bad profile
    gemini = urlsplit(compose["services"]["app"]["environment"]["APP_GEMINI_URL"])
    assert (gemini.hostname, gemini.port) == ("gemini-sim", args.port)
    assert args.host == "0.0.0.0"  # the app calls it from another container


def test_the_app_metrics_port_is_what_nbmon_and_prometheus_scrape(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    assert app["entrypoint"] == ["python", "/opt/app/app.py"]
    assert binds(app)["/opt/app/app.py"] == COMPOSE_DIR / "app.py"
    port = int(app["environment"]["APP_METRICS_PORT"])
    nbmon_toml = tomllib.loads(binds(compose["services"]["nbmon"])["/etc/nbmon/nbmon.toml"].read_text())
    assert nbmon_toml["source"]["targets"] == [f"http://127.0.0.1:{port}/metrics"]  # same namespace: loopback
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus_config()["scrape_configs"]}
    assert jobs["app"] == [f"app:{port}"]
    assert jobs["nbmon"] == [f"{namespace(compose, 'nbmon')}:{daemon_config.DaemonConfig().listen_port}"]


def test_loopback_addresses_are_shared_namespaces(compose: dict[str, Any]) -> None:
    """The app reads the flag and Alertmanager (alertmanager.yml) calls the daemon on loopback: one namespace."""
    assert namespace(compose, "nbmon") == namespace(compose, "alertmanager") == "app"
    port = daemon_config.DaemonConfig().listen_port
    flag = urlsplit(compose["services"]["app"]["environment"]["NBMON_URL"])
    assert (flag.hostname, flag.port) == ("127.0.0.1", port)
    receivers = yaml.safe_load((ROOT / "alerts/alertmanager.yml").read_text())["receivers"]
    (hook,) = [c["url"] for r in receivers for c in r.get("webhook_configs", [])]
    assert (urlsplit(hook).hostname, urlsplit(hook).port) == ("127.0.0.1", port)
    (manager,) = prometheus_config()["alerting"]["alertmanagers"]
    assert manager["static_configs"][0]["targets"] == [f"{namespace(compose, 'alertmanager')}:9093"]
    published = {int(p.split(":")[-1]) for p in compose["services"]["app"]["ports"]}
    assert {port, 9093} <= published


def test_the_daemon_accepts_the_env_and_keeps_state_on_a_volume(
    compose: dict[str, Any], dockerfile: Dockerfile, tmp_path: Path
) -> None:
    service = compose["services"]["nbmon"]
    assert service["command"] == dockerfile.final.last_json("CMD")
    mounts = compose_mounts(compose, "nbmon", dockerfile, tmp_path)
    env = {k: v for k, v in {**dockerfile.env(), **service["environment"]}.items() if k.startswith("NBMON_")}
    assert set(env) <= set(daemon_config.ENV_KEYS) | {"NBMON_CONFIG_FILE"}
    host_env = mounts.remap(env)
    config = daemon_config.load(host_env["NBMON_CONFIG_FILE"], environ=host_env)
    assert config.listen_host == "0.0.0.0"
    assert config.admin_token
    state = mounts.lookup(env["NBMON_STATE_FILE"])
    assert state is not None
    assert state[1]
    assert Path(state[0]).is_relative_to(tmp_path / "nbmon-state")  # the named volume, not the image's anonymous one


def test_alertmanager_gets_its_config_and_every_secret_file(compose: dict[str, Any]) -> None:
    service = compose["services"]["alertmanager"]
    mounted = binds(service)
    assert mounted["/etc/alertmanager/alertmanager.yml"] == ROOT / "alerts/alertmanager.yml"
    files = set(secret_files(yaml.safe_load((ROOT / "alerts/alertmanager.yml").read_text())))
    assert len(files) >= 3
    for path in files:
        parent = str(PurePosixPath(path).parent)
        assert (mounted[parent] / PurePosixPath(path).name).is_file(), path
    nbmon = compose["services"]["nbmon"]
    token = binds(nbmon)[nbmon["environment"]["NBMON_ADMIN_TOKEN_FILE"]]
    assert (mounted["/etc/alertmanager/secrets"] / "nbmon_admin_token").read_text() == token.read_text()


def test_prometheus_config_passes_promtool_with_the_rules_beside_it(compose: dict[str, Any], tmp_path: Path) -> None:
    mounted = binds(compose["services"]["prometheus"])
    config_target = "/etc/prometheus/prometheus.yml"  # the image's default --config.file
    config = yaml.safe_load(mounted[config_target].read_text())
    for rule_file in config["rule_files"]:
        target = str(PurePosixPath(config_target).parent / rule_file)
        assert mounted[target] == ROOT / "alerts/nbmon.rules.yml"
    for target, host in mounted.items():  # the container's /etc/prometheus, rebuilt under tmp_path
        if target.startswith("/etc/prometheus/"):
            shutil.copy(host, tmp_path / PurePosixPath(target).name)
    done = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr


def test_grafana_provisions_every_dashboard_and_the_datasource(compose: dict[str, Any]) -> None:
    service = compose["services"]["grafana"]
    mounted = binds(service)
    providers = mounted["/etc/grafana/provisioning/dashboards/nbmon.yml"]
    assert providers == ROOT / "dashboards/provisioning/dashboards.yml"
    (provider,) = yaml.safe_load(providers.read_text())["providers"]
    folder = provider["options"]["path"]
    shipped = {p.name for p in (ROOT / "dashboards").glob("*.json")}
    assert shipped
    assert {PurePosixPath(t).name for t in mounted if t.startswith(folder + "/")} == shipped
    (source,) = yaml.safe_load(mounted["/etc/grafana/provisioning/datasources/nbmon.yml"].read_text())["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True  # the dashboards' datasource variable starts on the default
    url = urlsplit(source["url"])
    assert (url.hostname, url.port) == (namespace(compose, "prometheus"), 9090)  # Prometheus' default port


@pytest.mark.parametrize("service", ["nbmon", "alertmanager"])
def test_services_in_the_apps_namespace_publish_no_ports_of_their_own(compose: dict[str, Any], service: str) -> None:
    assert "ports" not in compose["services"][service]  # compose refuses ports with network_mode


def test_the_sidecar_reaches_the_fleet_redis_by_its_service_name(compose: dict[str, Any]) -> None:
    nbmon = compose["services"]["nbmon"]
    fleet_env = {k: v for k, v in nbmon["environment"].items() if k in ("NBMON_REDIS_URL", "NBMON_FLEET_PROJECT")}
    config = daemon_config.load(None, environ=fleet_env)  # read as the daemon reads it
    assert config.fleet.redis_url is not None
    url = urlsplit(config.fleet.redis_url)
    redis = compose["services"][str(url.hostname)]  # a service of its own, resolved by compose's DNS
    assert redis["image"].startswith("redis:")
    assert url.port == 6379  # the image's port
    assert url.hostname in nbmon["depends_on"]
    assert "ports" not in redis  # only the stack reaches it
