"""Configuration of the shim: the model table (IDs, roles, prices) and telemetry options.

Model IDs and prices are configuration: preview models get renamed and retired. The defaults are
the article's figures (Feb 2026) and can be replaced from a TOML file or a mapping.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_SIZES = ("512px", "1K", "2K", "4K")
DEFAULT_IMAGE_SIZE = "1K"
CONFIG_ENV = "NBMON_CONFIG"


class ConfigError(ValueError):
    """A bad configuration value; `key` is the dotted path of the value at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model: whether it generates images, and the price of one final image per image size."""

    id: str
    image_model: bool = True
    prices_usd: Mapping[str, float] = field(default_factory=dict)
    # imageConfig.imageSize values the model accepts; empty: send none (Flash has a fixed 1024px).
    image_sizes: tuple[str, ...] = IMAGE_SIZES

    def price(self, image_size: str) -> float | None:
        return self.prices_usd.get(image_size, self.prices_usd.get("default"))


DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("gemini-3-pro-image-preview", True, {"1K": 0.134, "2K": 0.134, "4K": 0.24}, ("1K", "2K", "4K")),
    ModelSpec("gemini-2.5-flash-image", True, {"default": 0.039}, ()),
)


@dataclass(frozen=True, slots=True)
class ShimConfig:
    """What the instrumentation shim needs to know. Frozen: build a new one to change it."""

    models: tuple[ModelSpec, ...] = DEFAULT_MODELS
    primary_model: str = "gemini-3-pro-image-preview"
    fallback_model: str = "gemini-2.5-flash-image"
    max_extra_model_labels: int = 20
    capture_content: bool = False

    def model(self, model_id: str | None) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    def is_image_model(self, model_id: str | None) -> bool:
        spec = self.model(model_id)
        if spec is not None:
            return spec.image_model
        # Unlisted models: Google names every image-output model "...-image...".
        return model_id is not None and "image" in model_id


def shim_config_from_mapping(data: Mapping[str, Any], prefix: str = "") -> ShimConfig:
    """Build and validate a ShimConfig; errors name the dotted key at fault."""
    known = {"models", "primary_model", "fallback_model", "max_extra_model_labels", "capture_content"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", f"unknown key (expected one of {', '.join(sorted(known))})")
    models = DEFAULT_MODELS
    if "models" in data:
        models = _models(data["models"], f"{prefix}models")
    defaults = ShimConfig()
    config = ShimConfig(
        models=models,
        primary_model=_text(data, "primary_model", defaults.primary_model, prefix),
        fallback_model=_text(data, "fallback_model", defaults.fallback_model, prefix),
        max_extra_model_labels=_count(data, "max_extra_model_labels", defaults.max_extra_model_labels, prefix),
        capture_content=_flag(data, "capture_content", defaults.capture_content, prefix),
    )
    ids = {m.id for m in config.models}
    for key in ("primary_model", "fallback_model"):
        if getattr(config, key) not in ids:
            raise ConfigError(f"{prefix}{key}", f"{getattr(config, key)!r} is not in {prefix}models")
    return config


def load_shim_config(path: str | os.PathLike[str] | None = None) -> ShimConfig:
    """Read the [shim] table of a TOML file (path, or $NBMON_CONFIG); defaults when neither is set."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return ShimConfig()
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    shim = data.get("shim", {})
    if not isinstance(shim, Mapping):
        raise ConfigError("shim", "must be a table")
    return shim_config_from_mapping(shim, "shim.")


def _models(raw: object, key: str) -> tuple[ModelSpec, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(key, "must be a non-empty table of model id -> {image_model, prices_usd}")
    specs = []
    for model_id, spec in raw.items():
        where = f"{key}.{model_id}"
        if not isinstance(spec, Mapping):
            raise ConfigError(where, "must be a table")
        for name in spec:
            if name not in ("image_model", "prices_usd", "image_sizes"):
                raise ConfigError(f"{where}.{name}", "unknown key (expected image_model, prices_usd or image_sizes)")
        prices = spec.get("prices_usd", {})
        if not isinstance(prices, Mapping):
            raise ConfigError(f"{where}.prices_usd", "must be a table of image size -> USD")
        for size, price in prices.items():
            if size not in (*IMAGE_SIZES, "default"):
                raise ConfigError(f"{where}.prices_usd.{size}", f"unknown image size (use {IMAGE_SIZES} or default)")
            if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
                raise ConfigError(f"{where}.prices_usd.{size}", "must be a number >= 0")
        sizes = spec.get("image_sizes", list(IMAGE_SIZES))
        if not isinstance(sizes, list) or any(size not in IMAGE_SIZES for size in sizes):
            raise ConfigError(f"{where}.image_sizes", f"must be a list drawn from {list(IMAGE_SIZES)}")
        image_model = _flag(spec, "image_model", True, f"{where}.")
        specs.append(ModelSpec(str(model_id), image_model, dict(prices), tuple(sizes)))
    return tuple(specs)


def _text(data: Mapping[str, Any], key: str, default: str, prefix: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{prefix}{key}", "must be a non-empty string")
    return value


def _count(data: Mapping[str, Any], key: str, default: int, prefix: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{prefix}{key}", "must be an integer >= 0")
    return value


def _flag(data: Mapping[str, Any], key: str, default: bool, prefix: str) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{prefix}{key}", "must be true or false")
    return value
