"""flagd flag file: schema shape, atomic replacement under concurrent readers, symlink swap mode."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.flagstate import FLAGD_SCHEMA, Decision, FlagdFileWriter, FlagState, Models, flagd_document
from tests.support.constants import FLASH, PRO

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MODELS = Models(primary=PRO, fallback=FLASH)
FIGURES = {"ratio": 0.42, "numerator": 42, "denominator": 100, "window_s": 60, "threshold": 0.3}


def healthy() -> Decision:
    return FlagState.initial(T0).effective(T0)


def degraded(minute: int = 5) -> Decision:
    state = FlagState.initial(T0).apply_transition(
        True, "degraded-mode", "503 ratio high", FIGURES, T0 + timedelta(minutes=minute)
    )
    return state.effective(T0 + timedelta(hours=1))


def assert_flagd_shape(document: Any) -> None:
    """The rules of flagd's flags.json schema that matter here (state, one variant type, metadata scalars)."""
    assert document["$schema"] == "https://flagd.dev/schema/v0/flags.json" == FLAGD_SCHEMA
    assert set(document) == {"$schema", "metadata", "flags"}
    assert isinstance(document["metadata"]["flagSetId"], str)
    for key, flag in document["flags"].items():
        assert key
        assert set(flag) <= {"state", "variants", "defaultVariant", "targeting", "metadata"}
        assert flag["state"] in ("ENABLED", "DISABLED")
        variants = flag["variants"]
        assert variants and all(name for name in variants)
        assert len({type(value) for value in variants.values()}) == 1  # one type per flag
        assert flag["defaultVariant"] in variants  # always set: OFREPProvider cannot read a missing variant
        assert all(isinstance(value, str | int | float | bool) for value in flag["metadata"].values())


def test_document_when_healthy() -> None:
    document = flagd_document(healthy(), MODELS)
    assert_flagd_shape(document)
    flags = document["flags"]
    assert flags["degraded-mode"]["state"] == "ENABLED"
    assert flags["degraded-mode"]["variants"] == {"on": True, "off": False}
    assert flags["degraded-mode"]["defaultVariant"] == "off"
    assert flags["image-model"]["variants"] == {
        "primary": "gemini-3-pro-image",
        "fallback": "gemini-nano-banana-2.1",
    }
    assert flags["image-model"]["defaultVariant"] == "primary"
    assert document["metadata"] == {"flagSetId": "nbmon"}


def test_document_when_degraded_carries_metadata() -> None:
    document = flagd_document(degraded(), MODELS, flag_set_id="app-eu")
    assert_flagd_shape(document)
    flag = document["flags"]["degraded-mode"]
    assert flag["defaultVariant"] == "on"
    assert document["flags"]["image-model"]["defaultVariant"] == "fallback"
    assert flag["metadata"]["since"] == "2026-01-15T12:05:00Z"
    assert flag["metadata"]["rule"] == "degraded-mode"
    assert flag["metadata"]["figures.ratio"] == 0.42
    assert document["metadata"]["flagSetId"] == "app-eu"


def test_plain_mode_replaces_the_file_atomically(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    writer = FlagdFileWriter(path)
    assert writer.write(healthy(), MODELS) is True
    assert path.is_file() and not path.is_symlink()
    assert json.loads(path.read_text()) == flagd_document(healthy(), MODELS)
    assert path.stat().st_mode & 0o777 == 0o640  # flagd may run as another user of the group; nobody else
    inode = path.stat().st_ino
    assert writer.write(healthy(), MODELS) is False  # unchanged content: no write, no watcher event
    assert path.stat().st_ino == inode
    assert writer.write(degraded(), MODELS) is True
    assert path.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert json.loads(path.read_text())["flags"]["degraded-mode"]["defaultVariant"] == "on"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json"]
    # A restarted writer sees the same content on disk and does not rewrite it.
    assert FlagdFileWriter(path).write(degraded(), MODELS) is False


def test_symlink_mode_swaps_a_link_and_keeps_two_versions(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    writer = FlagdFileWriter(path, symlink=True)
    for minute in range(1, 6):
        assert writer.write(degraded(minute), MODELS) is True
        assert path.is_symlink()
        assert json.loads(path.read_text()) == flagd_document(degraded(minute), MODELS)
    versions = writer.versions()
    assert [v.name for v in versions] == ["flags.v00000004.json", "flags.v00000005.json"]
    assert os.readlink(path) == "flags.v00000005.json"  # relative, so the directory can be mounted elsewhere
    assert json.loads(versions[0].read_text()) == flagd_document(degraded(4), MODELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json", *[v.name for v in versions]]
    assert writer.write(degraded(5), MODELS) is False
    assert len(writer.versions()) == 2


def test_symlink_mode_replaces_a_plain_file_and_respects_keep(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml.json"
    FlagdFileWriter(path).write(healthy(), MODELS)
    writer = FlagdFileWriter(path, symlink=True, keep=1)
    writer.write(degraded(), MODELS)
    writer.write(degraded(6), MODELS)
    assert path.is_symlink()
    assert [v.name for v in writer.versions()] == ["flags.yaml.v00000002.json"]
    with pytest.raises(ValueError, match="keep"):
        FlagdFileWriter(path, keep=0)


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.mkdir()
    (path / "x").write_text("x")
    with pytest.raises(OSError, match="directory"):
        FlagdFileWriter(path).write(healthy(), MODELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json"]


@pytest.mark.parametrize("symlink", [False, True])
def test_readers_always_see_a_complete_file(tmp_path: Path, symlink: bool) -> None:
    path = tmp_path / "flags.json"
    writer = FlagdFileWriter(path, symlink=symlink)
    expected = [flagd_document(healthy(), MODELS), flagd_document(degraded(), MODELS)]
    writer.write(healthy(), MODELS)
    stop = threading.Event()
    problems: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                document = json.loads(path.read_bytes())
            except (OSError, ValueError) as error:
                problems.append(repr(error))
                return
            if document not in expected:
                problems.append("unexpected content")
                return
            reads += 1

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(150):
            writer.write(degraded() if i % 2 == 0 else healthy(), MODELS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert problems == []
    assert reads > 0
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".lnk"))]
    assert leftovers == []
