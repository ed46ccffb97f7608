"""ModelCatalog: every known model by ID and alias, the built-in file, overrides, and modelVersion matching."""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from monitor.catalog.parse import entry_from_mapping, merge_entry, multipliers_from_mapping
from monitor.catalog.spec import DEFAULT_TIER_MULTIPLIERS, Lifecycle, ModelSpec
from monitor.errors import ConfigError

BUILTIN_FILE = "models.toml"
# Suffixes of a version of the same model in `modelVersion`: "@001", "-001", "-20260528", "-05-2026", "-latest".
_VERSION_SUFFIX = re.compile(r"(?:@[\w.-]+|-\d{3}|-\d{8}|-\d{2}-\d{4}|-latest)$")


def bare_id(raw: str) -> str:
    """A model ID without the `models/` (or Vertex `publishers/google/models/`) prefix."""
    return raw.rsplit("/", 1)[-1] if "/" in raw else raw


class ModelCatalog:
    """Immutable once built; lookups take an ID or an alias, with or without the `models/` prefix."""

    def __init__(
        self,
        specs: Iterable[ModelSpec],
        *,
        default_primary: str | None = None,
        default_fallback: str | None = None,
        as_of: date | None = None,
        where: str = "models",
    ) -> None:
        self.specs: tuple[ModelSpec, ...] = tuple(specs)
        self.as_of = as_of
        self._by_name: dict[str, ModelSpec] = {}
        for spec in self.specs:
            for name in spec.names:
                if name in self._by_name:
                    raise ConfigError(f'{where}."{spec.id}"', f"{name!r} names two models of the catalog")
                self._by_name[name] = spec
        for spec in self.specs:
            for key in ("replacement", "routed_to"):
                target = getattr(spec, key)
                if target is not None and target not in self._by_name:
                    raise ConfigError(f'{where}."{spec.id}".{key}', f"{target!r} is not in the catalog")
        self.default_primary = default_primary or (self.specs[0].id if self.specs else "")
        self.default_fallback = default_fallback or (self.specs[1].id if len(self.specs) > 1 else "")

    def __len__(self) -> int:
        return len(self.specs)

    def get(self, model_id: str | None) -> ModelSpec | None:
        if not model_id:
            return None
        spec = self._by_name.get(model_id)
        return spec if spec is not None or "/" not in model_id else self._by_name.get(bare_id(model_id))

    def canonical(self, model_id: str | None) -> str | None:
        spec = self.get(model_id)
        return spec.id if spec is not None else None

    @property
    def names(self) -> frozenset[str]:
        """Every ID and alias."""
        return frozenset(self._by_name)

    def successor(self, model_id: str, today: date) -> str | None:
        """For a retired model: the first model down its replacement chain that is not retired (else None)."""
        spec, seen = self.get(model_id), set()
        if spec is None or spec.lifecycle(today) is not Lifecycle.RETIRED:
            return None
        while spec is not None and spec.lifecycle(today) is Lifecycle.RETIRED and spec.id not in seen:
            seen.add(spec.id)
            spec = self.get(spec.routed_to or spec.replacement)
        return spec.id if spec is not None and spec.id not in seen else None

    def served_model(self, requested: str | None, model_version: str | None) -> str | None:
        """The model that answered when it is not the one requested (a silent reroute), else None.

        A version of the requested model ("gemini-3-pro-image-001", "...@001") is the same model; so is an alias.
        """
        if not model_version or not requested or model_version == requested:
            return None
        served = bare_id(model_version)
        requested_id = self.canonical(requested) or bare_id(requested)
        served_spec = self.get(served)
        if served_spec is None:
            stripped = _VERSION_SUFFIX.sub("", served)
            served_spec = self.get(stripped)
            if served_spec is None:
                return None if stripped == requested_id else stripped
        return None if served_spec.id == requested_id else served_spec.id

    def merged(self, entries: Mapping[str, Any], where: str = "models") -> ModelCatalog:
        """A new catalog with `entries` (model ID -> table) merged key by key over this one's."""
        specs = {spec.id: spec for spec in self.specs}
        multipliers = self.specs[0].tier_multipliers if self.specs else DEFAULT_TIER_MULTIPLIERS
        for model_id, table in entries.items():
            key = f'{where}."{model_id}"'
            if not isinstance(table, Mapping):
                raise ConfigError(key, "must be a table of the model's catalog fields")
            base = self.get(str(model_id))
            if base is not None and base.id != model_id:
                raise ConfigError(key, f"is an alias of {base.id!r}: override the model under its ID")
            specs[str(model_id)] = merge_entry(base, str(model_id), table, multipliers, key)
        return ModelCatalog(
            specs.values(),
            default_primary=self.default_primary,
            default_fallback=self.default_fallback,
            as_of=self.as_of,
            where=where,
        )


def catalog_from_mapping(data: Mapping[str, Any], where: str = "catalog") -> ModelCatalog:
    """A whole catalog document (the shape of the built-in models.toml)."""
    known = {"as_of", "default_primary", "default_fallback", "tier_multipliers", "models"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{where}.{key}", f"unknown key (expected one of {', '.join(sorted(known))})")
    multipliers = multipliers_from_mapping(data.get("tier_multipliers", {}), f"{where}.tier_multipliers")
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ConfigError(f"{where}.models", "must be a non-empty table of model ID -> fields")
    specs = [
        entry_from_mapping(str(model_id), table, multipliers, f'{where}.models."{model_id}"')
        for model_id, table in models.items()
    ]
    as_of = data.get("as_of")
    defaults = {k: data.get(k) for k in ("default_primary", "default_fallback")}
    for key, value in defaults.items():
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}.{key}", "must be a model ID")
    catalog = ModelCatalog(
        specs,
        default_primary=defaults["default_primary"],
        default_fallback=defaults["default_fallback"],
        as_of=as_of if isinstance(as_of, date) else None,
        where=f"{where}.models",
    )
    for key in ("default_primary", "default_fallback"):
        if catalog.get(getattr(catalog, key)) is None:
            raise ConfigError(f"{where}.{key}", f"{getattr(catalog, key)!r} is not in the catalog")
    return catalog


def load_catalog(path: str | Path) -> ModelCatalog:
    """A catalog file (TOML, the shape of the built-in one); ConfigError naming the file or the key."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("models.catalog", f"cannot read {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("models.catalog", f"{path} is not valid TOML: {exc}") from exc
    return catalog_from_mapping(data, where=str(path))


@functools.cache
def builtin_catalog() -> ModelCatalog:
    """The catalog shipped in the package (monitor/catalog/models.toml), parsed once."""
    text = resources.files("monitor.catalog").joinpath(BUILTIN_FILE).read_text(encoding="utf-8")
    return catalog_from_mapping(tomllib.loads(text), where="monitor/catalog/models.toml")
