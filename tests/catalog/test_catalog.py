"""The model catalog: the built-in file, prices per size and tier, lifecycle, successors, reroute matching."""

from __future__ import annotations

import tomllib
from datetime import date
from importlib import resources
from pathlib import Path

import pytest

from monitor.catalog import (
    IMAGE_SIZES,
    SERVICE_TIERS,
    Lifecycle,
    builtin_catalog,
    catalog_from_mapping,
    load_catalog,
)
from monitor.errors import ConfigError

DEC_2026 = date(2026, 12, 5)


def test_builtin_catalog_has_todays_models_and_the_retired_ones() -> None:
    catalog = builtin_catalog()
    assert catalog.default_primary == "gemini-3-pro-image"
    assert catalog.default_fallback == "gemini-nano-banana-2.1"
    states = {spec.id: spec.lifecycle(DEC_2026) for spec in catalog.specs}
    assert states["gemini-3-pro-image"] is Lifecycle.ACTIVE
    assert states["gemini-nano-banana-2.1"] is Lifecycle.ACTIVE
    assert states["gemini-3.1-flash-lite-image"] is Lifecycle.ACTIVE
    assert states["gemini-3.1-flash-image"] is Lifecycle.DEPRECATED
    for retired in ("gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview", "gemini-2.5-flash-image"):
        assert states[retired] is Lifecycle.RETIRED
    # Before its shutdown the preview was only deprecated, and before its deprecation active.
    preview = catalog.get("gemini-3-pro-image-preview")
    assert preview is not None
    assert preview.lifecycle(date(2026, 6, 24)) is Lifecycle.DEPRECATED
    assert preview.lifecycle(date(2026, 5, 27)) is Lifecycle.ACTIVE


def test_every_date_and_price_has_a_source() -> None:
    for spec in builtin_catalog().specs:
        assert spec.family, spec.id
        for fact in ("released", "deprecated", "shutdown"):
            if getattr(spec, fact) is not None:
                assert fact in spec.sources, f"{spec.id}: {fact} has no source"
        if spec.prices_usd:
            assert "prices" in spec.sources, f"{spec.id}: prices have no source"
        for source in spec.sources.values():
            assert source.url.startswith("https://")
            assert source.as_of <= DEC_2026


def test_prices_per_size_and_service_tier() -> None:
    catalog = builtin_catalog()
    pro, flash, lite = (
        catalog.get(m) for m in ("gemini-3-pro-image", "gemini-nano-banana-2.1", "gemini-3.1-flash-lite-image")
    )
    assert pro is not None and flash is not None and lite is not None
    assert [pro.price(size) for size in ("1K", "2K", "4K")] == [0.134, 0.134, 0.24]
    assert pro.price("512px") is None  # no price: the cost is not estimated rather than guessed
    assert pro.price("4K", "batch") == pro.price("4K", "flex") == 0.12  # half price
    assert pro.price("1K", "priority") == 0.268  # no published price: the upper bound of "75-100% more"
    assert flash.price("1K") == 0.0336
    assert lite.price("1K", "flex") is None  # Lite is not offered on Flex (its model card)
    assert lite.price("1K", "batch") == 0.0168


def test_sizes_follow_the_model() -> None:
    catalog = builtin_catalog()
    assert catalog.get("gemini-nano-banana-2.1").image_sizes == ("1K", "2K", "4K")  # type: ignore[union-attr]
    assert catalog.get("gemini-3.1-flash-image").image_sizes == IMAGE_SIZES  # type: ignore[union-attr]
    assert catalog.get("gemini-2.5-flash-image").image_sizes == ()  # type: ignore[union-attr]


def test_successor_follows_the_replacement_chain_past_retired_models() -> None:
    catalog = builtin_catalog()
    assert catalog.successor("gemini-3-pro-image-preview", DEC_2026) == "gemini-3-pro-image"
    # 2.5-flash-image-preview -> 2.5-flash-image (retired too) -> nano-banana-2.1
    assert catalog.successor("gemini-2.5-flash-image-preview", DEC_2026) == "gemini-nano-banana-2.1"
    assert catalog.successor("gemini-3-pro-image", DEC_2026) is None  # not retired
    assert catalog.successor("gemini-3.1-flash-image", DEC_2026) is None  # deprecated, still served
    assert catalog.successor("gemini-3-pro-image-preview", date(2026, 6, 1)) is None


