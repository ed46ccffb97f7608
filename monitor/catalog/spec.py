"""One catalog entry: a model's sizes, prices per service tier, lifecycle dates and where each fact came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

IMAGE_SIZES = ("512px", "1K", "2K", "4K")
DEFAULT_IMAGE_SIZE = "1K"
SERVICE_TIERS = ("standard", "batch", "flex", "priority")
DEFAULT_SERVICE_TIER = "standard"
# Batch and Flex are half price; Priority costs "75% to 100% more" (the catalog file says where from).
DEFAULT_TIER_MULTIPLIERS: Mapping[str, float] = {"standard": 1.0, "batch": 0.5, "flex": 0.5, "priority": 2.0}
MODEL_TIERS = ("pro", "flash", "lite")


class Lifecycle(StrEnum):
    """Where a model is in its life on a given day. Values are label values."""

    ACTIVE = "active"
    DEPRECATED = "deprecated"  # still served; a replacement is named
    RETIRED = "retired"  # shut down: the API answers 404 (or routes the ID to another model)


@dataclass(frozen=True, slots=True)
class Source:
    """Where a fact was read, and on which day."""

    url: str
    as_of: date


def utc_midnight(day: date) -> float:
    """Unix time of the start of `day` in UTC (a shutdown date takes effect then)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model. `prices_usd` is the standard tier (image size, or "default", -> USD per final image);
    `tier_prices_usd` holds any other tier priced on its own; the rest follow `tier_multipliers`."""

    id: str
    image_model: bool = True
    prices_usd: Mapping[str, float] = field(default_factory=dict)
    # imageConfig.imageSize values the model accepts; empty: send none (e.g. a fixed 1024px model).
    image_sizes: tuple[str, ...] = IMAGE_SIZES
    family: str = ""
    model_tier: str | None = None
    aliases: tuple[str, ...] = ()
    service_tiers: tuple[str, ...] = SERVICE_TIERS
    tier_prices_usd: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tier_multipliers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIER_MULTIPLIERS))
    released: date | None = None
    deprecated: date | None = None
    shutdown: date | None = None
    replacement: str | None = None
    routed_to: str | None = None
    sources: Mapping[str, Source] = field(default_factory=dict)

    def price(self, image_size: str, service_tier: str = DEFAULT_SERVICE_TIER) -> float | None:
        """USD for one final image, or None when the catalog has no price for it (or the tier is not offered)."""
        if service_tier not in self.service_tiers:
            return None
        own = self.tier_prices_usd.get(service_tier) if service_tier != DEFAULT_SERVICE_TIER else self.prices_usd
        if own:
            price = own.get(image_size, own.get("default"))
            if price is not None:
                return price
        standard = self.prices_usd.get(image_size, self.prices_usd.get("default"))
        multiplier = self.tier_multipliers.get(service_tier)
        if standard is None or multiplier is None:
            return None
        return round(standard * multiplier, 6)

    def lifecycle(self, today: date) -> Lifecycle:
        if self.shutdown is not None and today >= self.shutdown:
            return Lifecycle.RETIRED
        if self.deprecated is not None and today >= self.deprecated:
            return Lifecycle.DEPRECATED
        return Lifecycle.ACTIVE

    @property
    def names(self) -> tuple[str, ...]:
        """The ID and its aliases."""
        return (self.id, *self.aliases)
