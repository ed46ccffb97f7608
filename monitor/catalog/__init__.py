"""The model catalog: every Gemini image model nbmon knows, its lifecycle and prices, as data.

The built-in catalog is `models.toml` in this package; a config replaces it with `[models] catalog = path` or
overrides single entries under `[models."<id>"]`. Every part of nbmon reads models from here.
"""

from monitor.catalog.catalog import ModelCatalog, bare_id, builtin_catalog, catalog_from_mapping, load_catalog
from monitor.catalog.collector import MODEL_INFO, MODEL_SHUTDOWN, ModelInfoCollector
from monitor.catalog.spec import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SERVICE_TIER,
    IMAGE_SIZES,
    MODEL_TIERS,
    SERVICE_TIERS,
    Lifecycle,
    ModelSpec,
    Source,
    utc_midnight,
)

__all__ = [
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_SERVICE_TIER",
    "IMAGE_SIZES",
    "MODEL_INFO",
    "MODEL_SHUTDOWN",
    "MODEL_TIERS",
    "SERVICE_TIERS",
    "Lifecycle",
    "ModelCatalog",
    "ModelInfoCollector",
    "ModelSpec",
    "Source",
    "bare_id",
    "builtin_catalog",
    "catalog_from_mapping",
    "load_catalog",
    "utc_midnight",
]
