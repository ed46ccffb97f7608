"""The same flags as a flagd flag file, for teams that already run flagd (`flagd start --uri file:...`).

Written atomically, so flagd never reads half a file. flagd's watcher may see several events for one write,
so the symlink mode (`symlink=True`) goes further: each version is a complete file of its own, and the
configured path is a symlink swapped to it in one rename, as Kubernetes does for ConfigMap volumes. The last
`keep` versions stay on disk so a reader that resolved the previous link can still open it.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.flagstate import _atomic
from monitor.flagstate.flags import Models, resolve_flags
from monitor.flagstate.state import Decision

FLAGD_SCHEMA = "https://flagd.dev/schema/v0/flags.json"


def flagd_document(decision: Decision, models: Models, *, flag_set_id: str = "nbmon") -> dict[str, Any]:
    """The flagd flag configuration for `decision`: static flags, the current value as `defaultVariant`."""
    flags: dict[str, Any] = {}
    for flag in resolve_flags(decision, models):
        flags[flag.key] = {
            "state": "ENABLED",
            "variants": flag.variants,
            # Always set: with no defaultVariant flagd answers without a variant, which OFREPProvider 0.3.0
            # cannot read, and apps would silently fall back to their code default.
            "defaultVariant": flag.variant,
            "metadata": flag.metadata,
        }
    return {"$schema": FLAGD_SCHEMA, "metadata": {"flagSetId": flag_set_id}, "flags": flags}


class FlagdFileWriter:
    """Writes `flagd_document(...)` to `path`; thread-safe; skips writes that would not change the file."""

    def __init__(
        self,
        path: str | Path,
        *,
        symlink: bool = False,
        keep: int = 2,
        flag_set_id: str = "nbmon",
        mode: int = 0o640,
        write: Callable[[Path, bytes, int], None] | None = None,
    ) -> None:
        """`mode` 0640: flagd may run as another user of the same group, nobody else reads override reasons.
        `write(path, data, mode)` replaces a file atomically (the default); tests inject a failing one."""
        if keep < 1:
            raise ValueError("FlagdFileWriter.keep: must be >= 1")
        self.path = Path(path)
        self.symlink = symlink
        self.keep = keep
        self.flag_set_id = flag_set_id
        self.mode = mode
        self._write = write or (lambda target, data, mode: _atomic.atomic_write(target, data, mode=mode))
        self._lock = threading.Lock()
        name = self.path.name
        stem, dot, suffix = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
        # Versions keep the extension: flagd picks the JSON or YAML parser by file extension.
        self._version_prefix = f"{stem}.v"
        self._version_suffix = f"{dot}{suffix}"
        self._version_re = re.compile(rf"^{re.escape(self._version_prefix)}(\d+){re.escape(self._version_suffix)}$")

    def write(self, decision: Decision, models: Models) -> bool:
        """Returns False when the file already holds this content (no event for flagd to process)."""
        document = flagd_document(decision, models, flag_set_id=self.flag_set_id)
        data = json.dumps(document, indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
        with self._lock:
            if self._current() == data:
                return False
            if self.symlink:
                self._write_version(data)
            else:
                self._write(self.path, data, self.mode)
            return True

    def versions(self) -> list[Path]:
        """Versioned files of the symlink mode, oldest first."""
        return [entry for _, entry in self._numbered()]

    def _numbered(self) -> list[tuple[int, Path]]:
        found: list[tuple[int, Path]] = []
        for entry in self.path.parent.iterdir():
            match = self._version_re.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
        return sorted(found)

    def _current(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    def _write_version(self, data: bytes) -> None:
        numbered = self._numbered()
        existing = [entry for _, entry in numbered]
        number = numbered[-1][0] + 1 if numbered else 1
        target = self.path.parent / f"{self._version_prefix}{number:08d}{self._version_suffix}"
        self._write(target, data, self.mode)  # complete before the link points at it
        _atomic.atomic_symlink(self.path, target.name)  # relative: the directory may be mounted elsewhere
        for old in [*existing, target][: -self.keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
