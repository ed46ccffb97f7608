"""Delivers the outbox: one background worker, bounded retries with backoff, order kept per channel.

`submit` is all the evaluator ever calls: one SQLite insert per channel, then it returns; the worker thread does
the sending. Each attempt produces exactly one `on_result(channel, result)`: sent, retried (another attempt is
scheduled), failed_permanent (the receiver refused it, or the channel is unknown) or dropped (the retries are
exhausted, or the per-channel queue bound pushed it out). Logs carry the channel, rule, result and detail only,
never the notification's text, URLs or keys.

One worker sends one entry at a time, so a slow receiver delays the others by at most its notifier's timeout.
Run one Dispatcher per outbox file: `start()` recovers whatever is in flight, at-least-once (see outbox.py).
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import structlog

from monitor import _safety
from monitor.notify.base import Delivery, Notification, Notifier, Result
from monitor.notify.memory_outbox import MemoryOutbox
from monitor.notify.outbox import Entry, Outbox

_log = structlog.get_logger("nbmon.notify")
_MAX_RETRY_AFTER_S = 3600.0  # a receiver asking for more than an hour is more likely wrong than right
_COMPONENT = "notify"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    """Sends what `submit` put in the `outbox` through `notifiers` (channel name -> Notifier)."""

    def __init__(
        self,
        outbox: Outbox,
        notifiers: Mapping[str, Notifier],
        *,
        max_attempts: int = 8,
        initial_backoff_s: float = 2.0,
        max_backoff_s: float = 300.0,
        jitter: float = 0.2,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        on_result: Callable[[str, Result], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        on_persist: Callable[[bool, str], None] | None = None,
        poll_interval_s: float = 0.5,
    ) -> None:
        """`on_persist(ok, detail)`: called when the outbox stops accepting writes, and when it accepts them again."""
        if max_attempts < 1:
            raise ValueError("Dispatcher.max_attempts: must be >= 1")
        # A positive delay guarantees drain_once ends: a rescheduled entry is never due again at the same `now`.
        if not 0 < initial_backoff_s <= max_backoff_s:
            raise ValueError("Dispatcher: 0 < initial_backoff_s <= max_backoff_s is required")
        if not 0 <= jitter < 1:
            raise ValueError("Dispatcher.jitter: must be in [0, 1)")
        if poll_interval_s <= 0:
            raise ValueError("Dispatcher.poll_interval_s: must be > 0")
        self.outbox = outbox
        self.notifiers = dict(notifiers)
        self.max_attempts = max_attempts
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.jitter = jitter
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._on_result = on_result
        self._on_depth = on_depth
        self._on_persist = on_persist
        self.memory = MemoryOutbox()  # what the outbox could not save: still delivered, from memory
        self.persist_error: str | None = None  # set while the outbox refuses writes
        # Entries held in memory move into the outbox before any newer one is written there: per-channel order.
        self._order = threading.Lock()
        self._failing: set[str] = set()  # channels in a streak of permanent failures: logged once per streak
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the evaluator's side --------------------------------------------------------------------------------

    def submit(self, notification: Notification, channels: Iterable[str]) -> list[int]:
        """Persist one entry per channel and return their ids at once; the worker sends them.

        Never raises into the evaluator. If the outbox cannot be written (disk full, read-only), the entry is held
        in memory and still sent (counted `unpersisted`; negative ids), and the failure is reported once per streak.
        """
        ids: list[int] = []
        now = self._epoch(None)
        with self._order:
            self._repersist_locked(None)
            for channel in dict.fromkeys(channels):  # a channel listed twice is one delivery
                self._submit_one(notification, channel, now, ids)
        self._depth()
        self._wake.set()
        return ids

    def _submit_one(self, notification: Notification, channel: str, now: float, ids: list[int]) -> None:
        if self.persist_error is None or not self.memory.depth():
            try:
                added = self.outbox.put(channel, notification, now)
            except Exception as error:  # noqa: BLE001 - evaluation must go on; the page must still go out
                self._persist_failed(error)
            else:
                self._persist_ok()
                ids.append(added.id)
                for evicted in added.evicted:
                    _log.warning(
                        "nbmon.notify.dropped", channel=channel, rule=evicted.notification.rule, detail="queue full"
                    )
                    self._result(channel, Result.DROPPED)
                return
        # Not saved (or older entries still wait in memory): held in memory, sent from there, counted.
        entry, dropped = self.memory.put(channel, notification, now)
        ids.append(entry.id)
        self._result(channel, Result.UNPERSISTED)
        if dropped is not None:
            self._log_outcome("nbmon.notify.dropped", dropped, Result.DROPPED, "memory queue full")
            self._result(dropped.channel, Result.DROPPED)

    # --- the worker ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover entries a crash left in flight (at-least-once), then send in a background thread. Idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        recovered = self.outbox.recover(self._epoch(None))
        if recovered:
            _log.warning("nbmon.notify.recovered", entries=recovered, detail="in flight at the last stop")
        self._depth()
        self._thread = threading.Thread(target=self._run, name="nbmon-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Finish the attempt under way, leave the rest pending in the outbox. True if the worker has ended."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._drain(None, self._stop)
            self._wake.wait(self.poll_interval_s)
            self._wake.clear()

    def drain_once(self, now: datetime | None = None) -> int:
        """Attempt every entry due at `now` (default: the clock, read at each attempt), one at a time, in order.

        Synchronous: no thread, no sleep, so tests drive it with a virtual clock. Returns the number of attempts.
        (The worker runs the same loop and leaves it after the current attempt once `stop()` is called.)
        """
        return self._drain(now, None)

    def _drain(self, now: datetime | None, stop: threading.Event | None) -> int:
        """The persisted outbox first (older entries), then the memory one; a failing outbox never stops the
        memory entries, and its own entries wait for the disk."""
        self._repersist(now)
        attempts = 0
        for store in (self.outbox, self.memory):
            while stop is None or not stop.is_set():
                # one at a time, so that stop() leaves everything but the attempt under way pending
                try:
                    claimed = store.claim_due(self._epoch(now), limit=1)
                    if not claimed:
                        break
                    self._attempt(store, claimed[0], now)
                except Exception as error:  # noqa: BLE001 - e.g. a full disk under the outbox: reported, retried
                    self._persist_failed(error)
                    break
                attempts += 1
        return attempts

    def _repersist(self, now: datetime | None) -> None:
        with self._order:
            self._repersist_locked(now)

    def _repersist_locked(self, now: datetime | None) -> None:
        """Once the outbox takes writes again, what waits in memory moves into it (and survives a restart)."""
        if self.persist_error is None or not self.memory.depth():
            return
        waiting = self.memory.take_pending()
        if not waiting:
            return  # only entries in flight: nothing written, so nothing learnt about the disk
        for index, entry in enumerate(waiting):
            try:
                self.outbox.put(entry.channel, entry.notification, self._epoch(now))
            except Exception:  # noqa: BLE001 - still failing: the rest go back to memory, tried on the next round
                for back in waiting[index:]:
                    self.memory.put(back.channel, back.notification, back.created_at)
                return
        self._persist_ok()

    # --- one attempt -----------------------------------------------------------------------------------------

    def _attempt(self, store: Outbox | MemoryOutbox, entry: Entry, now: datetime | None) -> None:
        delivery = self._send(entry)
        at = self._epoch(now)  # read after the send: a slow receiver must not shorten the backoff
        result = delivery.result
        if result is Result.SENT:
            store.mark_sent(entry.id, at)
            self._failing.discard(entry.channel)  # the streak is over: the next permanent failure is logged again
            _log.info("nbmon.notify.sent", channel=entry.channel, rule=entry.notification.rule, attempts=entry.attempts)
        elif result is Result.RETRY and entry.attempts < self.max_attempts:
            store.reschedule(entry.id, at + self._delay(entry.attempts, delivery.retry_after_s), delivery.detail)
        elif result is Result.PERMANENT:
            store.mark_failed(entry.id, delivery.detail)
            if entry.channel not in self._failing:
                self._failing.add(entry.channel)
                self._log_outcome("nbmon.notify.failed", entry, result, delivery.detail)
        else:  # retries exhausted, or the notifier itself gave up
            result = Result.DROPPED
            store.mark_dropped(entry.id, delivery.detail)
            self._log_outcome("nbmon.notify.dropped", entry, result, delivery.detail)
        self._result(entry.channel, result)
        self._depth()

    def _send(self, entry: Entry) -> Delivery:
        notifier = self.notifiers.get(entry.channel)
        if notifier is None:
            return Delivery(Result.PERMANENT, detail="unknown channel: no notifier configured under this name")
        try:
            delivery = notifier.send(entry.notification)
            if not isinstance(delivery, Delivery):
                raise TypeError(f"{type(notifier).__name__}.send returned {type(delivery).__name__}, not a Delivery")
        except Exception as error:  # noqa: BLE001 - the protocol says never raise; a bug must not lose the entry
            _safety.report_internal_error(_COMPONENT, error, None)
            return Delivery(Result.RETRY, detail=f"notifier raised {type(error).__name__}")
        return delivery

    def _epoch(self, now: datetime | None) -> float:
        return (now if now is not None else self._clock()).timestamp()

    def _delay(self, attempts: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter, capped; never shorter than what the receiver asked for."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** min(attempts - 1, 60))
        backoff = min(self.max_backoff_s, base * (1.0 + self._rng.uniform(-self.jitter, self.jitter)))
        if retry_after_s is not None and math.isfinite(retry_after_s):
            return max(backoff, min(retry_after_s, _MAX_RETRY_AFTER_S))
        return backoff

    # --- reporting -------------------------------------------------------------------------------------------

    def _log_outcome(self, event: str, entry: Entry, result: Result, detail: str) -> None:
        log = _log.error if result is Result.PERMANENT else _log.warning
        log(event, channel=entry.channel, rule=entry.notification.rule, result=result.value, detail=detail)

    def _result(self, channel: str, result: Result) -> None:
        if self._on_result is not None:
            with _safety.guarded(_COMPONENT):  # a broken metric must not stop deliveries
                self._on_result(channel, result)

    def depth(self) -> int:
        """Unfinished entries, persisted or held in memory (the outbox's own count when it can be read)."""
        try:
            persisted = self.outbox.depth()
        except Exception:  # noqa: BLE001 - an unreadable outbox: its entries are not countable, memory still is
            persisted = 0
        return persisted + self.memory.depth()

    def _depth(self) -> None:
        if self._on_depth is not None:
            with _safety.guarded(_COMPONENT):
                self._on_depth(self.depth())

    def _persist_failed(self, error: Exception) -> None:
        detail = str(error)
        if self.persist_error is None:  # once per failure streak
            _log.error("nbmon.notify.persist_failed", path=str(self.outbox.path), detail=detail)
            self._persisted(False, detail)
        self.persist_error = detail

    def _persist_ok(self) -> None:
        if self.persist_error is not None:
            self.persist_error = None
            _log.warning("nbmon.notify.persist_recovered", path=str(self.outbox.path))
            self._persisted(True, "")

    def _persisted(self, ok: bool, detail: str) -> None:
        if self._on_persist is not None:
            with _safety.guarded(_COMPONENT):
                self._on_persist(ok, detail)
