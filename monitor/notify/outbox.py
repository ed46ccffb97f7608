"""The persisted notification outbox: a queue in SQLite that survives a daemon restart, even `kill -9`.

Delivery is at-least-once. An entry is `inflight` from `claim_due` until the attempt's outcome is committed;
`recover()` at start puts entries a crash left `inflight` back to `pending`, because nothing tells us whether the
receiver got them. So a notification is repeated only if the crash fell between the receiver's acknowledgement and
our commit: harmless for PagerDuty (the stable `dedup_key` folds it into the same incident), a possible duplicate
Slack message. An entry committed as `sent` is never sent again, and enqueueing the same (channel, notification.id)
again is a no-op for as long as its row is kept (see `prune`).

One connection guarded by a lock; WAL mode and `synchronous=FULL` so that a committed `sent` survives power loss.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from monitor.notify.base import Notification

State = Literal["pending", "inflight", "sent", "failed", "dropped"]
STATES: tuple[State, ...] = ("pending", "inflight", "sent", "failed", "dropped")
SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    notification_id TEXT NOT NULL,
    notification TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    last_detail TEXT NOT NULL DEFAULT '',
    UNIQUE (channel, notification_id)
);
CREATE INDEX IF NOT EXISTS entries_by_state ON entries (state, channel, id);
PRAGMA user_version = {SCHEMA_VERSION};
"""
# The head of a channel is its oldest unfinished entry; only the head may be claimed, so order is kept per channel.
_CLAIM = """
SELECT id, channel, notification, attempts, next_attempt_at, created_at, state, last_detail FROM entries AS e
WHERE e.state = 'pending' AND e.next_attempt_at <= ?
  AND e.id = (SELECT MIN(h.id) FROM entries AS h WHERE h.channel = e.channel AND h.state IN ('pending', 'inflight'))
ORDER BY e.id LIMIT ?
"""


class OutboxError(Exception):
    """The outbox database cannot be opened, read or written; `path` names the file."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"notification outbox {path}: {message}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Entry:
    """One notification for one channel. Times are UTC epoch seconds; `attempts` counts claims, crashes included."""

    id: int
    channel: str
    notification: Notification
    attempts: int
    next_attempt_at: float
    created_at: float
    state: State
    last_detail: str


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What `put` did: the entry id, whether it is new, and the entries dropped to keep the bound."""

    id: int
    created: bool
    evicted: tuple[Entry, ...] = ()


