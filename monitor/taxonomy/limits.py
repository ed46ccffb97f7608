"""A tier drop, seen from the 429s themselves: a quota's limit (quotaValue) lower than the last one seen.

Google says a tier drop arrives as an ordinary quota 429 whose limits are lower, so no single body tells it; two
do. State, but no I/O: the shim keeps one per process.
"""

from __future__ import annotations

import dataclasses

from monitor.taxonomy.classes import Cause, Outcome

_MAX_QUOTAS = 64  # quota IDs are few (per model and window); never grow without bound


class QuotaLimitWatch:
    """Remembers the last limit seen per quota ID; check() marks an outcome whose limit went down."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def check(self, outcome: Outcome) -> Outcome:
        lowered = False
        for violation in outcome.quota:
            if violation.quota_id is None or violation.quota_value is None:
                continue
            previous = self._last.get(violation.quota_id)
            if previous is not None and violation.quota_value < previous:
                lowered = True
            if previous is not None or len(self._last) < _MAX_QUOTAS:
                self._last[violation.quota_id] = violation.quota_value
        if lowered and outcome.cause is None:
            return dataclasses.replace(outcome, cause=Cause.LIMIT_LOWERED.value)
        return outcome
