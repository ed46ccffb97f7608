"""[pacing] parsing, the limit providers, and the pacer's guard."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.errors import ConfigError
from monitor.pacing import ConfiguredLimits, InProcessWindow, QuotaLimits, load_pacer, pacing_config_from_mapping
from monitor.quota.model import LimitStatus, QuotaReading, Window
from monitor.quota.poller import QuotaSnapshot


def test_a_good_section_parses_and_every_bad_key_is_named() -> None:
    errors: list[ConfigError] = []
    config = pacing_config_from_mapping(
        {"on_limit": "fail", "max_wait": "30s", "margin": "250ms", "limits": {"m": {"rpm": 30, "tpm": 1000}}}, errors
    )
    assert not errors and config.enabled
    assert (config.on_limit, config.max_wait_s, config.margin_s, config.limits["m"]) == (
        "fail",
        30.0,
        0.25,
        {"rpm": 30.0, "tpm": 1000.0},
    )
    pacing_config_from_mapping(
        {"on_limit": "later", "window": "0s", "limits": {"m": {"rpd": 1, "rpm": -1}}, "extra": 1}, errors
    )
    assert sorted(e.key for e in errors) == [
        "pacing.extra",
        "pacing.limits.m.rpd",
        "pacing.limits.m.rpm",
        "pacing.on_limit",
        "pacing.window",
    ]


def test_load_pacer_reads_pacing_and_fleet_of_one_file(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text('[fleet]\nproject = "p"\n\n[pacing.limits."gemini-3-pro-image"]\nrpm = 2\n')
    pacer = load_pacer(str(path), registry=CollectorRegistry())
    assert pacer is not None and isinstance(pacer.window, InProcessWindow)  # no redis_url: this process only
    assert [pacer.acquire("gemini-3-pro-image").wait_s for _ in range(3)][:2] == [0, 0]
    path.write_text("[pacing]\non_limit = 1\n")
    with pytest.raises(ConfigError, match=r"pacing\.on_limit"):
        load_pacer(str(path))
    path.write_text("[fleet]\nreplicas = 2\n")
    assert load_pacer(str(path)) is None  # no limits: nothing to pace


class _Poller:
    def __init__(self, *readings: QuotaReading) -> None:
        self.snapshot = QuotaSnapshot(readings=readings)


def _reading(metric: str, window: Window, limit: float, project: str = "p") -> QuotaReading:
    return QuotaReading(project, "generativelanguage.googleapis.com", "global", metric, "", window, 0.0, limit,
                        LimitStatus.FIXED)  # fmt: skip


def test_quota_limits_read_the_per_minute_limits_and_configured_ones_win() -> None:
    poller = _Poller(
        _reading("generativelanguage.googleapis.com/generate_requests_per_model", Window.MINUTE, 20),
        _reading("generativelanguage.googleapis.com/generate_requests_per_model_per_day", Window.DAY, 250),
        _reading("generativelanguage.googleapis.com/generate_content_input_token_count", Window.MINUTE, 1e6),
        _reading("generativelanguage.googleapis.com/generate_requests_per_model", Window.MINUTE, 5, project="other"),
    )
    assert QuotaLimits(poller, project="p").limits("any") == {"rpm": 20, "tpm": 1e6}
    configured = ConfiguredLimits({"m": {"rpm": 10}})
    assert QuotaLimits(poller, project="p", configured=configured).limits("m") == {"rpm": 10, "tpm": 1e6}


@pytest.mark.telemetry_faults
def test_a_broken_limit_provider_never_stops_a_call(registry: CollectorRegistry) -> None:
    from monitor.pacing import Pacer

    class Broken:
        def limits(self, model: str) -> dict[str, float]:
            raise RuntimeError("boom")

    decision = Pacer(Broken(), registry=registry).acquire("m")
    assert decision.admitted and decision.wait_s == 0
    assert registry.get_sample_value("nbmon_internal_errors_total", {"component": "pacing"}) == 1


def test_the_daemon_reads_the_same_pacing_section() -> None:
    from monitor.daemon.config import from_mapping

    config = from_mapping({"pacing": {"limits": {"m": {"rpm": 3}}}, "proxy": {"pace": True}})
    assert config.pacing.limits == {"m": {"rpm": 3.0}} and config.proxy is not None and config.proxy.pace


def test_the_section_sets_the_retry_and_the_estimates_and_bad_values_are_named() -> None:
    errors: list[ConfigError] = []
    config = pacing_config_from_mapping({"redis_retry": "2s", "tokens_per_image": 500, "chars_per_token": 3}, errors)
    assert not errors and (config.redis_retry_s, config.tokens_per_image, config.chars_per_token) == (2.0, 500, 3.0)
    pacing_config_from_mapping({"redis_retry": "soon", "tokens_per_image": 2.5, "chars_per_token": 0}, errors)
    assert sorted(e.key for e in errors) == ["pacing.chars_per_token", "pacing.redis_retry", "pacing.tokens_per_image"]


def test_load_pacer_uses_the_configured_estimates(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text('[pacing]\ntokens_per_image = 1000\nchars_per_token = 2\n\n[pacing.limits."m"]\ntpm = 5000\n')
    pacer = load_pacer(str(path), registry=CollectorRegistry())
    assert pacer is not None and pacer.estimate(["abcd", b"image"]) == 2 + 1000


def test_from_quota_without_a_quota_poller_or_limits_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text("[pacing]\nfrom_quota = true\n")
    with pytest.raises(ConfigError, match=r"pacing\.from_quota"):
        load_pacer(str(path))
    path.write_text('[pacing]\nfrom_quota = true\n\n[pacing.limits."m"]\nrpm = 2\n')
    assert load_pacer(str(path), registry=CollectorRegistry()) is not None  # the configured limits apply
    from monitor.daemon.config import ConfigErrors, from_mapping

    with pytest.raises(ConfigErrors, match=r"pacing\.from_quota"):
        from_mapping({"pacing": {"from_quota": True}})


def test_the_proxy_refuses_to_start_paced_at_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "nbmon.toml"
    path.write_text("[proxy]\npace = true\n\n[pacing]\nfrom_quota = true\n")
    done = subprocess.run(
        [sys.executable, "-m", "monitor", "proxy", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "pacing.from_quota" in done.stderr


def test_without_redis_each_replica_paces_at_its_share(tmp_path: Path) -> None:
    path = tmp_path / "nbmon.toml"
    path.write_text('[fleet]\nreplicas = 2\n\n[pacing.limits."m"]\nrpm = 4\n')
    pacer = load_pacer(str(path), registry=CollectorRegistry())
    assert pacer is not None
    waits = [pacer.acquire("m").wait_s for _ in range(3)]
    assert waits[:2] == [0, 0] and waits[2] > 60  # 4 / 2 replicas: the third waits for the window
    path.write_text('[fleet]\nreplicas = 3\n\n[pacing.limits."m"]\nrpm = 1\n')
    pacer = load_pacer(str(path), registry=CollectorRegistry())
    assert pacer is not None and pacer.acquire("m").wait_s == 0  # never below one a window


def test_a_wait_is_at_most_one_window_unless_configured(registry: CollectorRegistry) -> None:
    from monitor.pacing import Pacer

    now = [0.0]
    limits = ConfiguredLimits({"m": {"rpm": 1}})
    pacer = Pacer(limits, InProcessWindow(clock=lambda: now[0]), registry=registry)
    assert [pacer.acquire("m").wait_s for _ in range(2)] == [0, 61.0]
    refused = pacer.acquire("m")  # its slot would be two windows away: a batch must not reserve that far
    assert not refused.admitted and refused.retry_after_s == 122.0
    unbounded = Pacer(limits, InProcessWindow(clock=lambda: now[0]), max_wait_s=math.inf, registry=registry)
    assert [unbounded.acquire("m").wait_s for _ in range(3)] == [0, 61.0, 122.0]
    errors: list[ConfigError] = []
    assert pacing_config_from_mapping({}, errors).max_wait_s is None and not errors  # None: one window


def test_a_released_slot_is_free_again(registry: CollectorRegistry) -> None:
    from monitor.pacing import Pacer

    now = [0.0]
    pacer = Pacer(ConfiguredLimits({"m": {"rpm": 1}}), InProcessWindow(clock=lambda: now[0]), registry=registry)
    assert pacer.acquire("m").wait_s == 0
    waiting = pacer.acquire("m")
    assert waiting.wait_s == 61.0
    pacer.release(waiting)  # its caller gave up
    assert pacer.acquire("m").wait_s == 61.0  # the same slot, not the one after it
    pacer.release(pacer.acquire("x"))  # nothing to give back: no limit, no slot
