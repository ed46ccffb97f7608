"""`monitor.cli.main`: classify from stdin and for text-only calls, and what a command says when the extra it
needs is not installed (one line naming the extra; the traceback with NBMON_DEBUG=1)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from monitor.cli import COMMANDS, main, missing_extra

TEXT_ONLY_ANSWER = {"candidates": [{"content": {"parts": [{"text": "here is your banana"}]}, "finishReason": "STOP"}]}


def test_classify_reads_the_body_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}})
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body.encode())))
    assert main(["classify", "503", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["error_class"], result["http_code"], result["category"]) == ("overloaded", 503, "retryable")


def test_classify_a_text_only_call_does_not_miss_an_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "answer.json"
    body.write_text(json.dumps(TEXT_ONLY_ANSWER))
    assert main(["classify", "200", str(body)]) == 0
    assert json.loads(capsys.readouterr().out)["error_class"] == "no_image"
    assert main(["classify", "200", str(body), "--text-only"]) == 0
    assert json.loads(capsys.readouterr().out)["error_class"] == "ok"


@pytest.mark.parametrize(
    ("module", "command", "hint"),
    [
        ("rich", "demo", "needs rich, which the 'cli' extra installs: pip install 'nbmon[all]'"),
        ("rich.table", "quota", "needs rich.table, which the 'cli' extra installs: pip install 'nbmon[daemon,cli]'"),
        (
            "google.api_core.exceptions",
            "flag",
            "needs google.api_core.exceptions, which the 'daemon' extra installs: pip install 'nbmon[daemon]'",
        ),
        ("grpc", "run", "needs grpc, which the 'daemon' extra installs: pip install 'nbmon[daemon]'"),
        ("numpy", "run", None),  # not a package of an extra: no hint, the error is shown as it is
        ("richer", "run", None),  # a prefix is not a package
    ],
)
def test_the_hint_names_the_extra_to_install(module: str, command: str, hint: str | None) -> None:
    assert missing_extra(ModuleNotFoundError(f"No module named {module!r}", name=module), COMMANDS[command]) == hint


@pytest.fixture
def without_cloud_monitoring(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a base install looks like to `nbmon quota`: Cloud Monitoring's client is not there. The command's
    module is imported afresh, as in a new process (the original is put back after the test)."""
    monkeypatch.delitem(sys.modules, "monitor.quota.cli", raising=False)
    monkeypatch.setitem(sys.modules, "google.cloud.monitoring_v3", None)


@pytest.mark.usefixtures("without_cloud_monitoring")
def test_a_command_without_its_extra_says_which_to_install(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quota", "--project", "my-project"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "nbmon: quota: needs google.cloud.monitoring_v3, which the 'daemon' extra installs: "
        "pip install 'nbmon[daemon,cli]'\n"
    )


@pytest.mark.usefixtures("without_cloud_monitoring")
def test_nbmon_debug_shows_the_error_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBMON_DEBUG", "1")
    with pytest.raises(ModuleNotFoundError) as caught:
        main(["quota", "--project", "my-project"])
    assert caught.value.name == "google.cloud.monitoring_v3"
