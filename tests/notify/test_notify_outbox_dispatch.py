"""The dispatcher with scripted notifiers and a virtual clock (drain_once: no thread, no sleep)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from monitor.notify.base import Delivery, Event, Notification, Result
from monitor.notify.dispatcher import Dispatcher
from monitor.notify.outbox import Outbox
from monitor.testing import InternalErrorCollector

T0 = datetime(2026, 5, 28, 14, 5, tzinfo=UTC)
SECRET_URL = "https://hooks.slack.example/services/T000/B000/SECRETSECRET"
SENT, RETRY, PERMANENT, DROPPED = Result.SENT, Result.RETRY, Result.PERMANENT, Result.DROPPED


def note(nid: str, rule: str = "image_503_ratio", event: Event = Event.FIRING) -> Notification:
    return Notification(
        id=nid,
        rule=rule,
        event=event,
        severity="critical",
        title=f"TITLE-{nid}",
        summary=f"SUMMARY-{nid}: 503 ratio 42.0% > 30% over 1m",
        dedup_key=f"nbmon/{rule}/production",
        at=T0,
        links={"dashboard": SECRET_URL},
        override_command="nbmon flag set off --reason x --for 30m",
    )


class Scripted:
    """A Notifier answering from a script (then SENT); records what it was asked to send."""

    def __init__(self, name: str, *script: Delivery | Exception | object) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[str] = []

    def send(self, notification: Notification) -> Delivery:
        self.sent.append(notification.id)
        step = self.script.pop(0) if self.script else Delivery(SENT)
        if isinstance(step, Exception):
            raise step
        return step  # type: ignore[return-value]  # a test may script a non-Delivery on purpose


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Harness:
    def __init__(self, path: Path, *notifiers: Scripted, max_pending: int = 1000, **options: object) -> None:
        self.clock = Clock()
        self.results: list[tuple[str, Result]] = []
        self.depths: list[int] = []
        self.outbox = Outbox(path, max_pending=max_pending)
        self.dispatcher = Dispatcher(
            self.outbox,
            {n.name: n for n in notifiers},
            clock=self.clock,
            rng=random.Random(7),
            on_result=lambda channel, result: self.results.append((channel, result)),
            on_depth=self.depths.append,
            **options,  # type: ignore[arg-type]
        )

    def next_at(self) -> float:
        return min(e.next_attempt_at for e in self.outbox.entries(state="pending")) - T0.timestamp()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(*notifiers: Scripted, **options: object) -> Harness:
        made.append(Harness(tmp_path / "outbox.sqlite", *notifiers, **options))  # type: ignore[arg-type]
        return made[-1]

    yield factory
    for harness in made:
        harness.outbox.close()


def test_submit_enqueues_one_entry_per_channel_and_sends_nothing_itself(make: Callable[..., Harness]) -> None:
    slack, pager = Scripted("slack"), Scripted("pagerduty")
    h = make(slack, pager)
    ids = h.dispatcher.submit(note("n1"), ["slack", "pagerduty", "slack"])
    assert len(ids) == 2 and slack.sent == pager.sent == []
    assert h.depths == [2]
    assert h.dispatcher.submit(note("n1"), ["slack"]) == ids[:1]  # idempotent: the evaluator may repeat itself
    assert h.dispatcher.drain_once() == 2
    assert (slack.sent, pager.sent) == (["n1"], ["n1"])
    assert h.results == [("slack", SENT), ("pagerduty", SENT)]
    assert h.dispatcher.drain_once(h.clock.advance(3600)) == 0


def test_order_is_kept_per_channel_while_the_head_is_retried(make: Callable[..., Harness]) -> None:
    slack = Scripted("slack", Delivery(RETRY, detail="HTTP 503"), Delivery(RETRY, detail="HTTP 503"))
    pager = Scripted("pagerduty")
    h = make(slack, pager)
    h.dispatcher.submit(note("entered"), ["slack", "pagerduty"])
    h.dispatcher.submit(note("recovered", event=Event.RESOLVED), ["slack", "pagerduty"])
    h.dispatcher.drain_once()
    assert pager.sent == ["entered", "recovered"]  # another channel's trouble does not hold PagerDuty back
    assert slack.sent == ["entered"]
    for _ in range(20):  # whatever the clock, "recovered" never overtakes "entered"
        h.dispatcher.drain_once(h.clock.advance(1))
        assert slack.sent[0] == "entered"
    assert slack.sent == ["entered", "entered", "entered", "recovered"]
    assert [e.state for e in h.outbox.entries(channel="slack")] == ["sent", "sent"]


def test_retry_after_from_the_receiver_is_honoured(make: Callable[..., Harness]) -> None:
    slack = Scripted("slack", Delivery(RETRY, retry_after_s=120, detail="HTTP 429"))
    h = make(slack)
    h.dispatcher.submit(note("n1"), ["slack"])
    assert h.dispatcher.drain_once() == 1
    assert h.next_at() == pytest.approx(120)  # longer than the 2 s backoff: the receiver wins
    assert h.outbox.entries()[0].last_detail == "HTTP 429"
    assert h.dispatcher.drain_once(h.clock.advance(119.9)) == 0
    assert h.dispatcher.drain_once(h.clock.advance(0.1)) == 1
    assert slack.sent == ["n1", "n1"]
    assert h.results == [("slack", RETRY), ("slack", SENT)]


def test_a_short_retry_after_does_not_undercut_the_backoff(make: Callable[..., Harness]) -> None:
    slack = Scripted("slack", *[Delivery(RETRY, retry_after_s=1)] * 5)
    h = make(slack, jitter=0.0)
    h.dispatcher.submit(note("n1"), ["slack"])
    h.dispatcher.drain_once()
    h.dispatcher.drain_once(h.clock.advance(2))
    h.dispatcher.drain_once(h.clock.advance(4))
    assert h.next_at() == pytest.approx(6 + 8)  # third attempt: 2 * 2**2, not the receiver's 1 s


class Extreme(random.Random):
    """Always the top (or bottom) of the jitter range."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


