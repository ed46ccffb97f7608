"""The model configuration every part reads (shim, generator, daemon, demo), and the shim's telemetry options.

One parse of a config document: `[models]` (primary, fallback, catalog file, single catalog entries) and `[shim]`
(telemetry options; its older primary_model/fallback_model/models spellings still work). `instrument()`,
`ImageGenerator` and `nbmon run` given the same file therefore agree on the models by construction. Model IDs,
prices and dates come from the catalog (monitor/catalog/models.toml), never from code.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from monitor.catalog import (
    DEFAULT_IMAGE_SIZE,
    IMAGE_SIZES,
    Lifecycle,
    ModelCatalog,
    ModelSpec,
    builtin_catalog,
    load_catalog,
)
from monitor.errors import ConfigError

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_IMAGE_SIZE",
    "IMAGE_SIZES",
    "ConfigError",
    "LifecycleNote",
    "ModelSpec",
    "Role",
    "ShimConfig",
    "config_from_document",
    "load_shim_config",
    "read_document",
    "shim_config_from_mapping",
    "warn_lifecycle",
]

CONFIG_ENV = "NBMON_CONFIG"
MAX_CONFIG_BYTES = 1024 * 1024  # a real config is a few KiB; anything this big is a mistake or an attack
CONFIG_FILE_ENV = "NBMON_CONFIG_FILE"  # the daemon's variable: the shim reads the same file when only it is set
MODEL_ENV = {"NBMON_PRIMARY_MODEL": "primary", "NBMON_FALLBACK_MODEL": "fallback", "NBMON_MODEL_CATALOG": "catalog"}
_MODELS_KEYS = ("primary", "fallback", "catalog", "warn_before_shutdown_days")
_SHIM_KEYS = ("max_extra_model_labels", "capture_content", "primary_model", "fallback_model", "models")


class Role(StrEnum):
    """What a model is to this configuration; the `role` label of nbmon_model_info."""

    PRIMARY = "primary"
    FALLBACK = "fallback"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class LifecycleNote:
    """A configured model that is deprecated, retired or close to its shutdown, said once at start."""

    key: str  # models.primary or models.fallback
    model: str
    lifecycle: Lifecycle
    message: str
    replacement: str | None
    shutdown: date | None


@dataclass(frozen=True, slots=True)
class ShimConfig:
    """The models (catalog, primary, fallback) and the shim's telemetry options. Frozen: build a new one to change it.

    `primary_model` / `fallback_model` are the models to call: the configured ones ("" = the catalog's defaults), or,
    for a configured model that is retired, its successor down the catalog's replacement chain (the configured ID
    stays in `configured_primary` and keeps the role for labels and rules). `as_of` is the day this is resolved for.
    """

    catalog: ModelCatalog = field(default_factory=builtin_catalog)
    primary_model: str = ""
    fallback_model: str = ""
    max_extra_model_labels: int = 20
    capture_content: bool = False
    warn_before_shutdown_days: int = 30
    as_of: date = field(default_factory=date.today)
    configured_primary: str = field(init=False)
    configured_fallback: str = field(init=False)
    primary_ids: frozenset[str] = field(init=False)
    fallback_ids: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        catalog = self.catalog
        configured = {
            "primary": self.primary_model or catalog.default_primary,
            "fallback": self.fallback_model or catalog.default_fallback,
        }
        resolved = {key: self._resolve(model) for key, model in configured.items()}
        if resolved["primary"] == resolved["fallback"]:
            raise ConfigError("models.fallback", f"{resolved['fallback']!r} must differ from models.primary")
        for key in ("primary", "fallback"):
            object.__setattr__(self, f"configured_{key}", configured[key])
            object.__setattr__(self, f"{key}_model", resolved[key])
            object.__setattr__(self, f"{key}_ids", self._ids(configured[key], resolved[key]))

    def _resolve(self, model: str) -> str:
        successor = self.catalog.successor(model, self.as_of)
        return successor or self.catalog.canonical(model) or model

    def _ids(self, configured: str, resolved: str) -> frozenset[str]:
        """The IDs that count as this role: the model, its aliases, what the API routes to it, the configured ID."""
        ids = {configured, resolved}
        spec = self.catalog.get(resolved)
        if spec is not None:
            ids.update(spec.aliases)
        ids.update(name for s in self.catalog.specs if s.routed_to == resolved for name in s.names)
        return frozenset(ids)

    @property
    def models(self) -> tuple[ModelSpec, ...]:
        return self.catalog.specs

    def model(self, model_id: str | None) -> ModelSpec | None:
        return self.catalog.get(model_id)

    def role(self, model_id: str | None) -> Role:
        if model_id in self.primary_ids:
            return Role.PRIMARY
        if model_id in self.fallback_ids:
            return Role.FALLBACK
        return Role.OTHER

    @property
    def known_models(self) -> frozenset[str]:
        """Label values that always pass the model label's bound: the catalog's names and the configured IDs."""
        return self.catalog.names | self.primary_ids | self.fallback_ids

    def is_image_model(self, model_id: str | None) -> bool:
        spec = self.model(model_id)
        if spec is not None:
            return spec.image_model
        # Unlisted models: Google names every image-output model "...-image..." (or Nano Banana).
        return model_id is not None and ("image" in model_id or "banana" in model_id)

    def lifecycle_notes(self, today: date | None = None) -> list[LifecycleNote]:
        """The configured models that are retired, deprecated or within warn_before_shutdown_days of shutdown."""
        today = today or self.as_of
        notes = []
        for key, model in (("models.primary", self.configured_primary), ("models.fallback", self.configured_fallback)):
            spec = self.catalog.get(model)
            if spec is None:
                continue
            state = spec.lifecycle(today)
            replacement = spec.replacement
            if state is Lifecycle.RETIRED:
                serving = self.primary_model if key == "models.primary" else self.fallback_model
                message = f"{model} was shut down on {spec.shutdown}; nbmon uses its successor {serving}"
            elif spec.shutdown is not None and (spec.shutdown - today).days <= self.warn_before_shutdown_days:
                message = f"{model} shuts down on {spec.shutdown}, in {(spec.shutdown - today).days} days"
            elif state is Lifecycle.DEPRECATED:
                message = f"{model} is deprecated since {spec.deprecated}"
            else:
                continue
            if replacement and state is not Lifecycle.RETIRED:
                message += f"; migrate to {replacement}"
            notes.append(LifecycleNote(key, model, state, message, replacement, spec.shutdown))
        return notes


_announced: set[tuple[str, str]] = set()
_announced_lock = threading.Lock()


def warn_lifecycle(config: ShimConfig, logger: Any) -> list[LifecycleNote]:
    """Log each lifecycle note of the configured models once per process (instrument(), ImageGenerator and the
    daemon all call this); returns the notes logged now."""
    logged = []
    for note in config.lifecycle_notes():
        with _announced_lock:
            if (note.model, note.lifecycle.value) in _announced:
                continue
            _announced.add((note.model, note.lifecycle.value))
        logger.warning(
            "nbmon.model.lifecycle",
            key=note.key,
            model=note.model,
            lifecycle=note.lifecycle.value,
            replacement=note.replacement,
            shutdown=str(note.shutdown) if note.shutdown else None,
            message=note.message,
        )
        logged.append(note)
    return logged


def config_from_document(
    document: Mapping[str, Any],
    *,
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    as_of: date | None = None,
) -> ShimConfig:
    """The models and shim options of a whole config document; ConfigError naming the key otherwise.

    Reads `[models]` and `[shim]` only; NBMON_PRIMARY_MODEL, NBMON_FALLBACK_MODEL and NBMON_MODEL_CATALOG win.
    A relative catalog path is read from `base_dir` (the config file's directory).
    """
    models = _table(document, "models")
    shim = _table(document, "shim")
    env = os.environ if environ is None else environ
    settings = {k: v for k, v in models.items() if not isinstance(v, Mapping)}
    entries = {k: v for k, v in models.items() if isinstance(v, Mapping)}
    for var, key in MODEL_ENV.items():
        if env.get(var):
            settings[key] = env[var]
    for key in settings:
        if key not in _MODELS_KEYS:
            raise ConfigError(
                f"models.{key}", f'unknown key (expected one of {", ".join(_MODELS_KEYS)}, or a [models."<id>"] table)'
            )
    for key in shim:
        if key not in _SHIM_KEYS:
            raise ConfigError(f"shim.{key}", f"unknown key (expected one of {', '.join(_SHIM_KEYS)})")

    catalog = builtin_catalog()
    if "catalog" in settings:
        path = Path(_text(settings["catalog"], "models.catalog"))
        catalog = load_catalog(path if path.is_absolute() or base_dir is None else base_dir / path)
    if "models" in shim:  # the older spelling of single entries: [shim.models."<id>"]
        legacy = shim["models"]
        if not isinstance(legacy, Mapping) or not legacy:
            raise ConfigError("shim.models", "must be a non-empty table of model id -> {prices_usd, image_sizes, ...}")
        catalog = catalog.merged(legacy, "shim.models")
    if entries:
        catalog = catalog.merged(entries, "models")

    primary = _one_of(settings, "primary", shim, "primary_model")
    fallback = _one_of(settings, "fallback", shim, "fallback_model")
    options: dict[str, Any] = {"catalog": catalog, "primary_model": primary, "fallback_model": fallback}
    if as_of is not None:
        options["as_of"] = as_of
    if "warn_before_shutdown_days" in settings:
        options["warn_before_shutdown_days"] = _count(
            settings["warn_before_shutdown_days"], "models.warn_before_shutdown_days"
        )
    if "max_extra_model_labels" in shim:
        options["max_extra_model_labels"] = _count(shim["max_extra_model_labels"], "shim.max_extra_model_labels")
    if "capture_content" in shim:
        if not isinstance(shim["capture_content"], bool):
            raise ConfigError("shim.capture_content", "must be true or false")
        options["capture_content"] = shim["capture_content"]
    return ShimConfig(**options)


def shim_config_from_mapping(data: Mapping[str, Any], prefix: str = "shim.") -> ShimConfig:
    """A ShimConfig from a `[shim]` table alone (the older layout); see config_from_document."""
    if prefix not in ("", "shim."):
        raise ValueError(f"prefix: {prefix!r} is not supported")
    return config_from_document({"shim": data}, environ={})


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A TOML (.toml) or YAML (.yaml/.yml) file as a mapping; ConfigError naming the file otherwise."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"over {MAX_CONFIG_BYTES // 1024} KiB: not a config file")
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(raw.decode())
        elif path.suffix in (".yaml", ".yml"):
            try:  # only for YAML files: the base install has no pyyaml
                import yaml
            except ModuleNotFoundError:
                raise ConfigError(
                    str(path), "a YAML config needs pyyaml: pip install 'nbmon[daemon]' (or use TOML)"
                ) from None
            try:
                data = yaml.safe_load(raw) or {}
            except yaml.YAMLError as exc:
                raise ValueError(str(exc)) from exc
        else:
            raise ConfigError(str(path), "unknown format: use a .toml, .yaml or .yml file")
    except RecursionError:
        raise ConfigError(str(path), "nested too deeply to be a config file") from None
    except (tomllib.TOMLDecodeError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(str(path), f"not valid {path.suffix.lstrip('.').upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "must contain a table/mapping at the top level")
    return data


def load_shim_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> ShimConfig:
    """The config of a file (path, else $NBMON_CONFIG, else $NBMON_CONFIG_FILE); defaults when none is set."""
    env = os.environ if environ is None else environ
    path = path or env.get(CONFIG_ENV) or env.get(CONFIG_FILE_ENV)
    if not path:
        return config_from_document({}, environ=env)
    return config_from_document(read_document(path), base_dir=Path(path).parent, environ=env)


def _table(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must be a table")
    return value


def _one_of(models: Mapping[str, Any], key: str, shim: Mapping[str, Any], legacy: str) -> str:
    """[models] <key>, or the older [shim] <legacy>; both set and different is an error, not a guess."""
    new = _text(models[key], f"models.{key}") if key in models else ""
    old = _text(shim[legacy], f"shim.{legacy}") if legacy in shim else ""
    if new and old and new != old:
        raise ConfigError(f"shim.{legacy}", f"{old!r} differs from models.{key} {new!r}: set it in [models] only")
    return new or old


def _text(value: object, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, "must be a non-empty string")
    return value.strip()


def _count(value: object, key: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(key, "must be an integer >= 0")
    return value
