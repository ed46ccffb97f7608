"""The image's install, done here without a container engine: the built wheel in a fresh venv runs the entrypoint.

The steps mirror the Dockerfile: `pip wheel` of what the build stage COPYs from the context (.dockerignore
applied) and of every dependency, then a venv without pip that the outer pip installs into, offline, from those
wheels (the final stage). Dependencies come from PyPI (through pip's cache), as `make test` installs them.
The daemon then runs with the image's environment, its config file and a directory for its VOLUME, and the
HEALTHCHECK's own command probes it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.deploy_support import Dockerfile, build_stage_sources, image_mounts
from tests.support.constants import ROOT
from tests.support.http import free_port

pytestmark = pytest.mark.timeout(600)  # the first test also builds the wheels (about 30 s with a warm pip cache)


@dataclass
class Venv:
    bin: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run from the venv's own directory: a cwd of the repository would put the working tree on sys.path."""
        command = [str(self.bin / args[0]), *args[1:]]
        cwd = self.bin.parent
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, dockerfile: Dockerfile) -> Iterator[Venv]:
    root = tmp_path_factory.mktemp("image")
    wheels, target = root / "wheels", root / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    sources = build_stage_sources(dockerfile, root / "src")
    extras = image_extras(dockerfile)
    step([*pip, "wheel", "--wheel-dir", str(wheels), f"{sources}[{extras}]"])
    step([sys.executable, "-m", "venv", "--without-pip", str(target)])
    into = ["--python", str(target / "bin" / "python")]
    step([*pip, *into, "install", "--no-index", f"--find-links={wheels}", f"nbmon[{extras}]"])
    yield Venv(target / "bin")


def image_extras(dockerfile: Dockerfile) -> str:
    """The extras the image installs: the build stage wheels `.[x]` and the final stage installs `nbmon[x]`."""
    (build,) = (re.search(r'"\.\[([a-z,]+)\]"', rest) for rest in dockerfile.stages[0].args("RUN"))
    (final,) = (re.search(r'"nbmon\[([a-z,]+)\]"', rest) for rest in dockerfile.final.args("RUN"))
    assert build is not None and final is not None, "the Dockerfile must install nbmon with its extras, quoted"
    assert build[1] == final[1], f"the build stage wheels [{build[1]}] but the final stage installs [{final[1]}]"
    return build[1]


def step(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, f"{command}: {done.stderr}"


def image_env(dockerfile: Dockerfile, volume_root: Path, **extra: str) -> dict[str, str]:
    """The image's ENV with its paths on this host; PATH and HOME from here (the venv is called by path)."""
    env = {k: v for k, v in dockerfile.env().items() if k != "PATH"}
    env = image_mounts(dockerfile, volume_root).remap(env)
    return {**env, "PATH": os.environ["PATH"], "HOME": str(volume_root), **extra}


def healthcheck(venv: Venv, dockerfile: Dockerfile, port: int) -> subprocess.CompletedProcess[str]:
    _flags, command = dockerfile.healthcheck()
    # A dead proxy in the environment, as when egress goes through one: the loopback probe must not use it.
    dead_proxy = f"http://127.0.0.1:{free_port()}"
    env = {
        "PATH": os.environ["PATH"],
        "NBMON_LISTEN_PORT": str(port),
        "http_proxy": dead_proxy,
        "HTTP_PROXY": dead_proxy,
    }
    return venv.run(*command, env=env)


def test_the_wheel_installs_the_package_and_not_the_working_tree(venv: Venv) -> None:
    done = venv.run("python", "-c", "import monitor, sys; print(monitor.__file__); print(sys.prefix)")
    assert done.returncode == 0, done.stderr
    module, prefix = done.stdout.split()
    assert Path(module).is_relative_to(prefix)
    assert not Path(module).is_relative_to(ROOT)
    assert not (venv.bin / "pip").exists()  # nothing to build or install with in the final image


def test_entrypoint_help_and_run_help(venv: Venv, dockerfile: Dockerfile) -> None:
    (entrypoint,) = dockerfile.final.last_json("ENTRYPOINT")
    done = venv.run(entrypoint, "--help")
    assert done.returncode == 0, done.stderr
    for command in ("run", "check-config", "simulate", "demo"):
        assert command in done.stdout
    done = venv.run(entrypoint, *dockerfile.final.last_json("CMD"), "--help")
    assert done.returncode == 0, done.stderr
    assert "--config" in done.stdout


def test_check_config_accepts_the_images_config(venv: Venv, dockerfile: Dockerfile, tmp_path: Path) -> None:
    done = venv.run("nbmon", "check-config", env=image_env(dockerfile, tmp_path))
    assert done.returncode == 0, done.stderr
    assert "listen 0.0.0.0:8016" in done.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[listen]\nport = 70000\n")
    done = venv.run("nbmon", "check-config", "--config", str(bad), env=image_env(dockerfile, tmp_path))
    assert done.returncode == 2
    assert "listen.port" in done.stderr


def test_the_entrypoint_serves_healthz_and_stops_on_sigterm(venv: Venv, dockerfile: Dockerfile, tmp_path: Path) -> None:
    port = free_port()
    env = image_env(dockerfile, tmp_path, NBMON_LISTEN_PORT=str(port), NBMON_SOURCE_INTERVAL="1s")
    (workdir,) = dockerfile.final.args("WORKDIR")
    command = [str(venv.bin / dockerfile.final.last_json("ENTRYPOINT")[0]), *dockerfile.final.last_json("CMD")]
    cwd = image_mounts(dockerfile, tmp_path).host(workdir)
    with subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 30
            while (probe := healthcheck(venv, dockerfile, port)).returncode != 0:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, probe.stderr
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        stdout = proc.stdout.read() if proc.stdout else ""
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    (listening,) = [e for e in events if e.get("event") == "nbmon.daemon.listening"]
    assert listening["url"] == f"http://0.0.0.0:{port}"
    assert Path(env["NBMON_STATE_FILE"]).is_file()  # persisted on the VOLUME
    assert Path(env["NBMON_STATE_FILE"]).parent == cwd


def test_the_healthcheck_fails_when_nothing_answers(venv: Venv, dockerfile: Dockerfile) -> None:
    done = healthcheck(venv, dockerfile, free_port())
    assert done.returncode != 0
    assert "Connection refused" in done.stderr
