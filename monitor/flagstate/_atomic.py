"""Crash-safe file replacement: readers see the old file or the new one, never a half-written one.

Recipe: write a temp file in the target's directory (same filesystem, so the rename is atomic), flush and
fsync it, `os.replace` it over the target, then fsync the directory so the rename itself survives a power
loss. A process killed at any point leaves the previous complete file (and at worst a stray temp file).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_prefix(path: Path) -> str:
    # Hidden and named after the target, so leftovers are recognisable and never mistaken for the real file.
    return f".{path.name}."


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(directory: Path, prefix: str, data: bytes, mode: int) -> Path:
    """Write `data` to a new fsynced temp file in `directory`; the caller renames it. Removed on failure."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=TEMP_SUFFIX)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # mkstemp creates 0600; readers such as flagd may run as another user
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably."""
    directory = path.parent
    temp = write_temp(directory, temp_prefix(path), data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(directory)


def atomic_symlink(link: Path, target: str) -> None:
    """Point `link` at `target` (a name relative to the link's directory) by renaming a new symlink over it."""
    directory = link.parent
    for _attempt in range(100):  # a random name that is free; mkstemp has no symlink variant
        temp = directory / f"{temp_prefix(link)}{os.urandom(6).hex()}.lnk"
        try:
            os.symlink(target, temp)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"no free temporary symlink name in {directory}")
    try:
        os.replace(temp, link)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(directory)
