"""The Kubernetes example: valid against the API schemas (offline), and wired the way the daemon needs."""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest

import monitor
from monitor.cli import build_parser
from monitor.config import CONFIG_ENV
from monitor.daemon import config as daemon_config
from monitor.shim import DISABLE_ENV
from tests.deploy.deploy_support import Dockerfile, Mounts, image_mounts
from tests.support.constants import ROOT

# The oldest version with native sidecars (restartable init containers) on by default, and the newest shipped.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
FLAGD_DEFAULT_PORTS = {"--port": 8013, "--management-port": 8014, "--sync-port": 8015, "--ofrep-port": 8016}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    return found


def pod(docs: list[dict[str, Any]], name: str = "image-app") -> dict[str, Any]:
    spec: dict[str, Any] = one(docs, "Deployment", name)["spec"]["template"]
    return spec


def containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    spec = pod(docs)["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def port_of(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def pod_mounts(docs: list[dict[str, Any]], container: dict[str, Any], base: Mounts, root: Path) -> Mounts:
    """The container's volumes on this host: ConfigMap files written out, a token in each Secret, emptyDirs empty."""
    volumes = {v["name"]: v for v in pod(docs)["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        host = root / mount["name"]
        host.mkdir(exist_ok=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            for key, text in one(docs, "ConfigMap", volume["configMap"]["name"])["data"].items():
                (host / key).write_text(text)
        if "secret" in volume:
            (host / "token").write_text("k8s-example-token-0123456789\n")
        base.add(mount["mountPath"], host, writable=not mount.get("readOnly", False) and "emptyDir" in volume)
    return base


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_in_strict_mode(k8s_docs: list[dict[str, Any]], version: str) -> None:
    assert {d["kind"] for d in k8s_docs} == {"ConfigMap", "Deployment", "Service"}
    for doc in k8s_docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_does_reject_an_unknown_field(k8s_docs: list[dict[str, Any]]) -> None:
    """The control: a misspelt probe key fails, so a pass means the schemas were applied."""
    broken = copy.deepcopy(one(k8s_docs, "Deployment", "image-app"))
    broken["spec"]["template"]["spec"]["initContainers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_the_sidecar_probes_healthz_on_the_exposed_port_and_never_gates_the_app(
    k8s_docs: list[dict[str, Any]], dockerfile: Dockerfile
) -> None:
    nbmon = containers(k8s_docs)["nbmon"]
    assert nbmon["restartPolicy"] == "Always"  # a native sidecar: up before the app, down after it
    (exposed,) = dockerfile.final.args("EXPOSE")
    get = nbmon["livenessProbe"]["httpGet"]
    assert get["path"] == "/healthz"
    assert port_of(nbmon, get["port"]) == int(exposed) == daemon_config.DaemonConfig().listen_port
    # A sidecar's startup and readiness gate the app's start and the pod's traffic: telemetry must not.
    assert "startupProbe" not in nbmon and "readinessProbe" not in nbmon


def test_the_sidecar_runs_the_image_of_this_version(k8s_docs: list[dict[str, Any]], dockerfile: Dockerfile) -> None:
    nbmon = containers(k8s_docs)["nbmon"]
    assert nbmon["image"].rsplit(":", 1)[1] == VERSION
    assert nbmon.get("command") is None  # the image's ENTRYPOINT
    assert nbmon["args"] == dockerfile.final.last_json("CMD")
    assert pod(k8s_docs)["spec"]["securityContext"]["runAsUser"] == int(dockerfile.final.args("USER")[0].split(":")[0])
    for container in containers(k8s_docs).values():
        assert ":" in container["image"]
        assert not container["image"].endswith(":latest")


def test_prometheus_annotations_scrape_the_app_and_the_sidecar(k8s_docs: list[dict[str, Any]]) -> None:
    every = containers(k8s_docs)
    annotations = pod(k8s_docs)["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port_of(every["app"], "metrics")
    service = one(k8s_docs, "Service", "image-app-nbmon")
    (port,) = service["spec"]["ports"]
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(port["port"])
    assert port_of(every["nbmon"], port["targetPort"]) == port["port"]
    selector = service["spec"]["selector"].items()
    assert selector <= pod(k8s_docs)["metadata"]["labels"].items()


def test_no_two_containers_of_the_pod_share_a_port(k8s_docs: list[dict[str, Any]]) -> None:
    every = containers(k8s_docs)
    args = every["flagd"]["args"]
    flagd = [int(args[args.index(flag) + 1]) if flag in args else port for flag, port in FLAGD_DEFAULT_PORTS.items()]
    assert {p["containerPort"] for p in every["flagd"]["ports"]} <= set(flagd)
    ports = [p["containerPort"] for name in ("nbmon", "app") for p in every[name]["ports"]] + flagd
    assert len(ports) == len(set(ports)), ports  # flagd's OFREP default is 8016, nbmon's port


def test_the_daemon_accepts_the_sidecars_env_and_config(
    k8s_docs: list[dict[str, Any]], dockerfile: Dockerfile, tmp_path: Path
) -> None:
    nbmon = containers(k8s_docs)["nbmon"]
    mounts = pod_mounts(k8s_docs, nbmon, image_mounts(dockerfile, tmp_path, volumes=False), tmp_path)
    env = {k: v for k, v in {**dockerfile.env(), **env_of(nbmon)}.items() if k.startswith("NBMON_")}
    assert set(env) <= set(daemon_config.ENV_KEYS) | {"NBMON_CONFIG_FILE"}
    host_env = mounts.remap(env)  # every path on a volume of the pod (or in the image)
    config = daemon_config.load(host_env["NBMON_CONFIG_FILE"], environ=host_env)
    assert config.listen_host == "0.0.0.0"
    assert config.admin_token
    for written in (env["NBMON_STATE_FILE"], env["NBMON_FLAGD_FILE"], str(config.notify.outbox_path)):
        found = mounts.lookup(written)
        assert found is not None
        assert found[1], f"{written} must be on a writable emptyDir"
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config"], env=host_env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_the_app_reads_the_shared_config_and_only_nbmon_variables_it_knows(
    k8s_docs: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = containers(k8s_docs)["app"]
    env = {k: v for k, v in env_of(app).items() if k.startswith("NBMON_")}
    monkeypatch.setenv("NBMON_URL", env["NBMON_URL"])
    assert build_parser().parse_args(["flag", "show"]).url == env["NBMON_URL"]  # the same variable as the CLI's
    assert set(env) <= {CONFIG_ENV, DISABLE_ENV, "NBMON_URL"}
    mounts = pod_mounts(k8s_docs, app, Mounts(), tmp_path)
    shim = monitor.load_shim_config(mounts.host(env[CONFIG_ENV]))
    daemon = daemon_config.load(mounts.host(env[CONFIG_ENV]), environ={})
    assert (shim.primary_model, shim.fallback_model) == (daemon.primary_model, daemon.fallback_model)
    assert urlsplit(env["NBMON_URL"]).port == daemon_config.DaemonConfig().listen_port


def test_flagd_reads_the_file_nbmon_writes_on_a_shared_emptydir(k8s_docs: list[dict[str, Any]]) -> None:
    every = containers(k8s_docs)
    flag_file = env_of(every["nbmon"])["NBMON_FLAGD_FILE"]
    args = every["flagd"]["args"]
    uri = args[args.index("--uri") + 1]
    assert uri == f"file:{flag_file}"

    def volume_holding(container: dict[str, Any], path: str) -> str:
        (name,) = [m["name"] for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
        return str(name)

    shared = volume_holding(every["nbmon"], flag_file)
    assert shared == volume_holding(every["flagd"], flag_file)
    volume = next(v for v in pod(k8s_docs)["spec"]["volumes"] if v["name"] == shared)
    assert "emptyDir" in volume


def test_the_sidecars_of_every_replica_decide_from_the_fleet_in_prometheus(k8s_docs: list[dict[str, Any]]) -> None:
    """One decision for the fleet: each sidecar asks Prometheus for the fleet-wide counts of the apps it scrapes."""
    assert one(k8s_docs, "Deployment", "image-app")["spec"]["replicas"] > 1
    text = one(k8s_docs, "ConfigMap")["data"]["nbmon.toml"]
    config = daemon_config.from_mapping(tomllib.loads(text))
    assert config.source_kind == "promql"
    assert config.promql_url is not None
    assert urlsplit(config.promql_url).scheme == "http"
    assert urlsplit(config.promql_url).hostname not in (None, "127.0.0.1", "localhost")  # the cluster's, not the pod's
    assert "interval" in tomllib.loads(text)["evaluation"]  # one grid for every sidecar, spelt out
    # What the query sums is what the pods' annotations make Prometheus scrape.
    annotations = pod(k8s_docs)["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port_of(containers(k8s_docs)["app"], "metrics")


def test_the_fleet_redis_is_the_service_the_config_names(k8s_docs: list[dict[str, Any]]) -> None:
    config = daemon_config.from_mapping(tomllib.loads(one(k8s_docs, "ConfigMap")["data"]["nbmon.toml"]))
    assert config.fleet.redis_url is not None
    url = urlsplit(config.fleet.redis_url)
    assert config.fleet.replicas == one(k8s_docs, "Deployment", "image-app")["spec"]["replicas"]
    service = one(k8s_docs, "Service", url.hostname)
    (port,) = service["spec"]["ports"]
    assert port["port"] == url.port
    redis = pod(k8s_docs, "image-app-redis")
    assert service["spec"]["selector"].items() <= redis["metadata"]["labels"].items()
    (container,) = redis["spec"]["containers"]
    assert port_of(container, port["targetPort"]) == 6379
    assert container["image"].startswith("redis:") and not container["image"].endswith(":latest")
    # Neither selects the other's pods: app traffic never reaches Redis, nor the fleet's keys an app pod.
    for name in ("image-app", "image-app-nbmon"):
        assert not one(k8s_docs, "Service", name)["spec"]["selector"].items() <= redis["metadata"]["labels"].items()
    assert not service["spec"]["selector"].items() <= pod(k8s_docs)["metadata"]["labels"].items()
