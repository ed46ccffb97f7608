"""Causes of a refusal that the class alone does not tell: read from the error's message and ErrorInfo reason.

Pure data and one function. The messages are the API's own (2026): a spend cap and depleted prepaid credits come
as 429 RESOURCE_EXHAUSTED with no details (one capture shows 400 for the spend cap); a capacity 503 carries the
ErrorInfo reason MODEL_CAPACITY_EXHAUSTED. docs/models.md ("Today's error and
response shapes") has the bodies and their sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from monitor.taxonomy.classes import Cause, ErrorClass

_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
# (pattern on the message, cause, the class it gives on a 429 or 400)
_MESSAGES: tuple[tuple[re.Pattern[str], Cause, ErrorClass], ...] = (
    (re.compile(r"spend(?:ing)?[ -]cap", re.IGNORECASE), Cause.SPEND_CAP, ErrorClass.BILLING_LIMITED),
    (
        re.compile(r"prepa(?:y|id)(?:ment)?\s+(?:credits?|balance)", re.IGNORECASE),
        Cause.PREPAID_CREDITS,
        ErrorClass.BILLING_LIMITED,
    ),
    (re.compile(r"spend-based rate limit", re.IGNORECASE), Cause.SPEND_RATE_LIMIT, ErrorClass.RATE_LIMITED),
    (re.compile(r"no capacity available", re.IGNORECASE), Cause.CAPACITY_EXHAUSTED, ErrorClass.OVERLOADED),
)
_REASONS: Mapping[str, tuple[Cause, ErrorClass]] = {
    "MODEL_CAPACITY_EXHAUSTED": (Cause.CAPACITY_EXHAUSTED, ErrorClass.OVERLOADED),
}
# Which HTTP codes a cause may explain: a spend cap never turns a 503 into a billing error.
_CODES: Mapping[ErrorClass, frozenset[int]] = {
    ErrorClass.BILLING_LIMITED: frozenset({429, 400, 0}),
    ErrorClass.RATE_LIMITED: frozenset({429, 0}),
    ErrorClass.OVERLOADED: frozenset({503, 0}),
}


def cause_of(code: int, message: object, details: list[Mapping[str, Any]]) -> tuple[Cause, ErrorClass] | None:
    """(cause, class) when the body names one for this HTTP code (0: none known), else None."""
    for detail in details:
        if detail.get("@type") == _ERROR_INFO:
            found = _REASONS.get(str(detail.get("reason")))
            if found is not None and code in _CODES[found[1]]:
                return found
    if isinstance(message, str) and message:
        for pattern, cause, cls in _MESSAGES:
            if code in _CODES[cls] and pattern.search(message):
                return cause, cls
    return None
