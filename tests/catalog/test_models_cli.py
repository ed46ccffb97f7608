"""`nbmon models` and docs/models.md: the catalog as users read it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

from monitor.catalog import builtin_catalog
from monitor.catalog.cli import markdown
from monitor.cli import main
from monitor.config import config_from_document
from tests.support.constants import ROOT

DOC = ROOT / "docs" / "models.md"


def test_table_shows_roles_and_lifecycle_on_a_day(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--date", "2026-06-01"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^gemini-3-pro-image +Nano Banana Pro +primary +active ", out, re.M)
    # between its deprecation (2026-05-28) and its shutdown (2026-06-25)
    assert re.search(r"^gemini-3-pro-image-preview +Nano Banana Pro +other +deprecated ", out, re.M)
    assert "primary gemini-3-pro-image, fallback gemini-nano-banana-2.1; lifecycle as of 2026-06-01" in out


def test_json_follows_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "nbmon.toml"
    config.write_text('[models]\nprimary = "gemini-3-pro-image-preview"\n')
    assert main(["models", "--config", str(config), "--json", "--date", "2026-12-05"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["primary"] == "gemini-3-pro-image"
    models = {m["id"]: m for m in document["models"]}
    assert models["gemini-3-pro-image-preview"]["role"] == "primary"
    assert models["gemini-3-pro-image-preview"]["lifecycle"] == "retired"
    assert models["gemini-3-pro-image"]["prices_usd"]["batch"]["4K"] == 0.12
    assert models["gemini-3-pro-image"]["sources"]["prices"]["as_of"] == "2026-09-20"
    assert any("was shut down on 2026-06-25" in note for note in document["notes"])


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--date", "yesterday"]) == 2
    assert capsys.readouterr().err.strip() == "nbmon: --date: 'yesterday' is not a date (YYYY-MM-DD)"
    bad = tmp_path / "bad.toml"
    bad.write_text('[models."x"]\nprices_usd = { "9K" = 1 }\n')
    assert main(["models", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'nbmon: config error: models."x".prices_usd.9K: unknown image size (use 512px, 1K, 2K, 4K or default)'


def test_docs_show_the_current_catalog() -> None:
    text = DOC.read_text()
    found = re.search(r"<!-- catalog:start[^>]*-->\n(.*?)\n<!-- catalog:end -->", text, re.S)
    assert found is not None
    assert found.group(1) == markdown(builtin_catalog().specs), "docs/models.md is stale: nbmon models --markdown"


def test_the_docs_example_config_is_valid() -> None:
    block = re.search(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert block is not None
    config = config_from_document(tomllib.loads(block.group(1)), environ={})
    new = config.model("gemini-4-image")
    assert new is not None and new.price("2K", "flex") == 0.075
    assert config.model("gemini-3-pro-image").price("4K") == 0.23  # type: ignore[union-attr]
    assert config.model("gemini-nano-banana-2.1").replacement == "gemini-4-image"  # type: ignore[union-attr]
