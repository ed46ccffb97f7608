"""Fixtures of the deploy tests: the parsed Dockerfile and manifests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.deploy_support import COMPOSE_FILE, K8S_FILES, Dockerfile, load_yaml_docs, parse_dockerfile
from tests.support.constants import ROOT


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="session")
def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in K8S_FILES for doc in load_yaml_docs(path)]


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data
