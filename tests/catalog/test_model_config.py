"""One model configuration for every part: [models], the older [shim] spellings, roles, retired IDs, warnings."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from google import genai
from prometheus_client import CollectorRegistry

from monitor.catalog import Lifecycle
from monitor.config import (
    ConfigError,
    Role,
    ShimConfig,
    config_from_document,
    load_shim_config,
    shim_config_from_mapping,
    warn_lifecycle,
)
from monitor.daemon import config as daemon_config
from monitor.generator import ImageGenerator

DEC_2026 = date(2026, 12, 5)


def test_defaults_are_todays_models() -> None:
    config = ShimConfig(as_of=DEC_2026)
    assert (config.primary_model, config.fallback_model) == ("gemini-3-pro-image", "gemini-nano-banana-2.1")
    assert config.role("gemini-3-pro-image") is Role.PRIMARY
    assert config.role("gemini-nano-banana-2.1") is Role.FALLBACK
    assert config.role("gemini-3.1-flash-image") is Role.OTHER
    assert config.lifecycle_notes() == []


def test_one_line_changes_the_primary() -> None:
    config = config_from_document({"models": {"primary": "gemini-3.1-flash-lite-image"}}, environ={})
    assert config.primary_model == "gemini-3.1-flash-lite-image"
    assert config.primary_ids == frozenset({"gemini-3.1-flash-lite-image"})
    assert config.role("gemini-3-pro-image") is Role.OTHER


def test_a_retired_primary_keeps_working_as_its_successor() -> None:
    config = config_from_document(
        {"models": {"primary": "gemini-3-pro-image-preview", "fallback": "gemini-2.5-flash-image"}},
        environ={},
        as_of=DEC_2026,
    )
    assert config.primary_model == "gemini-3-pro-image"  # what ImageGenerator calls
    assert config.configured_primary == "gemini-3-pro-image-preview"
    # Both IDs are the primary for labels and rules: an app still calling the old ID is watched too.
    assert config.primary_ids == frozenset({"gemini-3-pro-image-preview", "gemini-3-pro-image"})
    assert config.fallback_model == "gemini-nano-banana-2.1"
    notes = {note.key: note for note in config.lifecycle_notes()}
    assert notes["models.primary"].lifecycle is Lifecycle.RETIRED
    assert notes["models.primary"].replacement == "gemini-3-pro-image"
    assert "gemini-3-pro-image" in notes["models.primary"].message
    assert notes["models.fallback"].lifecycle is Lifecycle.RETIRED


def test_deprecated_and_soon_retired_models_are_noted() -> None:
    config = config_from_document(
        {
            "models": {
                "fallback": "gemini-3.1-flash-image",
                "gemini-3-pro-image": {"shutdown": "2026-12-20"},
            }
        },
        environ={},
        as_of=DEC_2026,
    )
    notes = {note.key: note for note in config.lifecycle_notes()}
    assert notes["models.fallback"].lifecycle is Lifecycle.DEPRECATED
    assert "migrate to gemini-nano-banana-2.1" in notes["models.fallback"].message
    assert notes["models.primary"].lifecycle is Lifecycle.ACTIVE
    assert "in 15 days" in notes["models.primary"].message
    far = config_from_document(
        {"models": {"gemini-3-pro-image": {"shutdown": "2027-03-01"}}}, environ={}, as_of=DEC_2026
    )
    assert far.lifecycle_notes() == []


def test_lifecycle_warnings_are_logged_once_per_process() -> None:
    # A model no other test names, so no earlier test has announced it in this process.
    document = {
        "models": {
            "fallback": "once-image",
            "once-image": {"family": "Once", "deprecated": "2026-11-01", "replacement": "gemini-nano-banana-2.1"},
        }
    }
    config = config_from_document(document, environ={}, as_of=DEC_2026)
    logger = _StructlogLike()
    first = warn_lifecycle(config, logger)
    again = warn_lifecycle(config_from_document(document, environ={}, as_of=DEC_2026), logger)
    assert [note.model for note in first] == ["once-image"]
    assert again == []
    ((event, fields),) = logger.events
    assert event == "nbmon.model.lifecycle"
    assert fields["lifecycle"] == "deprecated" and fields["replacement"] == "gemini-nano-banana-2.1"


class _StructlogLike:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.events.append((event, fields))


def test_the_older_shim_spelling_still_works(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text(
        """
[shim]
primary_model = "gemini-3-pro-image"
fallback_model = "gemini-3-flash-image"
capture_content = true

[shim.models."gemini-3-pro-image"]
prices_usd = { "1K" = 0.12, "4K" = 0.2 }

