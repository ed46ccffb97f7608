"""Rules: selectors, validation naming the key at fault, the built-in rules and the config mapping."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from monitor.alerts import (
    CLIENT_ERROR_SPIKE,
    DEGRADED_MODE,
    QUOTA_EXHAUSTION,
    SAFETY_BLOCK_SPIKE,
    Action,
    Rule,
    Selector,
    Severity,
    default_rules,
    parse_duration,
    rules_from_mapping,
)
from monitor.config import ConfigError
from monitor.signals import Series
from tests.support.constants import FLASH, PRO


def degraded_rule() -> Rule:
    (rule,) = (r for r in default_rules(PRO, FLASH) if r.name == DEGRADED_MODE)
    return rule


@pytest.mark.parametrize(
    ("selector", "series", "matches"),
    [
        (Selector(), Series(PRO, "200", "ok"), True),
        (Selector(models=frozenset({PRO})), Series(FLASH, "200", "ok"), False),
        (Selector(models=frozenset({PRO}), codes=frozenset({"503"})), Series(PRO, "503", "overloaded"), True),
        (Selector(models=frozenset({PRO}), codes=frozenset({"503"})), Series(PRO, "500", "server_error"), False),
        (
            Selector(error_classes=frozenset({"safety_block", "policy_block"})),
            Series(FLASH, "200", "policy_block"),
            True,
        ),
    ],
)
def test_selector_matches_allowed_values_and_empty_means_any(selector: Selector, series: Series, matches: bool) -> None:
    assert selector.matches(series) is matches


def test_selector_counts_the_matching_series() -> None:
    counts = {Series(PRO, "503", "overloaded"): 3.0, Series(PRO, "200", "ok"): 7.0, Series(FLASH, "503", "x"): 100.0}
    assert Selector(models=frozenset({PRO})).count(counts) == 10.0
    assert Selector(codes=frozenset({"503"})).count(counts) == 103.0
    assert Selector(models=frozenset({"other"})).count(counts) == 0.0


def test_degraded_mode_is_the_issues_rule() -> None:
    rule = degraded_rule()
    assert rule.numerator == Selector(models=frozenset({PRO}), codes=frozenset({"503"}))
    assert rule.denominator == Selector(models=frozenset({PRO}))
    assert (rule.threshold, rule.window_s, rule.hold_s, rule.min_volume) == (0.30, 60.0, 300.0, 20)
    assert (rule.recovery_threshold, rule.recovery_hold_s, rule.probe_after_s) == (0.10, 600.0, 600.0)
    assert rule.severity is Severity.CRITICAL
    assert rule.actions == {Action.NOTIFY, Action.SET_FLAG} == {"notify", "set_flag"}
    assert rule.enabled


def test_optional_rules_are_off_notify_only_warnings() -> None:
    optional = [r for r in default_rules(PRO, FLASH) if r.name != DEGRADED_MODE]
    assert [r.name for r in optional] == [QUOTA_EXHAUSTION, CLIENT_ERROR_SPIKE, SAFETY_BLOCK_SPIKE]
    for rule in optional:
        assert not rule.enabled
        assert rule.actions == {Action.NOTIFY}
        assert rule.severity is Severity.WARNING
        assert rule.probe_after_s is None
        assert rule.denominator.models == {PRO, FLASH}
    by_name = {r.name: r for r in optional}
    assert by_name[QUOTA_EXHAUSTION].numerator.error_classes == {"quota_exhausted"}
    assert by_name[CLIENT_ERROR_SPIKE].numerator.error_classes == {
        "invalid_argument",
        "failed_precondition",
        "permission_denied",
        "not_found",
    }
    assert by_name[SAFETY_BLOCK_SPIKE].numerator.error_classes == {"safety_block", "policy_block"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"threshold": 0}, "rules.degraded-mode.threshold: must be in (0, 1]"),
        ({"threshold": 1.5}, "rules.degraded-mode.threshold: must be in (0, 1]"),
        ({"threshold": math.nan}, "rules.degraded-mode.threshold: must be in (0, 1]"),
        ({"threshold": True}, "rules.degraded-mode.threshold: must be in (0, 1]"),
        ({"recovery_threshold": 0.31}, "rules.degraded-mode.recovery_threshold: must be in (0, threshold]"),
        ({"recovery_threshold": 0}, "rules.degraded-mode.recovery_threshold: must be in (0, threshold]"),
        ({"window_s": 0}, "rules.degraded-mode.window_s: must be > 0 seconds"),
        ({"hold_s": -1}, "rules.degraded-mode.hold_s: must be >= 0 seconds"),
        ({"recovery_hold_s": math.inf}, "rules.degraded-mode.recovery_hold_s: must be >= 0 seconds"),
        ({"probe_after_s": 0}, "rules.degraded-mode.probe_after_s: must be > 0 seconds"),
        ({"min_volume": 0}, "rules.degraded-mode.min_volume: must be an integer >= 1"),
        ({"min_volume": 2.5}, "rules.degraded-mode.min_volume: must be an integer >= 1"),
        ({"severity": "loud"}, "rules.degraded-mode.severity: must be one of critical, warning, info"),
        ({"actions": frozenset({"page"})}, "rules.degraded-mode.actions: must be a set drawn from notify, set_flag"),
        ({"enabled": "yes"}, "rules.degraded-mode.enabled: must be true or false"),
        ({"name": "Degraded Mode"}, "rules.Degraded Mode.name: must be lowercase"),
        ({"numerator": "503"}, "rules.degraded-mode.numerator: must be a Selector"),
    ],
)
def test_invalid_rules_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        replace(degraded_rule(), **changes)
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_rule_normalises_severity_and_actions_given_as_strings() -> None:
    rule = replace(degraded_rule(), severity="info", actions=["notify"])  # type: ignore[arg-type]
    assert rule.severity is Severity.INFO
    assert rule.actions == frozenset({Action.NOTIFY})
    assert replace(degraded_rule(), probe_after_s=None).probe_after_s is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30.0), ("1m", 60.0), ("5m", 300.0), ("10m", 600.0), ("1h", 3600.0), ("1h30m", 5400.0), ("1.5m", 90.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "k") == seconds
    assert parse_duration(seconds, "k") == seconds


@pytest.mark.parametrize("bad", ["5", "5 minutes", "m", "-1m", "", True, None, math.inf, [60]])
def test_bad_durations_name_the_key(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"^rules\.x\.window_s: must be seconds or a duration"):
        parse_duration(bad, "rules.x.window_s")


def test_mapping_overrides_the_defaults_and_parses_durations() -> None:
    rules = rules_from_mapping(
        {DEGRADED_MODE: {"window_s": "5m", "hold_s": 120, "recovery_hold_s": "1h", "probe_after_s": "30s"}}
    )
    (rule,) = rules  # the optional rules stay off
    assert (rule.window_s, rule.hold_s, rule.recovery_hold_s, rule.probe_after_s) == (300.0, 120.0, 3600.0, 30.0)
    assert rule.threshold == 0.30  # untouched fields keep the default


def test_mapping_switches_optional_rules_on_and_the_default_off() -> None:
    rules = rules_from_mapping({QUOTA_EXHAUSTION: {"enabled": True}, DEGRADED_MODE: {"enabled": False}})
    assert [r.name for r in rules] == [QUOTA_EXHAUSTION]
    assert rules_from_mapping({}) == (degraded_rule(),)


def test_mapping_uses_the_configured_models() -> None:
    (rule,) = rules_from_mapping({}, primary_model="pro-2", fallback_model="flash-2")
    assert rule.denominator.models == {"pro-2"}
    (quota,) = rules_from_mapping(
        {QUOTA_EXHAUSTION: {"enabled": True}, DEGRADED_MODE: {"enabled": False}}, primary_model="p", fallback_model="f"
    )
    assert quota.denominator.models == {"p", "f"}


def test_mapping_defines_a_new_rule() -> None:
    rules = rules_from_mapping(
        {
            "flash-overload": {
                "numerator": {"model": FLASH, "code": [503, "529"]},
                "denominator": {"model": [FLASH]},
                "threshold": 0.5,
                "window_s": "2m",
                "severity": "info",
                "actions": ["notify"],
                "probe_after_s": False,
            }
        }
    )
    rule = rules[-1]
    assert rule.name == "flash-overload"
    assert rule.numerator == Selector(models=frozenset({FLASH}), codes=frozenset({"503", "529"}))
    assert rule.denominator == Selector(models=frozenset({FLASH}))
    assert (rule.threshold, rule.window_s, rule.severity, rule.probe_after_s) == (0.5, 120.0, Severity.INFO, None)
    assert rule.hold_s == 300.0  # Rule defaults apply


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({DEGRADED_MODE: {"threshold": 2}}, "rules.degraded-mode.threshold: must be in (0, 1]"),
        ({DEGRADED_MODE: {"window_s": "5 minutes"}}, "rules.degraded-mode.window_s: must be seconds or a duration"),
        ({DEGRADED_MODE: {"window": "5m"}}, "rules.degraded-mode.window: unknown key"),
        ({DEGRADED_MODE: {"name": "x"}}, "rules.degraded-mode.name: unknown key"),
        ({DEGRADED_MODE: "on"}, "rules.degraded-mode: must be a table"),
        ({DEGRADED_MODE: {"actions": "notify"}}, "rules.degraded-mode.actions: must be a list"),
        ({DEGRADED_MODE: {"actions": ["page"]}}, "rules.degraded-mode.actions: must be a set drawn from"),
        ({DEGRADED_MODE: {"numerator": {"status": "503"}}}, "rules.degraded-mode.numerator.status: unknown label"),
        ({DEGRADED_MODE: {"numerator": {"code": [None]}}}, "rules.degraded-mode.numerator.code: must be a string"),
        ({DEGRADED_MODE: {"denominator": "all"}}, "rules.degraded-mode.denominator: must be a table"),
        ({"mine": {"threshold": 0.5, "denominator": {}}}, "rules.mine.numerator: required"),
        ({"mine": {"numerator": {}, "denominator": {}}}, "rules.mine.threshold: required"),
        ({"Mine": {"numerator": {}, "denominator": {}, "threshold": 0.5}}, "rules.Mine.name: must be lowercase"),
        ([], "rules: must be a table"),
    ],
)
def test_mapping_errors_name_the_dotted_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        rules_from_mapping(data)
    assert str(info.value).startswith(message), str(info.value)
