"""The README's contract (the two commands first, where they put `nbmon`) and docs/config.md against the code."""

from __future__ import annotations

import dataclasses
import re

import pytest

from monitor.config import CONFIG_ENV, CONFIG_FILE_ENV, MODEL_ENV
from monitor.daemon.config import ENV_KEYS, DaemonConfig, load
from monitor.quota.rules import default_quota_rules, quota_rules_from_mapping
from monitor.shim import DISABLE_ENV
from tests.support.constants import ROOT

README = ROOT / "README.md"
CONFIG_DOC = ROOT / "docs" / "config.md"
SAMPLE = ROOT / "docs" / "nbmon.sample.toml"

OPENING = """# nbmon

```sh
make demo   # a scripted day through the whole loop in ~2 minutes: 503 storm, degraded mode, recovery (no account)
make test   # creates .venv, unpacks Debian's Prometheus tools into .tools/ (no root), ruff, mypy --strict, pytest
```
"""


def test_readme_begins_with_the_two_commands() -> None:
    assert README.read_text(encoding="utf-8").startswith(OPENING)


def test_readme_says_where_the_commands_are() -> None:
    text = README.read_text(encoding="utf-8")
    assert ".venv/bin/nbmon" in text
    assert "source .venv/bin/activate" in text


def test_readme_stays_a_landing_page() -> None:
    assert len(README.read_text(encoding="utf-8")) < 15_000, "move the details into docs/"


def test_config_doc_names_every_environment_variable() -> None:
    text = CONFIG_DOC.read_text(encoding="utf-8")
    variables = {*ENV_KEYS, *MODEL_ENV, CONFIG_ENV, CONFIG_FILE_ENV, DISABLE_ENV}
    missing = sorted(v for v in variables if not re.search(rf"`{v}`", text))
    assert not missing, f"docs/config.md does not name {missing}"
    for variable, key in ENV_KEYS.items():
        assert re.search(rf"`{variable}`.*`{re.escape(key)}`", text), f"docs/config.md: {variable} -> {key}"


def test_config_doc_has_a_section_per_config_section() -> None:
    text = CONFIG_DOC.read_text(encoding="utf-8")
    for section in ("listen", "source", "evaluation", "state", "admin", "log", "models", "shim", "alertmanager"):
        assert f"## `[{section}]`" in text, section
    for section in ("rules.<name>", "notify", "quota"):
        assert f"## `[{section}]`" in text, section


def test_the_sample_config_is_valid_and_holds_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBMON_SLACK_WEBHOOK_URL", "https://hooks.slack.example/services/T/B/X")
    monkeypatch.setenv("NBMON_PAGERDUTY_ROUTING_KEY", "a-routing-key")
    sample = load(SAMPLE, environ={})
    defaults = DaemonConfig()
    differ = [
        field.name
        for field in dataclasses.fields(DaemonConfig)
        if field.compare and getattr(sample, field.name) != getattr(defaults, field.name)
    ]
    # `rules` and `quota_rules` hold the tables as written; what they parse to is compared below. The channels
    # are the sample's one departure from the defaults, and say so.
    assert sorted(differ) == ["notify", "quota_rules", "rules"]
    assert sample.rule_set == defaults.rule_set
    assert quota_rules_from_mapping(sample.quota_rules) == default_quota_rules()
    assert dataclasses.replace(sample.notify, channels=()) == defaults.notify
    assert [(c.name, c.kind) for c in sample.notify.channels] == [("oncall", "slack"), ("pager", "pagerduty")]
