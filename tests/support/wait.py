"""Polling until something holds: the one helper every test that waits on a thread, a process or a server uses."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Call `predicate` every `interval` seconds until it is truthy; fail the test after `timeout` seconds.

    The predicate may itself assert (a child process that died, say): its AssertionError ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