@pytest.mark.parametrize("rng", [random.Random(1), random.Random(2), Extreme(top=True), Extreme(top=False)])
def test_backoff_is_exponential_within_the_jitter_and_capped(rng: random.Random) -> None:
    # only the delay arithmetic: no outbox needed
    dispatcher = Dispatcher(None, {}, initial_backoff_s=2.0, max_backoff_s=300.0, jitter=0.2, rng=rng)  # type: ignore[arg-type]
    delays = [dispatcher._delay(attempt, None) for attempt in range(1, 12)]
    for attempt, delay in enumerate(delays, start=1):
        base = min(300.0, 2.0 * 2 ** (attempt - 1))
        assert base * 0.8 - 1e-9 <= delay <= min(300.0, base * 1.2) + 1e-9, (attempt, delay)
    assert max(delays) <= 300.0
    assert delays[-1] >= 240.0  # reaches the cap region (300 * 0.8)
    assert delays[5] > delays[0] * 10  # exponential, not linear


def test_backoff_has_jitter() -> None:
    dispatcher = Dispatcher(None, {}, rng=random.Random(3))  # type: ignore[arg-type]
    assert len({round(dispatcher._delay(1, None), 6) for _ in range(20)}) > 10


def test_max_attempts_then_dropped(make: Callable[..., Harness]) -> None:
    slack = Scripted("slack", *[Delivery(RETRY, detail="HTTP 500")] * 10)
    h = make(slack, max_attempts=3)
    h.dispatcher.submit(note("n1"), ["slack"])
    with capture_logs() as logs:
        for _ in range(10):
            h.dispatcher.drain_once(h.clock.advance(3600))
    assert slack.sent == ["n1"] * 3
    assert h.results == [("slack", RETRY), ("slack", RETRY), ("slack", DROPPED)]
    (entry,) = h.outbox.entries()
    assert (entry.state, entry.attempts, entry.last_detail) == ("dropped", 3, "HTTP 500")
    assert [(e["event"], e["channel"], e["result"]) for e in logs] == [("nbmon.notify.dropped", "slack", "dropped")]
    assert h.outbox.depth() == 0 and h.depths[-1] == 0


def test_permanent_failure_is_not_retried_and_logged_once_per_streak_without_secrets(
    make: Callable[..., Harness],
) -> None:
    refused = Delivery(PERMANENT, detail="HTTP 404 no_service")
    slack = Scripted("slack", refused, refused, Delivery(SENT), refused)
    h = make(slack)
    with capture_logs() as logs:
        for n in range(4):
            h.dispatcher.submit(note(f"n{n}"), ["slack"])
            h.dispatcher.drain_once(h.clock.advance(1))
        h.dispatcher.drain_once(h.clock.advance(3600))
    assert slack.sent == ["n0", "n1", "n2", "n3"]  # each refused notification tried once only
    assert [r for _, r in h.results] == [PERMANENT, PERMANENT, SENT, PERMANENT]
    assert [e.state for e in h.outbox.entries()] == ["failed", "failed", "sent", "failed"]
    failures = [e for e in logs if e["event"] == "nbmon.notify.failed"]
    assert len(failures) == 2  # once for the first streak, once again after a success
    assert failures[0] == {
        "event": "nbmon.notify.failed",
        "log_level": "error",
        "channel": "slack",
        "rule": "image_503_ratio",
        "result": "failed_permanent",
        "detail": "HTTP 404 no_service",
    }
    text = repr(logs)
    assert "SECRETSECRET" not in text and "SUMMARY-" not in text and "TITLE-" not in text


def test_unknown_channel_fails_permanently(make: Callable[..., Harness]) -> None:
    h = make(Scripted("slack"))
    h.dispatcher.submit(note("n1"), ["slack", "teams"])
    with capture_logs() as logs:
        assert h.dispatcher.drain_once() == 2
    assert sorted(h.results) == [("slack", SENT), ("teams", PERMANENT)]
    (entry,) = h.outbox.entries(channel="teams")
    assert entry.state == "failed" and "unknown channel" in entry.last_detail
    assert [e["channel"] for e in logs if e["event"] == "nbmon.notify.failed"] == ["teams"]