@pytest.mark.parametrize(
    ("requested", "version", "served"),
    [
        ("gemini-3-pro-image", "gemini-3-pro-image", None),
        ("gemini-3-pro-image", "gemini-3-pro-image-001", None),  # a version of the same model
        ("gemini-3-pro-image", "gemini-3-pro-image@20260528", None),
        ("models/gemini-3-pro-image", "models/gemini-3-pro-image", None),
        ("gemini-3.1-flash-image", "gemini-nano-banana-2.1", "gemini-nano-banana-2.1"),
        ("gemini-3-pro-image-preview", "gemini-3-pro-image", "gemini-3-pro-image"),
        ("my-own-image", "my-own-image-002", None),  # not in the catalog: versions still match
        ("my-own-image", "someone-else", "someone-else"),
        ("gemini-3-pro-image", None, None),
    ],
)
def test_reroute_matching(requested: str, version: str | None, served: str | None) -> None:
    assert builtin_catalog().served_model(requested, version) == served


def test_aliases_resolve_to_their_model() -> None:
    catalog = builtin_catalog().merged({"gemini-3-pro-image": {"aliases": ["nano-banana-pro"]}})
    assert catalog.canonical("nano-banana-pro") == "gemini-3-pro-image"
    assert catalog.served_model("nano-banana-pro", "gemini-3-pro-image") is None
    with pytest.raises(ConfigError, match="alias"):
        catalog.merged({"nano-banana-pro": {"family": "x"}})


def test_merge_overrides_single_fields_and_adds_models() -> None:
    catalog = builtin_catalog().merged(
        {
            "gemini-3-pro-image": {"prices_usd": {"standard": {"1K": 0.1}}},
            "gemini-4-image": {"family": "Nano Banana 4", "model_tier": "pro", "prices_usd": {"default": 0.2}},
        }
    )
    pro = catalog.get("gemini-3-pro-image")
    assert pro is not None and pro.price("1K") == 0.1 and pro.price("4K") is None  # standard replaced whole
    assert pro.released == date(2026, 5, 28)  # the rest kept
    new = catalog.get("gemini-4-image")
    assert new is not None and new.price("2K", "batch") == 0.1
    assert len(catalog) == len(builtin_catalog()) + 1


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"colour": "red"}, 'models."m".colour'),
        ({"prices_usd": {"8K": 1.0}}, 'models."m".prices_usd.8K'),
        ({"prices_usd": {"standard": {"1K": -1}}}, 'models."m".prices_usd.standard.1K'),
        ({"prices_usd": {"gold": {"1K": 1}}}, 'models."m".prices_usd.gold'),
        ({"shutdown": "soon"}, 'models."m".shutdown'),
        ({"deprecated": "2026-02-01", "shutdown": "2026-01-01"}, 'models."m".deprecated'),
        ({"replacement": "nowhere"}, 'models."m".replacement'),
        ({"model_tier": "mega"}, 'models."m".model_tier'),
        ({"image_sizes": ["8K"]}, 'models."m".image_sizes'),
        ({"sources": {"released": {"url": "ftp://x", "as_of": "2026-01-01"}}}, 'models."m".sources.released.url'),
        ({"sources": {"released": {"url": "https://x"}}}, 'models."m".sources.released'),
    ],
)
def test_bad_entries_name_the_key(entry: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        builtin_catalog().merged({"m": entry})
    assert caught.value.key == key


def test_a_catalog_file_replaces_the_builtin(tmp_path: Path) -> None:
    text = resources.files("monitor.catalog").joinpath("models.toml").read_text()
    data = tomllib.loads(text)
    with pytest.raises(ConfigError) as caught:
        catalog_from_mapping({**data, "default_fallback": "missing"})
    assert caught.value.key == "catalog.default_fallback"
    path = tmp_path / "models.toml"
    path.write_text(
        'default_primary = "a-image"\ndefault_fallback = "b-image"\n[models."a-image"]\n[models."b-image"]\n'
    )
    catalog = load_catalog(path)
    assert [s.id for s in catalog.specs] == ["a-image", "b-image"]
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("[models\n")
        load_catalog(tmp_path / "bad.toml")


def test_tiers_are_the_apis() -> None:
    assert SERVICE_TIERS == ("standard", "batch", "flex", "priority")
