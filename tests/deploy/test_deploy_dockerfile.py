"""The Dockerfile: hadolint-clean, two stages, non-root, and every setting one the daemon really reads."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.daemon import config as daemon_config
from tests.deploy.deploy_support import (
    PATH_VARS,
    Dockerfile,
    dockerignore_patterns,
    dockerignored,
    image_mounts,
    parse_dockerfile,
    venv_tool,
)
from tests.support.constants import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|gcc|g\+\+|make|build-essential|hatch\w*|setuptools|pip wheel)\b")


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_tool("hadolint"), "--no-color", str(path)], capture_output=True, text=True, check=False, cwd=path.parent
    )


def test_hadolint_finds_nothing() -> None:
    done = hadolint(ROOT / "Dockerfile")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    """The control: an unpinned base image and pip install are findings, so a clean report means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    done = hadolint(bad)
    assert done.returncode != 0
    assert "DL3007" in done.stdout
    assert "DL3013" in done.stdout


def test_two_stages_on_one_pinned_base_that_fits_requires_python(dockerfile: Dockerfile) -> None:
    build, final = dockerfile.stages
    assert build.name == "build"
    assert build.base == final.base  # the wheels built in one must fit the interpreter of the other
    name, _, tag = final.base.partition(":")
    assert name == "python"
    assert tag
    assert tag != "latest"
    image_python = tuple(int(n) for n in re.match(r"(\d+)\.(\d+)", tag).groups())  # type: ignore[union-attr]
    floor = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor is not None
    assert image_python >= tuple(int(n) for n in floor.groups())


def test_the_final_stage_takes_only_wheels_and_builds_nothing(dockerfile: Dockerfile) -> None:
    final = dockerfile.final
    for run in final.args("RUN"):
        assert not BUILD_TOOLS.search(run), run
        mounts = re.findall(r"--mount=(\S+)", run)
        assert all("source=/wheels" in m for m in mounts if "from=build" in m)
    assert not [c for c in final.args("COPY") if "--from=" in c]  # nothing copied from the build stage
    assert "pip wheel" in " ".join(dockerfile.stages[0].args("RUN"))


def test_the_build_stage_copies_what_the_wheel_needs(dockerfile: Dockerfile) -> None:
    copied = {src.rstrip("/") for sources, _ in dockerfile.copies() for src in sources}
    assert "pyproject.toml" in copied
    assert PYPROJECT["project"]["readme"] in copied  # hatchling reads it into the metadata
    assert set(PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]) <= copied


def test_every_copied_file_exists_and_passes_dockerignore(dockerfile: Dockerfile) -> None:
    patterns = dockerignore_patterns()
    for sources, _dest in dockerfile.copies():
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"COPY {source}: missing"
            files = [path] if path.is_file() else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
            assert files, f"COPY {source}: no files"
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                assert not dockerignored(relative, patterns), f"{relative} is copied but .dockerignore drops it"


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".venv/bin/python", True),
        (".git/HEAD", True),
        (".tools/usr/bin/promtool", True),
        ("tests/conftest.py", True),
        ("monitor/__pycache__/cli.cpython-311.pyc", True),
        ("monitor/cli.py", False),
        ("deploy/nbmon.toml", False),
    ],
)
def test_the_build_context_is_an_allowlist(path: str, ignored: bool) -> None:
    assert dockerignored(path, dockerignore_patterns()) is ignored