@pytest.mark.telemetry_faults
def test_a_raising_notifier_is_retried_and_reported(
    make: Callable[..., Harness], fail_on_swallowed_telemetry_errors: InternalErrorCollector
) -> None:
    boom = RuntimeError("notifier bug")
    slack = Scripted("slack", boom, "not a Delivery")
    h = make(slack)
    h.dispatcher.submit(note("n1"), ["slack"])
    assert h.dispatcher.drain_once() == 1
    (entry,) = h.outbox.entries()
    assert (entry.state, entry.last_detail) == ("pending", "notifier raised RuntimeError")
    h.dispatcher.drain_once(h.clock.advance(3600))
    h.dispatcher.drain_once(h.clock.advance(3600))
    assert h.results == [("slack", RETRY), ("slack", RETRY), ("slack", SENT)]
    errors = fail_on_swallowed_telemetry_errors.errors
    assert [(component, type(error)) for component, error in errors] == [
        ("notify", RuntimeError),
        ("notify", TypeError),
    ]
    assert errors[0][1] is boom


@pytest.mark.telemetry_faults
def test_broken_metric_callbacks_do_not_stop_deliveries(
    make: Callable[..., Harness], fail_on_swallowed_telemetry_errors: InternalErrorCollector
) -> None:
    slack = Scripted("slack")

    def broken(*_: object) -> None:
        raise ValueError("metric bug")

    h = make(slack)
    dispatcher = Dispatcher(h.outbox, {"slack": slack}, on_result=broken, on_depth=broken)
    dispatcher.submit(note("n1"), ["slack"])
    assert dispatcher.drain_once() == 1
    assert slack.sent == ["n1"]
    errors = fail_on_swallowed_telemetry_errors.errors
    assert len(errors) == 3 and {c for c, _ in errors} == {"notify"}  # depth, result, depth


def test_metrics_callbacks_follow_every_change(make: Callable[..., Harness]) -> None:
    slack = Scripted("slack", Delivery(RETRY), Delivery(SENT))
    pager = Scripted("pagerduty", Delivery(PERMANENT))
    h = make(slack, pager)
    h.dispatcher.submit(note("n1"), ["slack", "pagerduty"])
    assert h.depths == [2]
    h.dispatcher.drain_once()  # slack retried (still queued), pagerduty failed (gone)
    assert h.results == [("slack", RETRY), ("pagerduty", PERMANENT)]
    assert h.depths == [2, 2, 1]
    h.dispatcher.drain_once(h.clock.advance(60))
    assert h.results[-1] == ("slack", SENT)
    assert h.depths == [2, 2, 1, 0]


def test_queue_bound_drops_the_oldest_and_counts_it(make: Callable[..., Harness]) -> None:
    h = make(Scripted("slack"), max_pending=2)
    with capture_logs() as logs:
        for n in range(3):
            h.dispatcher.submit(note(f"n{n}"), ["slack"])
    assert h.results == [("slack", DROPPED)]
    assert h.depths == [1, 2, 2]
    assert [(e.notification.id, e.state) for e in h.outbox.entries()] == [
        ("n0", "dropped"),
        ("n1", "pending"),
        ("n2", "pending"),
    ]
    assert [(e["event"], e["detail"]) for e in logs] == [("nbmon.notify.dropped", "queue full")]


def test_an_outbox_that_cannot_write_still_delivers_from_memory(make: Callable[..., Harness]) -> None:
    """The disk went away: submit never raises into the evaluator, and the page still goes out, counted."""
    slack = Scripted("slack")
    persisted: list[tuple[bool, str]] = []
    h = make(slack, on_persist=lambda ok, detail: persisted.append((ok, detail)))
    h.outbox.close()
    assert h.dispatcher.submit(note("n1"), ["slack"]) == [-1]  # held in memory (negative ids)
    assert h.results == [("slack", Result.UNPERSISTED)]
    assert h.dispatcher.depth() == 1 and h.depths == [1]
    assert [ok for ok, _ in persisted] == [False]  # once per streak
    assert h.dispatcher.drain_once() == 1
    assert slack.sent == ["n1"]
    assert h.results[-1] == ("slack", SENT)
    assert h.dispatcher.depth() == 0


@pytest.mark.parametrize(
    "options",
    [{"max_attempts": 0}, {"initial_backoff_s": 0.0}, {"max_backoff_s": 1.0}, {"jitter": 1.0}, {"poll_interval_s": 0}],
)
def test_settings_that_could_spin_or_never_send_are_refused(tmp_path: Path, options: dict[str, float]) -> None:
    with Outbox(tmp_path / "outbox.sqlite") as box, pytest.raises(ValueError, match="Dispatcher"):
        Dispatcher(box, {}, **options)  # type: ignore[arg-type]
