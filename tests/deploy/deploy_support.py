"""Readers for the deploy tests: the Dockerfile, the manifests, the tools, and container paths -> host paths."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.constants import ROOT

DEPLOY = ROOT / "deploy"
K8S_FILES = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
# Every NBMON_* variable whose value is a file path, as the daemon reads them (config, state, secrets).
PATH_VARS = (
    "NBMON_CONFIG_FILE",
    "NBMON_STATE_FILE",
    "NBMON_FLAGD_FILE",
    "NBMON_ADMIN_TOKEN_FILE",
    "NBMON_QUOTA_KEY_FILE",
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]

    def last_json(self, keyword: str) -> list[str]:
        (*_, rest) = self.args(keyword)
        value = json.loads(rest)
        assert isinstance(value, list), f"{keyword} must be in exec (JSON) form"
        return value


@dataclass
class Dockerfile:
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for rest in self.final.args("ENV"):
            env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
        return env

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY from the build context (no --from), in every stage."""
        found = []
        for stage in self.stages:
            for rest in stage.args("COPY"):
                words = shlex.split(rest)
                if any(w.startswith("--from=") for w in words):
                    continue
                paths = [w for w in words if not w.startswith("--")]
                found.append((paths[:-1], paths[-1]))
        return found

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        (rest,) = self.final.args("HEALTHCHECK")
        options, _, command = rest.partition(" CMD ")
        flags = dict(w.lstrip("-").split("=", 1) for w in options.split())
        return flags, json.loads(command)


def parse_dockerfile(text: str) -> Dockerfile:
    """Enough of the Dockerfile grammar for ours: comments, line continuations, stages."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), re.sub(r"\s+", " ", rest).strip()
        if keyword == "FROM":
            words = rest.split()
            stages.append(Stage(words[0], words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(stages)


class Mounts:
    """A container's filesystem as host paths: image files, then volumes mounted over them (longest prefix wins)."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[Path, bool]] = {}

    def add(self, container_path: str, host: Path, *, writable: bool) -> None:
        prefix = container_path.rstrip("/")
        for shadowed in [p for p in self.table if p == prefix or p.startswith(prefix + "/")]:
            del self.table[shadowed]  # a mount hides what the image had there
        self.table[prefix] = (host, writable)

    def lookup(self, container_path: str) -> tuple[Path, bool] | None:
        for prefix in sorted(self.table, key=len, reverse=True):
            if container_path == prefix or container_path.startswith(prefix + "/"):
                host, writable = self.table[prefix]
                return host / container_path[len(prefix) :].lstrip("/"), writable
        return None

    def host(self, container_path: str) -> Path:
        found = self.lookup(container_path)
        assert found is not None, f"{container_path} is on no volume or image file the test knows"
        return found[0]

    def remap(self, env: dict[str, str]) -> dict[str, str]:
        """The env with every path variable pointing at the host path; a path on no mount fails."""
        return {k: str(self.host(v)) if k in PATH_VARS else v for k, v in env.items()}


def image_mounts(dockerfile: Dockerfile, volume_root: Path, *, volumes: bool = True) -> Mounts:
    """The image's own files (COPY from the repository) and its VOLUMEs, each a fresh directory.

    Kubernetes ignores VOLUME (`volumes=False`): there a path is writable only on a volume of the pod.
    """
    mounts = Mounts()
    for sources, dest in dockerfile.copies():
        if len(sources) == 1 and not dest.endswith("/"):
            mounts.add(dest, ROOT / sources[0], writable=False)
    for rest in dockerfile.final.args("VOLUME") if volumes else []:
        for volume in json.loads(rest):
            host = volume_root / volume.strip("/").replace("/", "_")
            host.mkdir(parents=True, exist_ok=True)
            mounts.add(volume, host, writable=True)
    return mounts


def venv_tool(name: str) -> str:
    """A tool installed with the dev extras, beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: pip install -e '.[dev]' brings it"
    return found


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = re.escape(pattern.strip("/")).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of each bind mount of a compose service (short syntax, relative paths)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (COMPOSE_FILE.parent / source).resolve()
    return found


def compose_mounts(compose: dict[str, Any], name: str, dockerfile: Dockerfile, root: Path) -> Mounts:
    """A compose service of the nbmon image: the image's files, then its bind mounts and named volumes."""
    mounts = image_mounts(dockerfile, root)
    service = compose["services"][name]
    for target, host in binds(service).items():
        mounts.add(target, host, writable=False)
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source in compose.get("volumes", {}):
            (root / source).mkdir(exist_ok=True)
            mounts.add(target, root / source, writable=True)
    return mounts


def build_stage_sources(dockerfile: Dockerfile, dest_root: Path) -> Path:
    """The build stage's WORKDIR as the COPYs fill it from the context (what .dockerignore lets through)."""
    stage = dockerfile.stages[0]
    patterns = dockerignore_patterns()
    for rest in stage.args("COPY"):
        *sources, dest = shlex.split(rest)
        for source in sources:
            path = ROOT / source
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            for file in files:
                relative = file.relative_to(ROOT).as_posix()
                if dockerignored(relative, patterns):
                    continue
                inside = file.relative_to(path) if path.is_dir() else Path(file.name)
                target = dest_root / dest / inside
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, target)
    return dest_root
