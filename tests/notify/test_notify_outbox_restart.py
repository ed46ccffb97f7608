"""The outbox across a daemon restart (a real child process, SIGKILL included) and the worker thread, against a
real HTTP receiver (http.server in a thread) reached through httpx.

The child process imports this very file (not another test module) and runs `child_main`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.notify.base import Delivery, Event, Notification, Result
from monitor.notify.dispatcher import Dispatcher
from monitor.notify.outbox import Outbox
from tests.support.constants import ROOT
from tests.support.http import LoopbackServer, Reply, Request, free_port
from tests.support.wait import wait_for

CHILD = (
    "import importlib.util, sys; spec = importlib.util.spec_from_file_location('outbox_restart_child', sys.argv[1]);"
    " module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); module.child_main(sys.argv[2:])"
)
AT = datetime(2026, 5, 28, 14, 5, tzinfo=UTC)


def down_url() -> str:
    """A URL where nothing listens: the receiver is down."""
    return f"http://127.0.0.1:{free_port()}/hook"


def note(nid: str, event: Event = Event.FIRING) -> Notification:
    return Notification(
        id=nid,
        rule="image_503_ratio",
        event=event,
        severity="critical",
        title="gemini-3-pro-image entered degraded mode",
        summary="503 ratio 42.0% > 30% over 1m (126/300)",
        dedup_key="nbmon/image_503_ratio/production",
        at=AT,
    )


class HttpNotifier:
    """A minimal webhook Notifier: one POST per send, answers mapped to a Delivery, never raises."""

    def __init__(self, name: str, url: str, timeout_s: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._client = httpx.Client(timeout=timeout_s)

    def send(self, notification: Notification) -> Delivery:
        try:
            response = self._client.post(self._url, json=notification.to_dict())
        except httpx.HTTPError as error:
            return Delivery(Result.RETRY, detail=type(error).__name__)
        if response.is_success:
            return Delivery(Result.SENT)
        if response.status_code == 429 or response.status_code >= 500:
            retry_after = response.headers.get("retry-after")
            return Delivery(Result.RETRY, float(retry_after) if retry_after else None, f"HTTP {response.status_code}")
        return Delivery(Result.PERMANENT, detail=f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class Receiver:
    """A real HTTP receiver: records every JSON body; may answer slowly."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.bodies: list[dict[str, Any]] = []
        self.arrived = threading.Event()  # set as soon as a request is read, before any delay
        self.server = LoopbackServer(self._respond, poll_interval=0.05)
        self.url = f"{self.server.url}/hook"

    def _respond(self, request: Request) -> Reply:
        self.bodies.append(request.json())
        self.arrived.set()
        time.sleep(self.delay_s)
        return Reply(200)

    def ids(self) -> list[str]:
        return [body["id"] for body in self.bodies]

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"


# --- the child: a daemon that is stopped or killed ------------------------------------------------------------


def child_main(argv: list[str]) -> None:
    mode, path, url = argv
    notifier = HttpNotifier("hook", url)

    class Crashing:
        """Announces where it is on stdout, then hangs until SIGKILL: before or after the receiver got it."""

        name = "hook"

        def send(self, notification: Notification) -> Delivery:
            if mode == "kill-after-post":
                notifier.send(notification)
            print("INFLIGHT", flush=True)
            time.sleep(60)
            return Delivery(Result.SENT)

    outbox = Outbox(path)
    dispatcher = Dispatcher(outbox, {"hook": Crashing() if mode.startswith("kill") else notifier})
    dispatcher.submit(note("n1"), ["hook"])
    dispatcher.drain_once()
    print("DONE", flush=True)
    outbox.close()


