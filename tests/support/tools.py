"""The real Prometheus programs the tests drive: promtool, prometheus, Alertmanager and amtool.

`make tools` unpacks them from Debian's prometheus and prometheus-alertmanager packages into .tools/ (apt-get
download + dpkg -x: nothing is installed on the host). NBMON_TOOLS_DIR names another unpacked tree; PATH is the last
resort. A missing tool fails the test: it is never skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.constants import ROOT


def tools_dir() -> Path:
    return Path(os.environ.get("NBMON_TOOLS_DIR") or ROOT / ".tools")


def tool(*names: str) -> str:
    """The first of `names` found as an executable under the tools dir (usr/bin, bin, itself), then on PATH."""
    base = tools_dir()
    for name in names:
        for directory in (base / "usr" / "bin", base / "bin", base):
            candidate = directory / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(
        f"{' or '.join(names)} not found (looked in {base}/usr/bin and PATH): `make tools` unpacks it from Debian's "
        "prometheus / prometheus-alertmanager packages into .tools/ (apt-get download + dpkg -x)"
    )


def promtool() -> str:
    return tool("promtool")


def prometheus() -> str:
    return tool("prometheus")


def alertmanager() -> str:
    return tool("prometheus-alertmanager", "alertmanager")


def amtool() -> str:
    return tool("amtool")
