"""`pip install nbmon` alone (no extras), as an instrumented app installs it: a wheel of the sources in a fresh venv.

The base install runs `instrument()` and a real google-genai call against the simulator (which it ships), never
imports what the extras bring, and its daemon commands say which extra to install instead of failing with a
traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli import _EXTRA_OF_MODULE
from tests.deploy.deploy_support import Dockerfile, build_stage_sources

pytestmark = pytest.mark.timeout(600)  # the fixture installs google-genai and its dependencies (pip's cache helps)

# What the extras add; none of it may be imported (or installed) by the base.
EXTRA_DISTRIBUTIONS = ("aiohttp", "apscheduler", "google-cloud-monitoring", "grpcio", "slack-sdk", "pyyaml", "rich")
EXTRA_MODULES = (*_EXTRA_OF_MODULE, "orjson", "opentelemetry.sdk")

CALL = """
import json, sys
import monitor
monitor.instrument()
from google import genai
from google.genai import types
from prometheus_client import REGISTRY

client = genai.Client(api_key="base-install-key", http_options=types.HttpOptions(base_url=sys.argv[1]))
response = client.models.generate_content(
    model="gemini-3-pro-image",
    contents="a banana on a desk",
    config=types.GenerateContentConfig(response_modalities=["IMAGE"]),
)
images = [p for p in response.candidates[0].content.parts if p.inline_data and not p.thought]
calls = REGISTRY.get_sample_value(
    "nbmon_requests_total", {"model": "gemini-3-pro-image", "code": "200", "error_class": "ok"}
)
loaded = sorted(name for name in sys.argv[2:] if name in sys.modules)
print(json.dumps({"images": len(images), "calls": calls, "instrumented": monitor.is_instrumented(), "loaded": loaded}))
"""


@dataclass
class BaseVenv:
    bin: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # The venv's own directory as cwd: the repository's would put the working tree on sys.path.
        command = [str(self.bin / args[0]), *args[1:]]
        return subprocess.run(
            command, capture_output=True, text=True, cwd=self.bin.parent, timeout=timeout, check=False
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, dockerfile: Dockerfile) -> BaseVenv:
    root = tmp_path_factory.mktemp("base")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    sources = build_stage_sources(dockerfile, root / "src")
    run([*pip, "wheel", "--no-deps", "--wheel-dir", str(root / "dist"), str(sources)])
    (wheel,) = (root / "dist").glob("nbmon-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")])
    run([*pip, "--python", str(root / "venv" / "bin" / "python"), "install", str(wheel)])
    return BaseVenv(root / "venv" / "bin")


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=500, check=False)
    assert done.returncode == 0, f"{command}: {done.stderr}"


@pytest.fixture
def simulator(base: BaseVenv, tmp_path: Path) -> Iterator[str]:
    """The base install's own `nbmon simulate`, on a free loopback port."""
    command = [str(base.bin / "nbmon"), "simulate", "--port", "0"]
    with (
        (tmp_path / "simulator.log").open("w+") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True) as process,
    ):
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "listening on " in line, log.seek(0) or log.read()
            yield line.split("listening on ", 1)[1].split()[0]
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_base_install_has_none_of_the_extras(base: BaseVenv) -> None:
    installed = {
        path.name.split("-")[0].lower().replace("_", "-")
        for path in base.bin.parent.glob("lib/python*/site-packages/*.dist-info")
    }
    assert {"nbmon", "google-genai", "opentelemetry-api", "prometheus-client", "structlog"} <= installed
    assert not installed & {*EXTRA_DISTRIBUTIONS, "opentelemetry-sdk", "orjson"}


def test_instrument_and_one_call_on_the_base_install(base: BaseVenv, simulator: str, tmp_path: Path) -> None:
    script = tmp_path / "call.py"
    script.write_text(textwrap.dedent(CALL))
    done = base.run("python", str(script), simulator, *EXTRA_MODULES)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"images": 1, "calls": 1.0, "instrumented": True, "loaded": []}


def test_daemon_commands_name_the_extra_to_install(base: BaseVenv) -> None:
    commands = (("run", "daemon"), ("check-config", "daemon"), ("quota", "daemon,cli"), ("demo", "all"))
    for command, extra in commands:
        done = base.run("nbmon", command, *(["--project", "p"] if command == "quota" else []))
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.startswith(f"nbmon: {command}: needs " if command != "check-config" else "nbmon: config")
        assert f"pip install 'nbmon[{extra}]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_light_commands_run_on_the_base_install(base: BaseVenv) -> None:
    assert base.run("nbmon", "--help").returncode == 0
    models = base.run("nbmon", "models", "--json")
    assert models.returncode == 0, models.stderr
    assert any(m["id"] == "gemini-3-pro-image" for m in json.loads(models.stdout)["models"])
    version = base.run("nbmon", "version")
    assert version.returncode == 0 and version.stdout.startswith("nbmon 0.")
