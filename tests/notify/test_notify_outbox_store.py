"""The persisted outbox on its own: SQLite file, idempotent enqueue, ordered claims, recovery, bound, pruning."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.notify.base import Event, Notification
from monitor.notify.outbox import Outbox, OutboxError

T0 = 1_780_000_000.0  # UTC epoch seconds
AT = datetime(2026, 5, 28, 14, 5, tzinfo=UTC)


def note(nid: str, rule: str = "image_503_ratio", event: Event = Event.FIRING) -> Notification:
    return Notification(
        id=nid,
        rule=rule,
        event=event,
        severity="critical",
        title=f"{rule} {event.value}",
        summary="503 ratio 42.0% > 30% over 1m (126/300)",
        dedup_key=f"nbmon/{rule}/production",
        at=AT,
        figures={"ratio": 0.42, "numerator": 126.0, "denominator": 300.0},
        links={"runbook": "https://runbooks.example/nbmon"},
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "outbox.sqlite"


@pytest.fixture
def outbox(db: Path) -> Iterator[Outbox]:
    with Outbox(db) as box:
        yield box


def states(box: Outbox) -> list[tuple[str, str, str]]:
    return [(e.channel, e.notification.id, e.state) for e in box.entries()]


def test_enqueue_is_idempotent_per_channel_and_notification(outbox: Outbox) -> None:
    first = outbox.enqueue("slack", note("n1"), T0)
    assert outbox.enqueue("slack", note("n1"), T0 + 5) == first
    other = outbox.put("pagerduty", note("n1"), T0)
    assert other.created and other.id != first
    assert not outbox.put("slack", note("n1"), T0).created
    assert states(outbox) == [("slack", "n1", "pending"), ("pagerduty", "n1", "pending")]
    (entry,) = outbox.entries(channel="slack")
    assert entry.notification == note("n1")  # the JSON round trip keeps every field
    assert (entry.attempts, entry.next_attempt_at, entry.created_at) == (0, T0, T0)


def test_claim_marks_inflight_counts_the_attempt_and_waits_until_due(outbox: Outbox) -> None:
    entry_id = outbox.enqueue("slack", note("n1"), T0)
    outbox.reschedule(entry_id, T0 + 60, "HTTP 503")
    assert outbox.claim_due(T0 + 59.9) == []
    (claimed,) = outbox.claim_due(T0 + 60)
    assert (claimed.id, claimed.state, claimed.attempts, claimed.last_detail) == (entry_id, "inflight", 1, "HTTP 503")
    assert outbox.entries()[0].state == "inflight"
    assert outbox.claim_due(T0 + 60) == []  # claimed once only


def test_claims_keep_order_per_channel_and_one_head_per_channel(outbox: Outbox) -> None:
    entered = outbox.enqueue("slack", note("entered"), T0)
    recovered = outbox.enqueue("slack", note("recovered", event=Event.RESOLVED), T0)
    paged = outbox.enqueue("pagerduty", note("entered"), T0)
    assert [e.id for e in outbox.claim_due(T0, limit=10)] == [entered, paged]
    outbox.reschedule(entered, T0 + 30, "HTTP 429")
    # "recovered" is due but the older "entered" is still pending on the same channel: it must wait.
    assert outbox.claim_due(T0 + 10) == []
    (again,) = outbox.claim_due(T0 + 30)
    assert again.id == entered and again.attempts == 2
    outbox.mark_sent(entered, T0 + 31)
    assert [e.id for e in outbox.claim_due(T0 + 31)] == [recovered]


def test_limit_bounds_a_claim(outbox: Outbox) -> None:
    for channel in ("a", "b", "c"):
        outbox.enqueue(channel, note("n1"), T0)
    assert [e.channel for e in outbox.claim_due(T0, limit=2)] == ["a", "b"]
    assert [e.channel for e in outbox.claim_due(T0, limit=2)] == ["c"]


def test_terminal_states_and_depth(outbox: Outbox) -> None:
    ids = [outbox.enqueue(ch, note("n1"), T0) for ch in ("a", "b", "c", "d", "e")]
    assert outbox.depth() == 5
    outbox.claim_due(T0, limit=2)  # a and b inflight: still counted
    assert outbox.depth() == 5
    outbox.mark_sent(ids[0], T0)
    outbox.mark_failed(ids[1], "HTTP 404")
    outbox.mark_dropped(ids[2], "retries exhausted")
    assert outbox.depth() == 2
    assert [(e.state, e.last_detail) for e in outbox.entries()[:3]] == [
        ("sent", ""),
        ("failed", "HTTP 404"),
        ("dropped", "retries exhausted"),
    ]
    assert [e.channel for e in outbox.entries(state="pending")] == ["d", "e"]


def test_recover_returns_inflight_entries_to_pending_due_now(outbox: Outbox) -> None:
    sent = outbox.enqueue("a", note("n1"), T0)
    outbox.enqueue("b", note("n1"), T0)
    later = outbox.enqueue("c", note("n1"), T0)
    outbox.claim_due(T0, limit=3)
    outbox.mark_sent(sent, T0 + 1)
    outbox.reschedule(later, T0 + 600, "HTTP 503")
    assert outbox.recover(T0 + 100) == 1
    by_channel = {e.channel: e for e in outbox.entries()}
    assert by_channel["a"].state == "sent"  # acknowledged before the "crash": never again
    assert (by_channel["b"].state, by_channel["b"].next_attempt_at) == ("pending", T0 + 100)
    assert "recovered" in by_channel["b"].last_detail
    assert (by_channel["c"].state, by_channel["c"].next_attempt_at) == ("pending", T0 + 600)  # untouched
    assert outbox.recover(T0 + 100) == 0


def test_entries_survive_reopening_the_file_in_wal_mode(db: Path) -> None:
    with Outbox(db) as box:
        entry_id = box.enqueue("slack", note("n1"), T0)
        box.claim_due(T0)
    with Outbox(db) as box:
        (entry,) = box.entries()
        assert (entry.id, entry.state, entry.attempts) == (entry_id, "inflight", 1)
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_bound_drops_the_oldest_pending_entry_of_that_channel(db: Path) -> None:
    with Outbox(db, max_pending=3) as box:
        inflight = box.enqueue("dead", note("n0"), T0)
        box.claim_due(T0)  # the entry being sent is not dropped from under the worker
        for n in range(1, 3):
            box.enqueue("dead", note(f"n{n}"), T0 + n)
        box.enqueue("alive", note("n1"), T0)
        added = box.put("dead", note("n3"), T0 + 3)
        assert added.created
        assert [e.notification.id for e in added.evicted] == ["n1"]
        assert [(e.notification.id, e.state) for e in box.entries(channel="dead")] == [
            ("n0", "inflight"),
            ("n1", "dropped"),
            ("n2", "pending"),
            ("n3", "pending"),
        ]
        assert "queue full" in box.entries(channel="dead")[1].last_detail
        assert box.put("dead", note("n3"), T0 + 4).evicted == ()  # idempotent re-enqueue drops nothing
        assert next(e.id for e in box.entries(channel="dead") if e.state != "dropped") == inflight
        assert box.entries(channel="alive")[0].state == "pending"  # other channels are not affected
        assert box.depth() == 4


def test_prune_removes_only_finished_old_entries(outbox: Outbox) -> None:
    done = [outbox.enqueue(ch, note("n1"), T0) for ch in ("a", "b", "c")]
    outbox.enqueue("d", note("n1"), T0)  # pending: kept whatever its age
    outbox.enqueue("e", note("n1"), T0 + 100)
    outbox.claim_due(T0 + 100, limit=5)
    outbox.mark_sent(done[0], T0)
    outbox.mark_failed(done[1], "HTTP 400")
    outbox.mark_dropped(done[2], "gave up")
    newer = outbox.enqueue("a", note("n2"), T0 + 100)
    outbox.claim_due(T0 + 100)
    outbox.mark_sent(newer, T0 + 100)
    assert outbox.prune(T0 + 50) == 3
    assert [(e.channel, e.notification.id) for e in outbox.entries()] == [("d", "n1"), ("e", "n1"), ("a", "n2")]


def test_an_unreadable_row_is_failed_instead_of_blocking_its_channel(db: Path, outbox: Outbox) -> None:
    bad = outbox.enqueue("slack", note("n1"), T0)
    good = outbox.enqueue("slack", note("n2"), T0)
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE entries SET notification = '{\"id\": 1}' WHERE id = ?", (bad,))
    raw.close()
    assert [e.id for e in outbox.claim_due(T0)] == []  # the bad head is failed, the next is not yet the head
    assert [e.id for e in outbox.claim_due(T0)] == [good]
    assert outbox.entries(state="failed") == []  # left out of the listing, which must not crash on it
    with sqlite3.connect(db) as raw:
        row = raw.execute("SELECT state, last_detail FROM entries WHERE id = ?", (bad,)).fetchone()
    raw.close()
    assert row == ("failed", "unreadable notification in the outbox")


def test_a_file_that_is_not_a_database_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"this is not an SQLite database, it is a leftover\n" * 100)
    with pytest.raises(OutboxError, match=r"outbox\.sqlite") as caught:
        Outbox(path)
    assert caught.value.path == path


def test_a_foreign_or_newer_database_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as raw:
        raw.execute("CREATE TABLE things (x)")
    raw.close()
    with pytest.raises(OutboxError, match=r"foreign\.sqlite.*not an outbox"):
        Outbox(foreign)
    newer = tmp_path / "newer.sqlite"
    with Outbox(newer):
        pass
    with sqlite3.connect(newer) as raw:
        raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(OutboxError, match="schema version 99"):
        Outbox(newer)


def test_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="cannot open"):
        Outbox(tmp_path / "missing" / "outbox.sqlite")


def test_a_write_to_a_closed_outbox_is_an_outbox_error(db: Path) -> None:
    box = Outbox(db)
    box.close()
    with pytest.raises(OutboxError, match=r"outbox\.sqlite"):
        box.enqueue("slack", note("n1"), T0)


def test_a_damaged_page_inside_a_valid_file_is_refused_at_start(db: Path) -> None:
    with Outbox(db) as box:
        for n in range(200):  # several pages of rows and index
            box.enqueue("slack", note(f"n{n:03}"), T0)
    data = bytearray(db.read_bytes())  # closing checkpointed the WAL into the main file
    page = 4096
    assert len(data) > 4 * page
    data[2 * page : 3 * page] = b"\xa5" * page  # the header still says "SQLite format 3"
    db.write_bytes(bytes(data))
    with pytest.raises(OutboxError, match=r"outbox\.sqlite"):
        Outbox(db)
