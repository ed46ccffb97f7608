"""FlagStore persistence: round trip, kill -9 survival, corrupt files, atomic writes, thread safety."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.flagstate import (
    FlagStateCorruptError,
    FlagStatePersistError,
    FlagStore,
    FlagStoreError,
    parse_state,
)
from tests.support.constants import ROOT

T0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
FIGURES = {"ratio": 0.42, "numerator": 42, "denominator": 100, "window_s": 60, "threshold": 0.3}


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith((".tmp", ".lnk"))]


def run_child(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_missing_file_starts_fresh_and_is_created(tmp_path: Path) -> None:
    path = tmp_path / "state" / "flag.json"  # the directory is created too
    store = FlagStore(path, clock=FakeClock())
    assert store.effective().value is False
    assert store.effective().since == T0
    assert json.loads(path.read_text())["degraded"] is False


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "flag.json"
    store = FlagStore(path, clock=clock)
    clock.advance(5)
    assert store.apply_transition(True, "degraded-mode", "503 ratio high", FIGURES) is True
    assert store.apply_transition(True, "degraded-mode", "still high") is False  # no change, no save
    store.set_override(False, "drill", clock.now + timedelta(hours=1), set_by="alice")
    reloaded = FlagStore(path, clock=clock)
    assert reloaded.state == store.state
    assert reloaded.snapshot() == store.snapshot()
    assert reloaded.effective().source == "override"
    assert reloaded.effective(clock.now + timedelta(hours=2)).since == T0 + timedelta(minutes=5)
    assert not temp_files(tmp_path)


def test_expire_and_clear_override_are_persisted(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "flag.json"
    store = FlagStore(path, clock=clock)
    store.set_override(True, "drill", T0 + timedelta(minutes=10), set_by="bob")
    assert store.expire_override() is False
    clock.advance(11)
    assert store.effective().value is False  # expired, whatever the file says
    assert store.expire_override() is True
    assert FlagStore(path, clock=clock).state.override is None
    store.set_override(True, "drill 2", clock.now + timedelta(minutes=10))
    assert store.clear_override(by="carol") is True
    assert store.clear_override() is False
    assert FlagStore(path, clock=clock).state.history[-1].reason == "override cleared by carol"


def test_clock_must_be_timezone_aware(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FlagStore(tmp_path / "flag.json", clock=lambda: datetime(2026, 1, 1))


CRASH_AFTER_SAVE = """
    import os, signal, sys
    from datetime import datetime, UTC
    from monitor.flagstate import FlagStore
    since = datetime(2026, 1, 15, 12, 5, tzinfo=UTC)
    store = FlagStore(sys.argv[1], clock=lambda: since)
    store.apply_transition(True, "degraded-mode", "503 ratio 0.42 > 0.30 for 300s",
                           {"ratio": 0.42, "numerator": 42, "denominator": 100, "window_s": 60, "threshold": 0.3})
    os.kill(os.getpid(), signal.SIGKILL)  # right after the save returns: no atexit, no flush, no cleanup
    print("not reached")
"""


def test_sigkill_right_after_saving_keeps_degraded(tmp_path: Path) -> None:
    path = tmp_path / "flag.json"
    child = run_child(CRASH_AFTER_SAVE, str(path))
    out, err = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, err
    assert "not reached" not in out
    restarted = FlagStore(path, clock=FakeClock(T0 + timedelta(hours=1)))
    decision = restarted.effective()
    assert decision.value is True
    assert decision.since == datetime(2026, 1, 15, 12, 5, tzinfo=UTC)
    assert decision.rule == "degraded-mode"
    assert decision.figures["ratio"] == 0.42
    assert [(e.from_, e.to) for e in restarted.state.history] == [(False, True)]


TOGGLE_FOREVER = """
    import sys
    from datetime import datetime, timedelta, UTC
    from monitor.flagstate import FlagStore
    t0 = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    store = FlagStore(sys.argv[1], clock=lambda: t0)
    i = 0
    while True:
        i += 1
        store.apply_transition(i % 2 == 1, "degraded-mode", f"t{i}", {"n": i}, t0 + timedelta(seconds=i))
        if i == 1:
            print("ready", flush=True)
