"""`nbmon check-config`, `nbmon run` and `nbmon flag` in this process, through `monitor.cli.main`: each error is
one line on stderr and an exit code; a success prints what the daemon holds. `flag` talks to a real daemon over
HTTP on a free loopback port (and, for the answers a daemon should never give, to a stand-in that gives them).

The process tests (test_daemon_process.py) run the same commands as a child; `run`'s start and stop are theirs."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.cli import main
from monitor.daemon import admin
from monitor.daemon.app import Daemon
from monitor.daemon.config import DaemonConfig
from monitor.daemon.http import DaemonServer
from monitor.signals import Reading
from tests.support.constants import FLASH, PRO
from tests.support.http import LoopbackServer, Reply, free_port

TOKEN = "cli-admin-token-0123456789"
TARGET = "http://127.0.0.1:9464/metrics"


def write(tmp_path: Path, body: str, name: str = "nbmon.toml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def one_line(text: str) -> str:
    assert text.count("\n") == 1 and text.endswith("\n"), text
    return text.strip()


# --- check-config --------------------------------------------------------------------------------------------------


def test_check_config_summarises_a_good_file_and_prints_its_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "var" / "state.json"
    config = write(
        tmp_path,
        f'[listen]\nport = 0\n[source]\ntargets = ["{TARGET}"]\n[state]\npath = "{state}"\n'
        "[rules.degraded-mode]\nenabled = false\n[rules.quota-exhaustion]\nenabled = true\n",
    )
    assert main(["check-config", "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    summary = one_line(out)
    assert summary.startswith("config ok: listen 127.0.0.1:0, source scrape, rules quota-exhaustion, state ")
    assert f"state {state}, models primary {PRO} fallback {FLASH} (catalog of " in summary
    assert one_line(err) == (
        "nbmon: warning: rules: no enabled rule sets the degraded-mode flag: only an override or Alertmanager can "
        "turn it on"
    )


def test_check_config_of_a_missing_file_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["check-config", "--config", str(missing)]) == 2
    assert (
        one_line(capsys.readouterr().err) == f"nbmon: config error: {missing}: cannot read: No such file or directory"
    )


def test_check_config_of_an_unknown_format_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "listen:\n  port: 0\n", name="nbmon.conf")
    assert main(["check-config", "--config", str(config)]) == 2
    assert one_line(capsys.readouterr().err).endswith("unknown format: use a .toml, .yaml or .yml file")


def test_check_config_lists_each_error_on_its_own_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, "listen:\n  port: 70000\nsource:\n  kind: nope\nlog:\n  level: LOUD\n", "bad.yaml")
    assert main(["check-config", "--config", str(config)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["config error"] * 3
    assert [line.split(": ")[2] for line in lines] == ["listen.port", "source.kind", "log.level"]


def test_check_config_refuses_what_the_machine_would_refuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write(tmp_path, f'[listen]\nport = {port}\n[state]\npath = "{blocker / "state.json"}"\n')
        assert main(["check-config", "--config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nbmon: config error: listen.port: 127.0.0.1:{port}: Address already in use",
        f"nbmon: config error: state.path: cannot create or write {blocker / 'state.json'}: its directory is not "
        "writable",
    ]


def test_check_config_reads_the_file_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, f'[listen]\nport = 0\n[state]\npath = "{tmp_path / "state.json"}"\n')
    monkeypatch.setenv("NBMON_CONFIG_FILE", str(config))
    monkeypatch.setenv("NBMON_LISTEN_HOST", "localhost")
    assert main(["check-config"]) == 0
    assert one_line(capsys.readouterr().out).startswith("config ok: listen localhost:0, ")


# --- run: everything it refuses before it starts anything -----------------------------------------------------------


def test_run_refuses_a_bad_config_before_it_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path, '[source]\ninterval = 0\n[admin]\ntoken = "short"\n')
    assert main(["run", "--config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "nbmon: config error: source.interval: must be > 0",
        "nbmon: config error: admin.token: must be at least 16 characters",
    ]


def test_run_refuses_a_taken_port_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write(tmp_path, f'[listen]\nport = {port}\n[state]\npath = "{tmp_path / "state.json"}"\n')
        assert main(["run", "--config", str(config)]) == 2
    assert (
        one_line(capsys.readouterr().err)
        == f"nbmon: cannot start: listen.port: 127.0.0.1:{port}: Address already in use"
    )
    assert not (tmp_path / "state.json").exists()


# --- flag: against a real daemon ------------------------------------------------------------------------------------


class QuietSource:
    name = "quiet"

    def read(self) -> Reading:
        return Reading(at=0.0, values={})


class Served:
    def __init__(self, tmp_path: Path) -> None:
        self.state_dir = tmp_path / "state"
        self.state_dir.mkdir()
        config = DaemonConfig(state_path=self.state_dir / "state.json", admin_token=TOKEN)
        self.daemon = Daemon(config, source=QuietSource(), registry=CollectorRegistry())
        self.errors: list[tuple[str, Exception]] = []
        self.server = DaemonServer(self.daemon, "127.0.0.1", 0, lambda path, exc: self.errors.append((path, exc)))
        self.server.start()
        self.url = self.server.url
        self.logs: list[MutableMapping[str, Any]] = []


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setenv("NBMON_ADMIN_TOKEN", TOKEN)
    monkeypatch.setenv("USER", "oncall")
    served = Served(tmp_path)
    try:
        with capture_logs() as logs:  # the daemon's log lines, kept off the CLI's stdout
            served.logs = logs
            yield served
        assert served.errors == []
    finally:
        served.server.stop()


def test_flag_set_show_and_clear(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flag", "--url", served.url, "set", "on", "--reason", "drill", "--for", "5m"]) == 0
    effective = json.loads(capsys.readouterr().out)
    assert (effective["value"], effective["source"], effective["reason"]) == (True, "override", "drill")
    assert served.daemon.store.effective().value is True

    assert main(["flag", "--url", served.url, "show"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["effective"]["value"] is True
    assert state["state"]["override"]["set_by"] == "cli:oncall"
    assert state["models"]["primary"] == PRO

    assert main(["flag", "--url", served.url, "clear"]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert cleared["value"] is False and cleared["source"] != "override"
    assert served.daemon.store.state.override is None
    events = [line["event"] for line in served.logs]
    assert events == ["nbmon.override.set", "nbmon.override.cleared"]


def test_flag_without_the_admin_token_is_refused_with_a_hint(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NBMON_ADMIN_TOKEN")
    assert main(["flag", "--url", served.url, "set", "on", "--reason", "drill"]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("nbmon: the daemon refused: HTTP 401: ") and err.endswith(" (set NBMON_ADMIN_TOKEN)")
    assert served.daemon.store.effective().value is False


def test_flag_set_with_a_bad_duration_says_what_the_daemon_said(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["flag", "--url", served.url, "set", "on", "--reason", "drill", "--for", "a while"]) == 1
    err = one_line(capsys.readouterr().err)
    assert err.startswith("nbmon: the daemon refused: HTTP 400: ") and "expires_in" in err


def test_flag_warns_when_the_daemon_could_not_save_the_change(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(served.state_dir)
    served.state_dir.write_text("the state directory is gone: a file stands in its place")
    assert main(["flag", "--url", served.url, "set", "on", "--reason", "disk full drill"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["value"] is True  # in force all the same
    assert one_line(err) == f"nbmon: warning: {admin.UNSAVED_WARNING}"
    assert "nbmon.persist.failed" in [line["event"] for line in served.logs]


# --- flag: when what answers is not the daemon, or nothing does ----------------------------------------------------


def test_flag_when_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["flag", "--url", url, "show"]) == 1
    assert one_line(capsys.readouterr().err).startswith(f"nbmon: cannot reach the daemon at {url}: ")


def test_flag_with_a_url_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flag", "--url", "daemon.local:8016", "show"]) == 1
    assert one_line(capsys.readouterr().err).startswith("nbmon: cannot reach the daemon at daemon.local:8016: ")


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (Reply(503, b"upstream connect error\n", "text/plain"), "HTTP 503: upstream connect error"),
        (Reply.json({"error": "value: must be true or false"}, 400), "HTTP 400: value: must be true or false"),
        (Reply(502), "HTTP 502: Bad Gateway"),
    ],
)
def test_flag_shows_a_refusal_in_one_line(reply: Reply, detail: str, capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer(lambda _: reply) as server:
        assert main(["flag", "--url", server.url, "clear"]) == 1
    assert one_line(capsys.readouterr().err) == f"nbmon: the daemon refused: {detail}"


def test_flag_refuses_json_that_is_not_the_daemons(capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer(lambda _: Reply.json(["not", "a", "state"])) as server:
        assert main(["flag", "--url", server.url, "show"]) == 1
    err = one_line(capsys.readouterr().err)
    assert err == f"nbmon: {server.url} answered HTTP 200 with a body that is not nbmon's JSON: is it the daemon?"
