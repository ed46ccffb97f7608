"""Signal sources: where the daemon reads `nbmon_requests_total` (scrape, in-process, PromQL)."""

from monitor.sources._common import DEFAULT_MAX_BYTES, ErrorCallback, SourceError, TargetStatus
from monitor.sources.inprocess import INPROCESS_ERROR_REASONS, InProcessSource
from monitor.sources.promql import DEFAULT_QUERY, PROMQL_ERROR_REASONS, PromQLSource, prometheus_duration
from monitor.sources.scrape import ACCEPT, SCRAPE_ERROR_REASONS, ExpositionError, ScrapeSource, parse_exposition

__all__ = [
    "ACCEPT",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_QUERY",
    "INPROCESS_ERROR_REASONS",
    "PROMQL_ERROR_REASONS",
    "SCRAPE_ERROR_REASONS",
    "ErrorCallback",
    "ExpositionError",
    "InProcessSource",
    "PromQLSource",
    "ScrapeSource",
    "SourceError",
    "TargetStatus",
    "parse_exposition",
    "prometheus_duration",
]
