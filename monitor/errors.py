"""ConfigError: a bad configuration value, named by its dotted key. Shared by every part's config reader."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad configuration value; `key` is the dotted path of the value at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
