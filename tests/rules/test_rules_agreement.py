"""The daemon's evaluator and the Prometheus rule agree: fed the same synthetic series, both fire the
degraded-mode decision within one Prometheus evaluation interval (30 s) of each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from monitor.alerts import CounterWindow, Evaluator, State, default_rules
from monitor.signals import Reading, Series
from tests.support.constants import FLASH, PRO, ROOT
from tests.support.tools import promtool

STEP = 15  # seconds between samples, as a scrape every 15 s
OUTAGE_AT = 150  # seconds: from here half of the primary's requests are 503s
STEPS = 80  # 20 minutes
OK, FAIL = Series(PRO, "200", "ok"), Series(PRO, "503", "overloaded")


def cumulative() -> tuple[list[int], list[int]]:
    """25 requests per 15 s; from OUTAGE_AT on, 13 of them are 503s."""
    ok, fail, good, bad = [], [], 0, 0
    for i in range(STEPS + 1):
        ok.append(good)
        fail.append(bad)
        if i * STEP >= OUTAGE_AT:
            good, bad = good + 12, bad + 13
        else:
            good += 25
    return ok, fail


def daemon_fires_at() -> float:
    rule = default_rules(PRO, FLASH)[0]
    evaluator, window = Evaluator([rule]), CounterWindow(max_age_s=900)
    ok, fail = cumulative()
    for i in range(STEPS + 1):
        now = float(i * STEP)
        window.add(Reading(at=now, values={OK: float(ok[i]), FAIL: float(fail[i])}))
        evaluator.evaluate(now, {rule.window_s: window.counts(rule.window_s, now)})
        if evaluator.state(rule.name).state is State.FIRING:
            return now
    raise AssertionError("the daemon never fired")


def prometheus_fires_at(tmp_path: Path) -> float:
    ok, fail = cumulative()
    labels = f'model="{PRO}"'
    for at in range(300, STEPS * STEP, 30):  # Prometheus evaluates every 30 s
        case = {
            "rule_files": [str(ROOT / "alerts" / "nbmon.rules.yml")],
            "evaluation_interval": "30s",
            "tests": [
                {
                    "interval": f"{STEP}s",
                    "input_series": [
                        {  # the role the shim and the daemon export: the rule names no model
                            "series": f'nbmon_model_info{{{labels},role="primary",family="Nano Banana Pro"}}',
                            "values": f"1x{STEPS}",
                        },
                        {
                            "series": f'nbmon_requests_total{{{labels},code="200",error_class="ok"}}',
                            "values": " ".join(map(str, ok)),
                        },
                        {
                            "series": f'nbmon_requests_total{{{labels},code="503",error_class="overloaded"}}',
                            "values": " ".join(map(str, fail)),
                        },
                    ],
                    "alert_rule_test": [
                        {"eval_time": f"{at}s", "alertname": "NbmonImage503RateHigh", "exp_alerts": []}
                    ],
                }
            ],
        }
        path = tmp_path / f"case_{at}.yml"
        path.write_text(yaml.safe_dump(case))
        done = subprocess.run([promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False)
        if 'severity="critical"' in done.stdout + done.stderr:  # the page (not the warning copy) is firing
            return float(at)
    raise AssertionError("Prometheus never fired")


def test_daemon_and_prometheus_fire_within_one_evaluation_interval(tmp_path: Path) -> None:
    daemon_at, prometheus_at = daemon_fires_at(), prometheus_fires_at(tmp_path)
    print(f"outage at {OUTAGE_AT}s: daemon fires at {daemon_at:.0f}s, Prometheus at {prometheus_at:.0f}s")
    assert abs(daemon_at - prometheus_at) <= 30, (daemon_at, prometheus_at)
    assert daemon_at >= OUTAGE_AT + 300  # both honour the 5 minute hold
