"""Crash-safe replacement when the replacement itself fails: the target is untouched and no temp file is left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.flagstate._atomic import atomic_symlink, atomic_write


def test_a_write_replaces_the_file_and_sets_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "flags.json"
    target.write_text("old")
    atomic_write(target, b"new", mode=0o640)
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json"]


def test_a_replace_that_fails_leaves_the_target_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "flags.json"
    target.mkdir()  # a directory stands where the file goes: the rename is refused
    (target / "keep").write_text("kept")
    with pytest.raises(IsADirectoryError):
        atomic_write(target, b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.json"]
    assert (target / "keep").read_text() == "kept"


def test_a_write_that_fails_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(target, "text, not bytes")  # type: ignore[arg-type]  # the failure under test
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_symlink_is_swapped_and_a_failed_swap_leaves_no_temp_link(tmp_path: Path) -> None:
    (tmp_path / "flags.v1.json").write_text("v1")
    (tmp_path / "flags.v2.json").write_text("v2")
    link = tmp_path / "flags.json"
    atomic_symlink(link, "flags.v1.json")
    atomic_symlink(link, "flags.v2.json")
    assert os.readlink(link) == "flags.v2.json" and link.read_text() == "v2"

    blocked = tmp_path / "blocked.json"
    blocked.mkdir()
    (blocked / "keep").write_text("kept")
    with pytest.raises(IsADirectoryError):
        atomic_symlink(blocked, "flags.v1.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "blocked.json",
        "flags.json",
        "flags.v1.json",
        "flags.v2.json",
    ]
