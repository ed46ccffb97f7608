"""The public names are a contract: everything in __all__ exists, and nothing public is missing from it."""

from __future__ import annotations

import monitor


def test_all_names_exist_and_are_sorted() -> None:
    assert list(monitor.__all__) == sorted(monitor.__all__)
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None


def test_no_public_name_outside_all() -> None:
    public = {
        name
        for name, value in vars(monitor).items()
        if not name.startswith("_") and not getattr(value, "__name__", "").startswith("monitor.")
    }
    assert public <= set(monitor.__all__)
