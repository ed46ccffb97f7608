"""Where a generate request goes: as asked, to the fallback while degraded, or to the primary as a canary.

The same decisions as `ImageGenerator`: while the degraded-mode flag is on, requests for the primary model go to
the fallback except a canary share; options the fallback does not take (an `imageSize` it has no price for)
are dropped, per the model catalog. Pure: the caller draws the random number and reads the flag.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from monitor.config import Role, ShimConfig


class Route(StrEnum):
    """`x-nbmon-route`: what steering did with a request (a public contract)."""

    PRIMARY = "primary"  # sent to the model it asked for
    DEGRADED = "degraded"  # the primary's request sent to the fallback while degraded
    CANARY = "canary"  # the primary's request kept on the primary while degraded, to measure its recovery
    FALLBACK = "fallback"  # moved to the fallback by the retry policy (attempts spent, daily quota)
    STOPPED = "stopped"  # not sent: generation is stopped (generation-allowed false), answered 429 by the proxy


@dataclass(frozen=True, slots=True)
class Steering:
    model: str
    route: Route


def steer(requested: str, config: ShimConfig, *, degraded: bool, canary_share: float, draw: float) -> Steering:
    """`draw` is uniform in [0, 1)."""
    if not degraded or config.role(requested) is not Role.PRIMARY:
        return Steering(requested, Route.PRIMARY)
    if draw < canary_share:
        return Steering(requested, Route.CANARY)
    return Steering(config.fallback_model, Route.DEGRADED)


def can_fall_back(requested: str, current: str, config: ShimConfig) -> bool:
    """A request for the primary may move to the fallback (after retries, on daily quota), once."""
    return config.role(requested) is Role.PRIMARY and current != config.fallback_model


def body_for(model: str, body: bytes, parsed: dict[str, Any] | None, config: ShimConfig) -> bytes:
    """The request body for `model`: unchanged unless it asks for an image size the model does not take."""
    spec = config.model(model)
    image_config = _image_config(parsed)
    size = image_config.get("imageSize") if image_config is not None else None
    if spec is None or image_config is None or size is None or str(size).upper() in spec.image_sizes:
        return body
    assert parsed is not None
    rewritten = json.loads(json.dumps(parsed))  # a copy: a later attempt on the requested model sends the original
    del rewritten["generationConfig"]["imageConfig"]["imageSize"]
    return json.dumps(rewritten, separators=(",", ":")).encode()


def _image_config(parsed: dict[str, Any] | None) -> dict[str, Any] | None:
    generation = parsed.get("generationConfig") if parsed is not None else None
    image_config = generation.get("imageConfig") if isinstance(generation, dict) else None
    return image_config if isinstance(image_config, dict) else None