def test_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    (user,) = dockerfile.final.args("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0  # numeric, so Kubernetes' runAsNonRoot can verify it
    assert not gid or int(gid) > 0
    keywords = [kw for kw, _ in dockerfile.final.instructions]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_entrypoint_is_the_console_script_and_cmd_a_real_subcommand(dockerfile: Dockerfile) -> None:
    assert dockerfile.final.last_json("ENTRYPOINT") == ["nbmon"]
    assert "nbmon" in PYPROJECT["project"]["scripts"]
    cmd = dockerfile.final.last_json("CMD")
    assert cmd == ["run"]
    assert build_parser().parse_args(cmd).func.__name__ == "run"


def test_expose_healthcheck_and_listen_port_agree(dockerfile: Dockerfile) -> None:
    (exposed,) = dockerfile.final.args("EXPOSE")
    assert int(exposed) == daemon_config.DaemonConfig().listen_port
    flags, command = dockerfile.healthcheck()
    assert command[:2] == ["python", "-c"]  # no curl in a slim image
    assert "/healthz" in command[2]
    assert f"'NBMON_LISTEN_PORT', '{exposed}'" in command[2]  # it follows the port the env may move
    assert float(flags["timeout"].rstrip("s")) < float(flags["interval"].rstrip("s"))


def test_env_names_are_the_daemons_and_the_config_loads(dockerfile: Dockerfile, tmp_path: Path) -> None:
    env = {k: v for k, v in dockerfile.env().items() if k.startswith("NBMON_")}
    assert set(env) <= set(daemon_config.ENV_KEYS) | {"NBMON_CONFIG_FILE"}
    assert set(PATH_VARS) <= set(daemon_config.ENV_KEYS) | {"NBMON_CONFIG_FILE"}
    host_env = image_mounts(dockerfile, tmp_path).remap(env)
    config = daemon_config.load(host_env["NBMON_CONFIG_FILE"], environ=host_env)
    assert config.listen_host == "0.0.0.0"  # reachable from outside the container
    assert config.state_path == Path(host_env["NBMON_STATE_FILE"])


def test_the_config_variable_is_the_one_the_cli_reads(monkeypatch: pytest.MonkeyPatch, dockerfile: Dockerfile) -> None:
    path = dockerfile.env()["NBMON_CONFIG_FILE"]
    monkeypatch.setenv("NBMON_CONFIG_FILE", path)
    assert build_parser().parse_args(["run"]).config == path


def test_state_and_relative_paths_land_on_the_volume(dockerfile: Dockerfile, tmp_path: Path) -> None:
    mounts = image_mounts(dockerfile, tmp_path)
    env = dockerfile.env()
    state = mounts.lookup(env["NBMON_STATE_FILE"])
    assert state is not None
    assert state[1], "the state file must be on a writable VOLUME"
    (workdir,) = dockerfile.final.args("WORKDIR")
    assert mounts.lookup(workdir) == (tmp_path / workdir.strip("/").replace("/", "_"), True)
    config = daemon_config.load(mounts.host(env["NBMON_CONFIG_FILE"]), environ=env)
    outbox = mounts.lookup(str(config.notify.outbox_path))
    assert outbox is not None
    assert outbox[1]
    assert config.notify.outbox_path.parent == Path(env["NBMON_STATE_FILE"]).parent


def test_the_images_config_run_locally_keeps_its_files_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/nbmon.toml outside the image, with a channel added: state and outbox in one directory."""
    config_file = tmp_path / "nbmon.toml"
    channel = '\n[notify.channels.oncall]\nkind = "slack"\nwebhook_url_env = "TEST_SLACK_URL"\n'
    config_file.write_text((ROOT / "deploy" / "nbmon.toml").read_text() + channel)
    monkeypatch.setenv("TEST_SLACK_URL", "https://hooks.slack.example/services/T/B/X")
    local = daemon_config.load(config_file, environ={})
    assert local.notify.outbox_path.parent == local.state_path.parent == Path()
    moved = daemon_config.load(config_file, environ={"NBMON_STATE_FILE": str(tmp_path / "s" / "state.json")})
    assert moved.notify.outbox_path == tmp_path / "s" / "nbmon-outbox.sqlite"
    assert daemon_config.preflight(dataclasses.replace(moved, listen_port=0)) == []


def test_the_parser_reads_continuations_and_stages() -> None:
    parsed = parse_dockerfile("FROM a:1 AS one\n# note\nRUN x \\\n    && y\nFROM b:2\nENV A=1 \\\n    B=2\n")
    assert [s.name for s in parsed.stages] == ["one", None]
    assert parsed.stages[0].args("RUN") == ["x && y"]
    assert parsed.env() == {"A": "1", "B": "2"}