"""


@pytest.mark.parametrize("delay_s", [0.0, 0.03, 0.1, 0.25])
def test_sigkill_in_the_middle_of_saves_leaves_a_complete_consistent_file(tmp_path: Path, delay_s: float) -> None:
    path = tmp_path / "flag.json"
    child = run_child(TOGGLE_FOREVER, str(path))
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    time.sleep(delay_s)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    state = FlagStore(path, clock=FakeClock()).state  # parses: never a half-written file
    last = state.history[-1]
    n = int(last.figures["n"])
    assert n >= 1
    assert state.degraded is (n % 2 == 1) is last.to
    assert state.since == T0 + timedelta(seconds=n)
    assert state.reason == f"t{n}"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b'{"degraded": tr',
        b"[]",
        b"\xff\xfe\x00",
        b'{"version": 1, "degraded": "yes"}',
        b'{"version": 99}',
    ],
)
def test_corrupt_file_is_a_clear_error_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "flag.json"
    path.write_bytes(content)
    with pytest.raises(FlagStateCorruptError) as caught:
        FlagStore(path, clock=FakeClock())
    assert str(path) in str(caught.value)
    assert "corrupt" in str(caught.value)
    assert caught.value.path == path
    assert path.read_bytes() == content  # never overwritten with a fresh, not-degraded state


def test_unreadable_path_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "flag.json"
    path.mkdir()
    with pytest.raises(FlagStoreError, match="cannot read flag state file"):
        FlagStore(path, clock=FakeClock())


def test_failed_save_keeps_the_decision_in_memory_leaves_no_temp_file_and_flush_retries(tmp_path: Path) -> None:
    path = tmp_path / "flag.json"
    store = FlagStore(path, clock=FakeClock())
    before = path.read_bytes()
    # Make the rename fail: the target is now a non-empty directory.
    path.unlink()
    path.mkdir()
    (path / "keep").write_text("x")
    with pytest.raises(FlagStatePersistError, match=str(path)):
        store.apply_transition(True, "degraded-mode", "503 ratio high", FIGURES)
    assert store.effective().value is True  # serving the right flag matters more than the file
    assert store.dirty is True
    assert not temp_files(tmp_path)
    shutil.rmtree(path)
    store.flush()
    assert store.dirty is False
    assert path.read_bytes() != before
    assert FlagStore(path, clock=FakeClock()).effective().value is True


def test_uncreatable_directory_fails_at_start(tmp_path: Path) -> None:
    dangling = tmp_path / "state"
    dangling.symlink_to(tmp_path / "gone")  # the file is missing, and its directory cannot be made
    with pytest.raises(FlagStoreError, match="cannot create the directory") as caught:
        FlagStore(dangling / "flag.json", clock=FakeClock())
    assert caught.value.path == dangling / "flag.json"


def test_stale_temp_files_from_a_dead_writer_are_removed_at_start(tmp_path: Path) -> None:
    path = tmp_path / "flag.json"
    FlagStore(path, clock=FakeClock())
    stale = tmp_path / ".flag.json.dead1234.tmp"
    fresh = tmp_path / ".flag.json.live5678.tmp"
    other = tmp_path / ".other.json.dead.tmp"
    for leftover in (stale, fresh, other):
        leftover.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    FlagStore(path, clock=FakeClock())
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still running
    assert other.exists()  # not ours


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    path = tmp_path / "flag.json"
    clock = FakeClock()
    store = FlagStore(path, clock=clock)
    errors: list[BaseException] = []
    stop = threading.Event()
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            try:
                parse_state(json.loads(path.read_bytes()))
                store.effective(T0)
                reads += 1
            except BaseException as error:
                errors.append(error)
                return

    def writer(worker: int) -> None:
        try:
            for i in range(30):
                store.apply_transition(i % 2 == 0, f"rule-{worker}", f"w{worker} i{i}", {"i": i}, T0)
                if i % 10 == 0:
                    store.set_override(True, f"w{worker}", T0 + timedelta(hours=1), T0)
                    store.clear_override(T0)
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=60)
    stop.set()
    for thread in readers:
        thread.join(timeout=60)
    assert errors == []
    assert reads > 0
    # The file holds exactly the last change.
    assert json.loads(path.read_bytes()) == store.snapshot()
    assert not temp_files(tmp_path)
