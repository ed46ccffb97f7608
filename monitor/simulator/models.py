"""The simulator's view of the model catalog: lines (pro/flash/lite), retirements, reroutes and image sizes.

It serves the catalog as the real API does: a retired ID answers 404 NOT_FOUND, an ID the API routes elsewhere
answers with the other model's modelVersion. Reroutes can also be scripted at run time (PUT /_sim/models).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from monitor.catalog import Lifecycle, ModelCatalog, builtin_catalog

_LINES = ("pro", "lite", "flash")  # an ID outside the catalog: its line read from the name


class SimModels:
    """Lookups only; the scripted reroutes live in the Simulator, behind its lock."""

    def __init__(self, catalog: ModelCatalog | None = None, *, serve_retired: bool = False) -> None:
        self.catalog = catalog or builtin_catalog()
        self.serve_retired = serve_retired  # True: retired IDs are answered as if they were still served

    def line(self, model: str) -> str | None:
        """The catalog's model_tier, else the first of pro/lite/flash in the ID, else None."""
        spec = self.catalog.get(model)
        if spec is not None and spec.model_tier:
            return spec.model_tier
        lowered = model.lower()
        return next((line for line in _LINES if line in lowered), None)

    def route(self, model: str, today: date, scripted: Mapping[str, str]) -> tuple[str, bool]:
        """(the model that answers, whether the ID is retired and answered by nobody)."""
        if model in scripted:
            return scripted[model], False
        spec = self.catalog.get(model)
        if spec is None or self.serve_retired or spec.lifecycle(today) is not Lifecycle.RETIRED:
            return model, False
        if spec.routed_to:
            return spec.routed_to, False
        return model, True

    def sizes(self, model: str) -> tuple[str, ...]:
        """The image sizes the model takes; empty when any (unknown models) or none is checked."""
        spec = self.catalog.get(model)
        return spec.image_sizes if spec is not None else ()