class Outbox:
    """A bounded, persisted queue of (channel, notification) entries. Thread-safe; all times are passed in.

    `max_pending` bounds the unfinished (pending + inflight) entries of each channel: enqueueing beyond it drops
    that channel's oldest pending entry, so a dead receiver cannot grow the file forever.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_pending: int = 1000,
        connect: Callable[[Path], sqlite3.Connection] | None = None,
    ) -> None:
        """`connect(path)` opens the database (the default); tests inject one whose writes fail (disk full)."""
        if max_pending < 1:
            raise ValueError("Outbox.max_pending: must be >= 1")
        self.path = Path(path)
        self.max_pending = max_pending
        self._lock = threading.Lock()
        try:
            _create_private(self.path)
            self._db = (connect or _connect)(self.path)
        except (sqlite3.Error, OSError) as error:
            raise OutboxError(self.path, f"cannot open: {error}") from error
        try:
            self._open()
        except sqlite3.Error as error:
            self._db.close()
            raise OutboxError(self.path, f"not a readable outbox database ({error})") from error
        except OutboxError:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        integrity = db.execute("PRAGMA quick_check").fetchone()[0]  # fails fast on a corrupt or foreign file
        if integrity != "ok":
            raise OutboxError(self.path, f"integrity check failed: {integrity}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise OutboxError(self.path, f"schema version {version}, expected {SCHEMA_VERSION}")
        if version == 0 and db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0]:
            raise OutboxError(self.path, "an SQLite database that is not an outbox (tables but no schema version)")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        if version == 0:
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")

    # --- writes ----------------------------------------------------------------------------------------------

    def enqueue(self, channel: str, notification: Notification, now: float) -> int:
        """Persist one entry, due at `now`; idempotent on (channel, notification.id). Returns the entry id."""
        return self.put(channel, notification, now).id

    def put(self, channel: str, notification: Notification, now: float) -> Enqueued:
        """`enqueue`, also telling whether the entry is new and which entries the bound dropped."""
        body = json.dumps(notification.to_dict(), sort_keys=True)
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM entries WHERE channel = ? AND notification_id = ?", (channel, notification.id)
            ).fetchone()
            if row is not None:
                return Enqueued(int(row[0]), created=False)
            evicted = self._evict(db, channel)
            cursor = db.execute(
                "INSERT INTO entries (channel, notification_id, notification, next_attempt_at, created_at, state)"
                " VALUES (?, ?, ?, ?, ?, 'pending')",
                (channel, notification.id, body, now, now),
            )
            return Enqueued(int(cursor.lastrowid or 0), created=True, evicted=evicted)

    def _evict(self, db: sqlite3.Connection, channel: str) -> tuple[Entry, ...]:
        (unfinished,) = db.execute(
            "SELECT COUNT(*) FROM entries WHERE channel = ? AND state IN ('pending', 'inflight')", (channel,)
        ).fetchone()
        excess = int(unfinished) - self.max_pending + 1
        if excess <= 0:
            return ()
        rows = db.execute(
            "SELECT id, channel, notification, attempts, next_attempt_at, created_at, state, last_detail FROM entries"
            " WHERE channel = ? AND state = 'pending' ORDER BY id LIMIT ?",
            (channel, excess),
        ).fetchall()
        db.executemany(
            "UPDATE entries SET state = 'dropped', last_detail = 'queue full: oldest pending entry dropped'"
            " WHERE id = ?",
            [(row[0],) for row in rows],
        )
        return tuple(entry for entry in map(_readable, rows) if entry is not None)

    def claim_due(self, now: float, limit: int = 100) -> list[Entry]:
        """Mark due entries `inflight` (and count the attempt) atomically; at most one per channel, oldest first.

        An entry whose stored notification cannot be read is marked `failed` and skipped, so it cannot block
        its channel forever.
        """
        claimed: list[Entry] = []
        with self._transaction() as db:
            for row in db.execute(_CLAIM, (now, limit)).fetchall():
                entry = _readable(row)
                if entry is None:
                    _set(db, int(row[0]), "failed", "unreadable notification in the outbox")
                    continue
                db.execute("UPDATE entries SET state = 'inflight', attempts = attempts + 1 WHERE id = ?", (entry.id,))
                claimed.append(replace(entry, attempts=entry.attempts + 1, state="inflight"))
        return claimed

    def mark_sent(self, entry_id: int, now: float) -> None:
        with self._transaction() as db:
            # next_attempt_at keeps when it was acknowledged: useful when reading the file after an incident
            db.execute(
                "UPDATE entries SET state = 'sent', last_detail = '', next_attempt_at = ? WHERE id = ?", (now, entry_id)
            )

    def reschedule(self, entry_id: int, next_attempt_at: float, detail: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE entries SET state = 'pending', next_attempt_at = ?, last_detail = ? WHERE id = ?",
                (next_attempt_at, detail, entry_id),
            )

    def mark_failed(self, entry_id: int, detail: str) -> None:
        """Permanent: the receiver refused it and retrying cannot help."""
        with self._transaction() as db:
            _set(db, entry_id, "failed", detail)

    def mark_dropped(self, entry_id: int, detail: str) -> None:
        """Given up: retries exhausted."""
        with self._transaction() as db:
            _set(db, entry_id, "dropped", detail)

    def recover(self, now: float) -> int:
        """At start: entries a crash left `inflight` become `pending`, due now. Returns how many (at-least-once)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE entries SET state = 'pending', next_attempt_at = ?,"
                " last_detail = 'recovered after a restart: may have been delivered already' WHERE state = 'inflight'",
                (now,),
            )
            return cursor.rowcount

    def prune(self, older_than: float) -> int:
        """Delete finished (sent/failed/dropped) entries created before `older_than`. Returns how many.

        A pruned notification id can be enqueued again, so keep rows longer than anything could re-submit them.
        """
        with self._transaction() as db:
            cursor = db.execute(
                "DELETE FROM entries WHERE state IN ('sent', 'failed', 'dropped') AND created_at < ?", (older_than,)
            )
            return cursor.rowcount

    # --- reads -----------------------------------------------------------------------------------------------

    def depth(self) -> int:
        """Unfinished entries (pending + inflight): the `nbmon_notification_queue_depth` gauge."""
        with self._lock:
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM entries WHERE state IN ('pending', 'inflight')"
            ).fetchone()
        return int(count)

    def entries(self, *, channel: str | None = None, state: State | None = None) -> list[Entry]:
        """Entries (optionally of one channel or state), oldest first, for diagnostics and tests.

        Rows whose notification cannot be read (claim_due marks them failed) are left out.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, channel, notification, attempts, next_attempt_at, created_at, state, last_detail"
                " FROM entries WHERE (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR state = ?2) ORDER BY id",
                (channel, state),
            ).fetchall()
        return [entry for entry in map(_readable, rows) if entry is not None]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE ... COMMIT under the lock; any SQLite error rolls back and becomes an OutboxError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                raise OutboxError(self.path, f"cannot write: {error}") from error


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does (it would use the umask): notifications carry figures and links.
    SQLite gives its -wal and -shm files the database file's permissions."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return


def _set(db: sqlite3.Connection, entry_id: int, state: State, detail: str) -> None:
    db.execute("UPDATE entries SET state = ?, last_detail = ? WHERE id = ?", (state, detail, entry_id))


def _entry(row: tuple[Any, ...]) -> Entry:
    entry_id, channel, body, attempts, next_at, created, state, detail = row
    notification = Notification.from_dict(json.loads(body))
    return Entry(
        int(entry_id), str(channel), notification, int(attempts), float(next_at), float(created), state, detail
    )


def _readable(row: tuple[Any, ...]) -> Entry | None:
    try:
        return _entry(row)
    except (ValueError, KeyError, TypeError):  # json.JSONDecodeError is a ValueError
        return None
