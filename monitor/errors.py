"""ConfigError: a bad configuration value, named by its dotted key. Shared by every part's config reader."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class ConfigError(ValueError):
    """A bad configuration value; `key` is the dotted path of the value at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def unknown_keys(table: Mapping[str, object], section: str, known: Iterable[str]) -> list[ConfigError]:
    """One error per key of `[section]` that is not in `known`, each naming the keys that are."""
    allowed = sorted(known)
    return [
        ConfigError(f"{section}.{key}", f"unknown key (expected one of {', '.join(allowed)})")
        for key in table
        if key not in allowed
    ]