def run_child(mode: str, db: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, __file__, mode, str(db), url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_child(child: subprocess.Popen[str]) -> None:
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr


def kill_child_while_inflight(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    for line in child.stdout:  # the child's own log lines may come first
        if line.strip() == "INFLIGHT":
            break
    else:
        pytest.fail(f"child ended before its attempt: {child.communicate(timeout=30)[1]}")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL


def restarted(db: Path, url: str, **options: Any) -> tuple[Outbox, Dispatcher, HttpNotifier]:
    outbox = Outbox(db)
    notifier = HttpNotifier("hook", url)
    return outbox, Dispatcher(outbox, {"hook": notifier}, **options), notifier


# --- restart ------------------------------------------------------------------------------------------------------


def test_queued_while_the_receiver_was_down_is_delivered_once_after_a_restart(db: Path, receiver: Receiver) -> None:
    finish_child(run_child("down", db, down_url()))
    outbox, dispatcher, notifier = restarted(db, receiver.url)
    (entry,) = outbox.entries()
    assert (entry.state, entry.attempts, entry.last_detail) == ("pending", 1, "ConnectError")
    later = datetime.now(UTC) + timedelta(minutes=10)
    assert outbox.recover(later.timestamp()) == 0
    assert dispatcher.drain_once(later) == 1
    assert dispatcher.drain_once(later + timedelta(hours=1)) == 0
    assert receiver.ids() == ["n1"]
    assert receiver.bodies[0] == note("n1").to_dict()
    assert [e.state for e in outbox.entries()] == ["sent"]
    notifier.close()
    outbox.close()


def test_killed_while_inflight_is_recovered_and_delivered_once(db: Path, receiver: Receiver) -> None:
    kill_child_while_inflight(run_child("kill-before-post", db, receiver.url))
    assert receiver.ids() == []
    results: list[tuple[str, Result]] = []
    outbox, dispatcher, notifier = restarted(db, receiver.url, on_result=lambda c, r: results.append((c, r)))
    assert [e.state for e in outbox.entries()] == ["inflight"]  # what the crash left behind
    dispatcher.start()  # recover(), then the worker thread
    wait_for(lambda: results == [("hook", Result.SENT)], timeout=10, interval=0.01)
    assert dispatcher.stop(timeout=10)
    assert receiver.ids() == ["n1"]
    assert [(e.state, e.attempts) for e in outbox.entries()] == [("sent", 2)]
    notifier.close()
    outbox.close()


def test_sent_before_the_restart_is_never_sent_again(db: Path, receiver: Receiver) -> None:
    finish_child(run_child("send", db, receiver.url))
    assert receiver.ids() == ["n1"]
    outbox, dispatcher, notifier = restarted(db, receiver.url)
    assert outbox.recover(time.time()) == 0
    dispatcher.submit(note("n1"), ["hook"])  # the evaluator, restarted, says the same thing again
    assert dispatcher.drain_once(datetime.now(UTC) + timedelta(hours=1)) == 0
    assert receiver.ids() == ["n1"]
    notifier.close()
    outbox.close()


def test_a_crash_between_the_receivers_ack_and_our_commit_repeats_with_the_same_dedup_key(
    db: Path, receiver: Receiver
) -> None:
    """The documented at-least-once edge: harmless for PagerDuty, whose dedup_key folds the repeat in."""
    kill_child_while_inflight(run_child("kill-after-post", db, receiver.url))
    assert receiver.ids() == ["n1"]
    outbox, dispatcher, notifier = restarted(db, receiver.url)
    assert outbox.recover(time.time()) == 1
    assert dispatcher.drain_once() == 1
    assert receiver.ids() == ["n1", "n1"]
    assert {body["dedup_key"] for body in receiver.bodies} == {"nbmon/image_503_ratio/production"}
    notifier.close()
    outbox.close()


# --- the worker thread --------------------------------------------------------------------------------------------


def test_submit_returns_at_once_while_the_receiver_is_slow_and_stop_keeps_the_rest(db: Path) -> None:
    slow = Receiver(delay_s=2.0)
    depths: list[int] = []
    outbox, dispatcher, notifier = restarted(db, slow.url, on_depth=depths.append, poll_interval_s=0.05)
    dispatcher.start()
    started = time.perf_counter()
    dispatcher.submit(note("entered"), ["hook"])
    first = time.perf_counter() - started
    assert slow.arrived.wait(10)  # the worker is now inside a 2 s send
    started = time.perf_counter()
    dispatcher.submit(note("recovered", event=Event.RESOLVED), ["hook"])
    second = time.perf_counter() - started
    assert first < 0.1 and second < 0.1, (first, second)  # our own code only: one SQLite insert each
    assert dispatcher.stop(timeout=10)  # waits for the attempt under way, starts no other
    assert slow.ids() == ["entered"]
    notifier.close()
    outbox.close()
    slow.close()
    with Outbox(db) as reopened:  # what a restarted daemon finds
        assert [(e.notification.id, e.state) for e in reopened.entries()] == [
            ("entered", "sent"),
            ("recovered", "pending"),
        ]
        assert reopened.depth() == 1
    assert depths[-1] == 1
