"""Odd input and unclear errors (issue #15, points 3, 4, 5, 8, 9, 11, 12, 13 and 15), each proven here."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from monitor.cli import main
from monitor.daemon import config as daemon_config
from monitor.daemon.app import Daemon
from monitor.daemon.config import ConfigErrors, from_mapping
from monitor.logs import configure_logging, register_secret
from monitor.signals import Reading, Series
from tests.daemon.test_daemon_process import AppMetrics, Process, write_config
from tests.support.http import LoopbackServer, Reply, Request


def nbmon(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


# --- 11, 12: one validation, every error at once, bounded input ---------------------------------------------------


def test_check_config_refuses_what_run_refuses_and_lists_it_all(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = tmp_path / "nbmon.toml"
    config.write_text(
        f"""
[listen]
port = {port}
[source]
targets = ["http://127.0.0.1:9464/metrics", "http://127.0.0.1:9464/metrics/", "http://"]
interval = "1ms"
[rules.degraded-mode]
window_s = "5s"
threshold = 7
[rules.other-rule]
threshold = 0.5
[notify.channels.a]
kind = "slack"
[notify.channels.b]
kind = "carrier-pigeon"
"""
    )
    try:
        for command in ("check-config", "run"):
            done = nbmon(command, "--config", str(config))
            assert done.returncode == 2, (command, done.stdout, done.stderr)
            lines = done.stderr.strip().splitlines()
            for key in (
                "source.targets[2]",  # http:// names no host
                "source.interval",  # 1 ms
                "rules.degraded-mode.threshold",
                "rules.other-rule.numerator",  # a new rule without its selectors
                "notify.channels.a",  # no secret
                "notify.channels.b.kind",
            ):
                assert any(key in line for line in lines), (command, key, done.stderr)
            assert all(line.startswith("nbmon: ") for line in lines), done.stderr  # one line each, no traceback
        fixed = config.read_text().replace('interval = "1ms"', 'interval = "1s"').replace(', "http://"]', "]")
        fixed = fixed.split("[rules.degraded-mode]")[0]
        config.write_text(fixed)
        for command in ("check-config", "run"):
            done = nbmon(command, "--config", str(config))
            assert done.returncode == 2
            assert "source.targets[1]: the same target as source.targets[0]" in done.stderr
        config.write_text(fixed.replace(', "http://127.0.0.1:9464/metrics/"', ""))
        for command in ("check-config", "run"):  # the port is taken: both say so, before anything starts
            done = nbmon(command, "--config", str(config))
            assert done.returncode == 2 and f"listen.port: 127.0.0.1:{port}" in done.stderr, done.stderr
    finally:
        taken.close()


def test_a_window_shorter_than_two_scrapes_is_refused() -> None:
    with pytest.raises(ConfigErrors) as caught:
        from_mapping({"source": {"interval": "15s"}, "rules": {"degraded-mode": {"window_s": "10s"}}})
    (error,) = caught.value.errors
    assert error.key == "rules.degraded-mode.window_s" and "never have data" in error.problem


def test_absurd_values_are_refused_or_warned(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        from_mapping({"admin": {"token": "          "}, "evaluation": {"interval": "1ms"}})
    assert {e.key for e in caught.value.errors} == {"admin.token", "evaluation.interval"}
    config = from_mapping({"rules": {"degraded-mode": {"enabled": False}}, "state": {"path": str(tmp_path / "s")}})
    assert any("no enabled rule sets the degraded-mode flag" in w for w in config.warnings)
    path = tmp_path / "c.toml"
    path.write_text('[rules.degraded-mode]\nenabled = false\n[state]\npath = "s.json"\n')
    done = nbmon("check-config", "--config", str(path))
    assert done.returncode == 0 and "nbmon: warning: rules: no enabled rule" in done.stderr


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_deep_or_huge_config_files_are_one_line_errors(tmp_path: Path, suffix: str) -> None:
    deep = tmp_path / f"deep{suffix}"
    deep.write_text(("a = " if suffix == ".toml" else "a: ") + "[" * 50_000 + "]" * 50_000 + "\n")
    done = nbmon("check-config", "--config", str(deep))
    assert done.returncode == 2
    assert done.stderr.strip() == f"nbmon: config error: {deep}: nested too deeply to be a config file"
    huge = tmp_path / f"huge{suffix}"
    huge.write_text("# padding\n" * 200_000)
    done = nbmon("check-config", "--config", str(huge))
    assert done.returncode == 2 and "over 1024 KiB" in done.stderr and done.stderr.count("\n") == 1


def test_a_million_rules_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        from_mapping({"rules": {f"r{i}": {"threshold": 0.5} for i in range(1_000_000)}})
    assert [e.key for e in caught.value.errors] == ["rules"]


# --- 13: every CLI error is one line and an exit code -------------------------------------------------------------


def test_classify_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["classify", "429", str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().err.strip().startswith("nbmon: classify: cannot read")
    body = tmp_path / "b.json"
    body.write_text("{}")
    assert main(["classify", "429", str(body), "--header", "no colon here"]) == 2
    assert capsys.readouterr().err.strip() == "nbmon: classify: --header 'no colon here' is not 'Name: value'"


def test_flag_show_against_something_that_is_not_the_daemon(capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer(lambda _: Reply(200, b"<html>a web page</html>")) as server:
        assert main(["flag", "--url", server.url, "show"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not nbmon's JSON" in err


# --- 4: the admin token never goes through a proxy ------------------------------------------------------------------


def test_flag_set_never_sends_the_admin_token_through_a_proxy(tmp_path: Path) -> None:
    seen: list[str] = []

    def refuse(request: Request) -> Reply:
        seen.append(f"{request.method} {request.path} {request.headers.get('authorization')}")
        return Reply(502)

    proxy = LoopbackServer(refuse)
    app = AppMetrics()
    config = write_config(tmp_path, app.url, admin='token = "test-admin-token-0123456789"')
    daemon = Process(config)
    proxy_url = proxy.url
    try:
        env = {
            "HTTP_PROXY": proxy_url,
            "HTTPS_PROXY": proxy_url,
            "ALL_PROXY": proxy_url,
            "NO_PROXY": "",
            "NBMON_URL": daemon.url,
            "NBMON_ADMIN_TOKEN": "test-admin-token-0123456789",
        }
        done = nbmon("flag", "set", "on", "--reason", "proxy test", "--for", "5m", env=env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["value"] is True
    finally:
        daemon.stop()
        proxy.close()
        app.close()
    assert seen == []


# --- 5: the demo's log file ------------------------------------------------------------------------------------------


def test_the_demo_never_writes_its_log_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    planted = tmp_path / "demo.log.jsonl"
    planted.symlink_to(victim)
    done = nbmon("demo", "--no-live", "--day-seconds", "20", "--log-file", str(planted))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot start" in done.stderr and done.stderr.count("\n") == 1
    assert victim.read_text() == "precious\n"


def test_the_demo_logs_into_a_fresh_private_directory_by_default() -> None:
    import argparse

    from monitor.demo.args import LOG_NAME, add_arguments
    from monitor.demo.cli import settings_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    first = settings_from(parser.parse_args(["--no-live"]), io.StringIO())
    second = settings_from(parser.parse_args(["--no-live"]), io.StringIO())
    assert first.log_file.name == second.log_file.name == LOG_NAME
    assert first.log_file.parent != second.log_file.parent  # unpredictable
    assert oct(first.log_file.parent.stat().st_mode & 0o777) == oct(0o700)


# --- 3, 15: libraries' logs go through our redaction and stay quiet -----------------------------------------------


def test_library_lines_are_redacted_and_per_request_info_is_quiet() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json", stream=stream, capture_stdlib=True)
        register_secret("https://hooks.example.com/T000/B000/s3cr3tpath")
        logging.getLogger("httpx").info('HTTP Request: POST https://hooks.slack.com/services/T0/B0/XYZ "200 OK"')
        logging.getLogger("apscheduler.executors.default").info('Running job "evaluate" (scheduled at ...)')
        logging.getLogger("httpx").warning("GET http://user:pa55word@10.0.0.1:9464/metrics failed")
        logging.getLogger("somelib").error("POST https://hooks.example.com/T000/B000/s3cr3tpath -> 500")
        logging.getLogger("slack_sdk").warning("retrying https://hooks.slack.com/services/T0/B0/XYZ")
    finally:
        root.handlers[:], root.level = saved
        structlog.reset_defaults()  # configure_logging caches loggers on first use: later tests must not inherit it
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = stream.getvalue()
    assert "Running job" not in text and "HTTP Request" not in text  # INFO lines of the quiet libraries
    assert "pa55word" not in text and "s3cr3tpath" not in text and "XYZ" not in text
    assert len(lines) == 3 and all(line["event"].count("[REDACTED]") for line in lines)


def test_the_first_line_of_nbmon_run_is_listening_and_no_job_lines_follow(tmp_path: Path) -> None:
    app = AppMetrics()
    daemon = Process(write_config(tmp_path, app.url))
    try:
        import time

        time.sleep(1.5)  # several scrape and evaluation ticks
    finally:
        daemon.stop()
        app.close()
    events = [json.loads(line)["event"] for line in daemon.lines if line.startswith("{")]
    assert events[0] == "nbmon.daemon.listening", events[:3]
    text = "".join(daemon.lines)
    assert "Running job" not in text and "executed successfully" not in text and "HTTP Request" not in text


# --- 8: the daemon's own label sets are bounded, and gone series forgotten ------------------------------------------


class Churn:
    """A source whose model label changes on every read: 2,000 distinct values."""

    name = "churn"

    def __init__(self) -> None:
        self.n = 0

    def read(self) -> Reading:
        self.n += 1
        values = {Series(f"model-{self.n % 2000}-{i}", "503", "overloaded"): float(self.n) for i in range(20)}
        values[Series("gemini-3-pro-image", "200", "ok")] = float(self.n * 10)
        values[Series("gemini-3-pro-image", "7xx", "made_up")] = float(self.n)
        return Reading(at=float(self.n), values=values)


def test_churning_labels_cannot_grow_the_daemons_series(tmp_path: Path) -> None:
    churn = Churn()
    daemon = Daemon(
        daemon_config.DaemonConfig(state_path=tmp_path / "s.json", source_interval_s=1, evaluation_interval_s=1),
        source=churn,
        monotonic=lambda: float(churn.n),
    )
    sizes = []
    for _ in range(300):
        daemon.read_source()
        daemon.evaluate()
        text = daemon.metrics_exposition()[0].decode()
        sizes.append(sum(1 for line in text.splitlines() if line.startswith("nbmon_error_ratio{")))
    limit = (len(daemon.config.shim.known_models) + daemon.config.shim.max_extra_model_labels + 1) * 3
    assert max(sizes) <= limit, max(sizes)
    assert sizes[-1] <= sizes[60]  # flat, not growing
    assert "made_up" not in text and 'error_class="other"' in text  # an unknown class is `other`
