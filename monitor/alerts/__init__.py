"""Alerting for the sidecar: counter windows, rules and the pure rule evaluator (no I/O, no clock)."""

from monitor.alerts.evaluator import HISTORY_SIZE, Evaluator, RuleStatus, State, Transition
from monitor.alerts.rules import (
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
from monitor.alerts.window import CounterWindow

__all__ = [
    "CLIENT_ERROR_SPIKE",
    "DEGRADED_MODE",
    "HISTORY_SIZE",
    "QUOTA_EXHAUSTION",
    "SAFETY_BLOCK_SPIKE",
    "Action",
    "CounterWindow",
    "Evaluator",
    "Rule",
    "RuleStatus",
    "Selector",
    "Severity",
    "State",
    "Transition",
    "default_rules",
    "parse_duration",
    "rules_from_mapping",
]
