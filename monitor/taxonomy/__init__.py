"""Error taxonomy: pure classification of every outcome of a Gemini image-generation call."""

from monitor.taxonomy.classes import (
    CATEGORY_OF,
    Category,
    Cause,
    ErrorClass,
    Outcome,
    QuotaViolation,
    QuotaWindow,
)
from monitor.taxonomy.classify import (
    classify_api_error,
    classify_content,
    classify_exception,
    classify_http,
    classify_response,
)
from monitor.taxonomy.content import ContentSummary

__all__ = [
    "CATEGORY_OF",
    "Category",
    "Cause",
    "ContentSummary",
    "ErrorClass",
    "Outcome",
    "QuotaViolation",
    "QuotaWindow",
    "classify_api_error",
    "classify_content",
    "classify_exception",
    "classify_http",
    "classify_response",
]
