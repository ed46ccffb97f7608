"""Catalog entries from TOML/YAML tables, validated field by field; every error names its dotted key."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import date
from typing import Any

from monitor.catalog.spec import IMAGE_SIZES, MODEL_TIERS, SERVICE_TIERS, ModelSpec, Source
from monitor.errors import ConfigError

FIELDS = (
    "family", "model_tier", "aliases", "image_model", "image_sizes", "service_tiers", "prices_usd",
    "released", "deprecated", "shutdown", "replacement", "routed_to", "sources", "notes",
)  # fmt: skip
_DATES = ("released", "deprecated", "shutdown")


def multipliers_from_mapping(raw: object, key: str) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table of service tier -> multiplier of the standard price")
    multipliers = {"standard": 1.0}
    for tier, value in raw.items():
        if tier not in SERVICE_TIERS:
            raise ConfigError(f"{key}.{tier}", f"unknown service tier (use {', '.join(SERVICE_TIERS)})")
        multipliers[str(tier)] = _amount(value, f"{key}.{tier}")
    return multipliers


def entry_from_mapping(model_id: str, table: object, multipliers: Mapping[str, float], key: str) -> ModelSpec:
    """A new entry from a table of catalog fields."""
    return merge_entry(None, model_id, table, multipliers, key)


def merge_entry(
    base: ModelSpec | None, model_id: str, table: object, multipliers: Mapping[str, float], key: str
) -> ModelSpec:
    """`table` over `base` (None: a new entry), key by key; prices per service tier, sources per fact."""
    if not model_id or not isinstance(table, Mapping):
        raise ConfigError(key, "must be a table of catalog fields keyed by a model ID")
    for name in table:
        if name not in FIELDS:
            raise ConfigError(f"{key}.{name}", f"unknown field (expected one of {', '.join(FIELDS)})")
    spec = base or ModelSpec(model_id, tier_multipliers=dict(multipliers))
    values: dict[str, Any] = {}
    if "family" in table:
        values["family"] = _text(table["family"], f"{key}.family")
    if "model_tier" in table:
        values["model_tier"] = _choice(table["model_tier"], MODEL_TIERS, f"{key}.model_tier")
    if "aliases" in table:
        values["aliases"] = _texts(table["aliases"], f"{key}.aliases", allow_empty=True)
    if "image_model" in table:
        if not isinstance(table["image_model"], bool):
            raise ConfigError(f"{key}.image_model", "must be true or false")
        values["image_model"] = table["image_model"]
    if "image_sizes" in table:
        values["image_sizes"] = _subset(table["image_sizes"], IMAGE_SIZES, f"{key}.image_sizes", allow_empty=True)
    if "service_tiers" in table:
        values["service_tiers"] = _subset(table["service_tiers"], SERVICE_TIERS, f"{key}.service_tiers")
    if "prices_usd" in table:
        standard, tiers = _prices(table["prices_usd"], f"{key}.prices_usd")
        if standard is not None:
            values["prices_usd"] = standard
        if tiers:
            values["tier_prices_usd"] = {**spec.tier_prices_usd, **tiers}
    for name in _DATES:
        if name in table:
            values[name] = _date(table[name], f"{key}.{name}")
    for name in ("replacement", "routed_to"):
        if name in table:
            values[name] = _text(table[name], f"{key}.{name}")
    if "sources" in table:
        values["sources"] = {**spec.sources, **_sources(table["sources"], f"{key}.sources")}
    merged = replace(spec, **values)
    _check_dates(merged, key)
    return merged


def _check_dates(spec: ModelSpec, key: str) -> None:
    if spec.deprecated and spec.shutdown and spec.deprecated > spec.shutdown:
        raise ConfigError(f"{key}.deprecated", "must not be after the shutdown date")
    if spec.released and spec.shutdown and spec.released > spec.shutdown:
        raise ConfigError(f"{key}.released", "must not be after the shutdown date")
    if spec.id in (spec.replacement, spec.routed_to):
        raise ConfigError(f"{key}.replacement", "must name another model")


def _prices(raw: object, key: str) -> tuple[dict[str, float] | None, dict[str, dict[str, float]]]:
    """Either {size: price} (the standard tier) or {tier: {size: price}}."""
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(key, "must be a table of image size -> USD, or of service tier -> {image size -> USD}")
    if all(not isinstance(value, Mapping) for value in raw.values()):
        return _size_prices(raw, key), {}
    standard: dict[str, float] | None = None
    tiers: dict[str, dict[str, float]] = {}
    for tier, table in raw.items():
        if tier not in SERVICE_TIERS:
            raise ConfigError(f"{key}.{tier}", f"unknown service tier (use {', '.join(SERVICE_TIERS)})")
        prices = _size_prices(table, f"{key}.{tier}")
        if tier == "standard":
            standard = prices
        else:
            tiers[str(tier)] = prices
    return standard, tiers


def _size_prices(raw: object, key: str) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table of image size -> USD per final image")
    prices = {}
    for size, price in raw.items():
        if size not in (*IMAGE_SIZES, "default"):
            raise ConfigError(f"{key}.{size}", f"unknown image size (use {', '.join(IMAGE_SIZES)} or default)")
        prices[str(size)] = _amount(price, f"{key}.{size}")
    return prices


def _sources(raw: object, key: str) -> dict[str, Source]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key, "must be a table of fact -> {url, as_of}")
    sources = {}
    for fact, table in raw.items():
        where = f"{key}.{fact}"
        if fact not in (*FIELDS, "prices"):
            raise ConfigError(where, "names no catalog field (use e.g. released, shutdown, prices)")
        if not isinstance(table, Mapping) or set(table) != {"url", "as_of"}:
            raise ConfigError(where, "must be a table with exactly url and as_of")
        url = _text(table["url"], f"{where}.url")
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}.url", "must be an http(s) URL")
        sources[str(fact)] = Source(url, _date(table["as_of"], f"{where}.as_of"))
    return sources


def _amount(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(key, "must be a number >= 0")
    return float(value)


def _date(value: object, key: str) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(key, f"must be a date (YYYY-MM-DD), got {value!r}")


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value.strip()


def _texts(value: object, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        raise ConfigError(key, "must be a list of strings")
    return tuple(_text(item, f"{key}[{i}]") for i, item in enumerate(value))


def _choice(value: object, options: tuple[str, ...], key: str) -> str:
    if value not in options:
        raise ConfigError(key, f"{value!r} is not one of {', '.join(options)}")
    return str(value)


def _subset(value: object, options: tuple[str, ...], key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    items = _texts(value, key, allow_empty=allow_empty)
    for item in items:
        if item not in options:
            raise ConfigError(key, f"{item!r} is not one of {', '.join(options)}")
    return items
