"""The Prometheus rules and the Alertmanager config, proven with the real programs (promtool 2.42, amtool 0.25).

The tools come from Debian's prometheus and prometheus-alertmanager packages; `make test` installs them (unpacked
into .tools/). Set NBMON_TOOLS_DIR to use another unpacked tree. A missing tool fails the test: it is never skipped.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.constants import ROOT
from tests.support.tools import amtool, promtool

ALERTS = ROOT / "alerts"
RULES = ALERTS / "nbmon.rules.yml"
RULE_TESTS = ALERTS / "nbmon.rules.test.yml"
ALERTMANAGER = ALERTS / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/nbmon/nbmon/blob/main/docs/runbook.md#"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def _alert_rules() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"] if "alert" in rule]


def test_tool_versions_are_the_debian_targets() -> None:
    prom = _run(promtool(), "--version")
    am = _run(amtool(), "--version")
    assert re.search(r"version 2\.42\.", prom.stdout + prom.stderr), prom.stdout + prom.stderr
    assert re.search(r"version 0\.25\.", am.stdout + am.stderr), am.stdout + am.stderr


def test_promtool_check_rules() -> None:
    result = _run(promtool(), "check", "rules", "--lint=all", "--lint-fatal", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 29 rules found" in result.stdout


def test_promtool_test_rules() -> None:
    result = _run(promtool(), "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_catches_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests really evaluate: expecting the page one evaluation (30s) early must fail."""
    broken = RULE_TESTS.read_text().replace("eval_time: 16m\n", "eval_time: 15m30s\n", 1)
    assert broken != RULE_TESTS.read_text()
    (tmp_path / "nbmon.rules.yml").write_text(RULES.read_text())
    (tmp_path / "broken.test.yml").write_text(broken)
    result = _run(promtool(), "test", "rules", str(tmp_path / "broken.test.yml"))
    assert result.returncode != 0, result.stdout


def test_every_group_sets_an_interval() -> None:
    rules = yaml.safe_load(RULES.read_text())
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert all("interval" in group for group in rules["groups"])
    assert all("interval" in test for test in tests["tests"])


def test_every_alert_is_documented_and_tested_firing_and_not_firing() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    runbook = RUNBOOK.read_text()
    for rule in _alert_rules():
        name = str(rule["alert"])
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict) and labels.get("severity") in {"critical", "warning"}, name
        assert isinstance(annotations, dict)
        assert {"summary", "description", "runbook_url", "dashboard"} <= annotations.keys(), name
        assert annotations["runbook_url"] == RUNBOOK_URL + name.lower(), name
        assert f"\n## {name}\n" in runbook, f"docs/runbook.md has no section for {name}"
        mine = [case for case in cases if case["alertname"] == name]
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no not-firing case"
        severities = {alert["exp_labels"]["severity"] for case in mine for alert in case["exp_alerts"]}
        assert labels["severity"] in severities, f"{name} ({labels['severity']}): no firing case"


def test_amtool_check_config() -> None:
    result = _run(amtool(), "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 receivers" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        # The page goes to PagerDuty and to the daemon's webhook (fleet mode); order is route order.
        (
            ["alertname=NbmonImage503RateHigh", "severity=critical", "model=gemini-3-pro-image"],
            "nbmon-daemon,pagerduty",
        ),
        (["alertname=NbmonImage503RateHigh", "severity=warning", "model=gemini-3-pro-image"], "slack"),
        (["alertname=NbmonQuotaExhausted", "severity=critical", "project=p"], "pagerduty"),
        (["alertname=NbmonQuotaUtilizationCritical", "severity=critical"], "pagerduty"),
        (["alertname=NbmonQuotaUtilizationHigh", "severity=warning"], "slack"),
        (["alertname=NbmonDegradedModeTooLong", "severity=warning"], "slack"),
        (["alertname=NbmonNotificationsFailing", "severity=warning", "channel=oncall"], "slack"),
        (["alertname=SomethingElse"], "slack"),
    ],
)
def test_amtool_routes(labels: list[str], receivers: str) -> None:
    result = _run(
        amtool(),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"--verify.receivers={receivers}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_amtool_routes_test_rejects_a_wrong_receiver() -> None:
    result = _run(
        amtool(),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        "--verify.receivers=slack",
        "alertname=NbmonImage503RateHigh",
        "severity=critical",
    )
    assert result.returncode == 1, result.stdout + result.stderr


def test_inhibition_mutes_only_the_slack_copy_of_the_503_alert() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    rule = next(r for r in config["inhibit_rules"] if 'severity="critical"' in r["source_matchers"])
    assert rule["source_matchers"] == ['alertname="NbmonImage503RateHigh"', 'severity="critical"']
    assert rule["target_matchers"] == ['alertname="NbmonImage503RateHigh"', 'severity="warning"']


def test_secrets_come_from_files_only() -> None:
    text = ALERTMANAGER.read_text()
    for key in ("routing_key", "api_url", "credentials"):
        assert re.search(rf"^[\s-]*{key}:", text, re.MULTILINE) is None, key
        assert re.search(rf"^[\s-]*{key}_file:", text, re.MULTILINE), key
