"""Lazy package exports (PEP 562): a package names its public API without importing it, so a command that needs
one module of a package does not pay for the rest (`nbmon quota --help` must not start gRPC)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(__getattr__, __dir__) for `package`, where `names` maps each public name to its submodule."""

    def getattr_(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        vars(importlib.import_module(package))[name] = value  # once: later lookups are plain reads
        return value

    def dir_() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return getattr_, dir_
