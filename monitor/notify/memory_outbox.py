"""The outbox of last resort: entries the persisted outbox could not write, held and delivered from memory.

When the disk is full or the data directory is read-only, a page must still go out. The dispatcher puts what the
SQLite outbox refused here and drains both; what waits here is lost on a crash (it is counted as `unpersisted` and
the daemon's /readyz says so), and moves back into the persisted outbox as soon as it accepts writes again.
Same contract as `Outbox` for what the dispatcher uses; bounded; thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import replace

from monitor.notify.base import Notification
from monitor.notify.outbox import Entry, State

MAX_ENTRIES = 1000


class MemoryOutbox:
    """Unfinished entries only: a finished entry is forgotten (there is no file to keep it in)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[int, Entry] = {}
        self._next_id = -1  # negative ids never collide with the persisted outbox's

    def put(self, channel: str, notification: Notification, now: float) -> tuple[Entry, Entry | None]:
        """(the new entry, the oldest entry dropped to keep the bound, if any)."""
        with self._lock:
            for entry in self._entries.values():
                if entry.channel == channel and entry.notification.id == notification.id:
                    return entry, None
            evicted = None
            if len(self._entries) >= self.max_entries:
                evicted = self._entries.pop(min(self._entries, key=lambda i: self._entries[i].created_at))
            entry = Entry(self._next_id, channel, notification, 0, now, now, "pending", "unpersisted")
            self._entries[entry.id] = entry
            self._next_id -= 1
            return entry, evicted

    def claim_due(self, now: float, limit: int = 100) -> list[Entry]:
        """The oldest due pending entry of each channel that has nothing in flight, marked inflight."""
        claimed: list[Entry] = []
        with self._lock:
            ordered = sorted(self._entries.values(), key=lambda e: (e.created_at, -e.id))
            busy = {e.channel for e in ordered if e.state == "inflight"}
            for entry in ordered:
                if len(claimed) >= limit:
                    break
                if entry.channel in busy:
                    continue
                busy.add(entry.channel)  # only the head of a channel: order is kept per channel
                if entry.next_attempt_at > now:
                    continue
                taken = replace(entry, state="inflight", attempts=entry.attempts + 1)
                self._entries[entry.id] = taken
                claimed.append(taken)
        return claimed

    def mark_sent(self, entry_id: int, now: float) -> None:
        self._finish(entry_id)

    def mark_failed(self, entry_id: int, detail: str) -> None:
        self._finish(entry_id)

    def mark_dropped(self, entry_id: int, detail: str) -> None:
        self._finish(entry_id)

    def reschedule(self, entry_id: int, next_attempt_at: float, detail: str) -> None:
        with self._lock:
            entry = self._entries.get(entry_id)
            if entry is not None:
                self._entries[entry_id] = replace(
                    entry, state="pending", next_attempt_at=next_attempt_at, last_detail=detail
                )

    def take_pending(self) -> list[Entry]:
        """Remove and return the entries not in flight, oldest first (to move them into the persisted outbox)."""
        with self._lock:
            pending = sorted((e for e in self._entries.values() if e.state == "pending"), key=lambda e: e.created_at)
            for entry in pending:
                del self._entries[entry.id]
            return pending

    def depth(self) -> int:
        with self._lock:
            return len(self._entries)

    def entries(self, *, channel: str | None = None, state: State | None = None) -> list[Entry]:
        with self._lock:
            return [
                e
                for e in sorted(self._entries.values(), key=lambda e: e.created_at)
                if (channel is None or e.channel == channel) and (state is None or e.state == state)
            ]

    def _finish(self, entry_id: int) -> None:
        with self._lock:
            self._entries.pop(entry_id, None)
