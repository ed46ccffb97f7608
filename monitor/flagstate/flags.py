"""The flags the decision is served as, shared by the OFREP handlers and the flagd file writer.

- `degraded-mode` (boolean, variants "on"/"off"): True while the app must use the fallback model.
- `image-model` (string, variants "primary"/"fallback"): the model id the app should call now.
- `generation-allowed` (boolean, variants "on"/"off"): False while a hard stop holds (a spent budget with
  `action = "stop"`): the app must not generate at all.

Metadata values are only strings, numbers and booleans, as OFREP and flagd require: figures are flattened
to `figures.<name>` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.flagstate.codec import iso
from monitor.flagstate.state import Decision
from monitor.wire import DEGRADED_FLAG, GENERATION_FLAG, IMAGE_MODEL_FLAG

FLAG_KEYS = (DEGRADED_FLAG, IMAGE_MODEL_FLAG, GENERATION_FLAG)

MetadataValue = str | int | float | bool
FlagValue = bool | str


@dataclass(frozen=True, slots=True)
class Models:
    """The model ids `image-model` chooses between (from the daemon's config)."""

    primary: str
    fallback: str


@dataclass(frozen=True, slots=True)
class ResolvedFlag:
    key: str
    value: FlagValue
    variant: str
    variants: dict[str, FlagValue]  # every variant, for the flagd file
    metadata: dict[str, MetadataValue]


def flag_metadata(decision: Decision) -> dict[str, MetadataValue]:
    metadata: dict[str, MetadataValue] = {
        "since": iso(decision.since),
        "rule": decision.rule,
        "source": decision.source,  # "override" tells a forced value from a rule's verdict (reason stays STATIC)
        "detail": decision.reason,
        "evaluated": decision.evaluated,
    }
    for name, number in sorted(decision.figures.items()):
        metadata[f"figures.{name}"] = number
    if decision.override is not None:
        metadata["override_expires_at"] = iso(decision.override.expires_at)
        metadata["override_set_by"] = decision.override.set_by
    return metadata


def stop_metadata(decision: Decision) -> dict[str, MetadataValue]:
    stop = decision.stop
    if stop is None:
        return {"source": "none", "detail": "generation allowed"}
    return {"source": stop.set_by, "detail": stop.reason, "since": iso(stop.since), "until": iso(stop.until)}


def resolve_flags(decision: Decision, models: Models) -> tuple[ResolvedFlag, ...]:
    """Every flag for `decision`, in `FLAG_KEYS` order."""
    metadata = flag_metadata(decision)
    degraded = decision.value
    return (
        ResolvedFlag(DEGRADED_FLAG, degraded, "on" if degraded else "off", {"on": True, "off": False}, metadata),
        ResolvedFlag(
            IMAGE_MODEL_FLAG,
            models.fallback if degraded else models.primary,
            "fallback" if degraded else "primary",
            {"primary": models.primary, "fallback": models.fallback},
            dict(metadata),
        ),
        ResolvedFlag(
            GENERATION_FLAG,
            decision.stop is None,
            "off" if decision.stop is not None else "on",
            {"on": True, "off": False},
            stop_metadata(decision),
        ),
    )