[shim.models."gemini-3-flash-image"]
prices_usd = { default = 0.03 }
"""
    )
    config = load_shim_config(path, environ={})
    assert (config.primary_model, config.fallback_model) == ("gemini-3-pro-image", "gemini-3-flash-image")
    assert config.capture_content is True
    assert config.model("gemini-3-pro-image").price("4K") == 0.2  # type: ignore[union-attr]
    assert config.model("gemini-3-flash-image").price("2K") == 0.03  # type: ignore[union-attr]
    assert config.model("gemini-3-pro-image").released == date(2026, 5, 28)  # type: ignore[union-attr]


def test_shim_and_models_sections_must_agree() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_document(
            {"models": {"primary": "gemini-3-pro-image"}, "shim": {"primary_model": "other-image"}}, environ={}
        )
    assert caught.value.key == "shim.primary_model"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[models]\nprimary = "gemini-3-pro-image"\n[shim]\nmax_extra_model_labels = 3\n')
    env = {"NBMON_CONFIG": str(path), "NBMON_PRIMARY_MODEL": "gemini-3.1-flash-image"}
    config = load_shim_config(environ=env)
    assert config.primary_model == "gemini-3.1-flash-image"
    assert config.max_extra_model_labels == 3
    # The daemon's variable names the same file when the shim's is not set.
    assert load_shim_config(environ={"NBMON_CONFIG_FILE": str(path)}).max_extra_model_labels == 3


def test_a_catalog_path_is_read_next_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "models.toml").write_text(
        'default_primary = "a-image"\ndefault_fallback = "b-image"\n'
        '[models."a-image"]\nfamily = "A"\n[models."b-image"]\nfamily = "B"\n'
    )
    (tmp_path / "nbmon.toml").write_text('[models]\ncatalog = "models.toml"\n')
    config = load_shim_config(tmp_path / "nbmon.toml", environ={})
    assert (config.primary_model, config.fallback_model) == ("a-image", "b-image")
    assert len(config.catalog) == 2


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"models": {"bogus": 1}}, "models.bogus"),
        ({"models": {"primary": ""}}, "models.primary"),
        ({"models": {"primary": "gemini-3-pro-image", "fallback": "gemini-3-pro-image"}}, "models.fallback"),
        ({"models": {"catalog": "/nonexistent/models.toml"}}, "models.catalog"),
        ({"models": {"warn_before_shutdown_days": -3}}, "models.warn_before_shutdown_days"),
        ({"shim": {"bogus": 1}}, "shim.bogus"),
        ({"shim": {"capture_content": "yes"}}, "shim.capture_content"),
        ({"shim": {"max_extra_model_labels": -1}}, "shim.max_extra_model_labels"),
        ({"shim": {"models": {}}}, "shim.models"),
        ({"shim": {"models": {"m": {"prices_usd": {"8K": 1.0}}}}}, 'shim.models."m".prices_usd.8K'),
        ({"shim": {"models": {"m": {"prices_usd": {"1K": -1}}}}}, 'shim.models."m".prices_usd.1K'),
        ({"shim": {"models": {"m": {"prices_usd": {"1K": "cheap"}}}}}, 'shim.models."m".prices_usd.1K'),
        ({"shim": {"models": {"m": {"colour": "red"}}}}, 'shim.models."m".colour'),
        ({"models": {"gemini-x": {"shutdown": "never"}}}, 'models."gemini-x".shutdown'),
    ],
)
def test_bad_config_names_the_key(document: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_document(document, environ={})
    assert caught.value.key == key
    assert str(caught.value).startswith(key + ": ")


def test_shim_table_alone_still_parses() -> None:
    assert shim_config_from_mapping({"max_extra_model_labels": 4}).max_extra_model_labels == 4


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_shim_config(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[shim\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_shim_config(bad, environ={})


def test_unlisted_image_models_are_recognised_by_name() -> None:
    config = ShimConfig()
    assert config.is_image_model("gemini-4-pro-image") is True
    assert config.is_image_model("gemini-2.5-flash") is False


def test_shim_generator_and_daemon_agree_on_one_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text(
        '[models]\nprimary = "gemini-3.1-flash-image"\nfallback = "gemini-3.1-flash-lite-image"\n'
        '[models."gemini-3.1-flash-image"]\nprices_usd.standard = { "1K" = 0.05 }\n'
    )
    monkeypatch.setenv("NBMON_CONFIG", str(path))
    shim = load_shim_config()
    generator = ImageGenerator(genai.Client(api_key="test"), registry=CollectorRegistry())
    daemon = daemon_config.load(path, environ={})
    for config in (generator.config, daemon.shim):
        assert (config.primary_model, config.fallback_model) == (shim.primary_model, shim.fallback_model)
        assert config.primary_ids == shim.primary_ids
        assert config.model("gemini-3.1-flash-image").price("1K") == 0.05  # type: ignore[union-attr]
    assert generator.primary_model == daemon.primary_model == "gemini-3.1-flash-image"
