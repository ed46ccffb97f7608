"""The shim's Prometheus metrics: every name, label and bucket in one place (a public contract)."""

from __future__ import annotations

import threading
import weakref
from typing import ClassVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# Generation takes 10-30 s at 1K and can pass 80 s at 4K under load; buckets reach 600 s.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600)

REQUESTS_TOTAL = "nbmon_requests"
REQUEST_DURATION = "nbmon_request_duration_seconds"
GENERATIONS_TOTAL = "nbmon_generations"
IMAGES_TOTAL = "nbmon_images"
COST_TOTAL = "nbmon_estimated_cost_usd"
TOKENS_TOTAL = "nbmon_tokens"
BLOCKS_TOTAL = "nbmon_blocks"
INTERNAL_ERRORS_TOTAL = "nbmon_internal_errors"
GENERATION_DURATION = "nbmon_generation_duration_seconds"
RETRIES_TOTAL = "nbmon_retries"
RETRY_WAIT_TOTAL = "nbmon_retry_wait_seconds"
FALLBACKS_TOTAL = "nbmon_fallbacks"
DEGRADED_ROUTING_TOTAL = "nbmon_degraded_routing"


class ShimMetrics:
    """All shim metrics registered on one registry. Use `for_registry` to share per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            REQUESTS_TOTAL,
            "HTTP attempts to the Gemini API, SDK retries included, by HTTP code and error class.",
            ["model", "code", "error_class"],
            registry=registry,
        )
        self.request_duration = Histogram(
            REQUEST_DURATION,
            "Duration of one HTTP attempt (streams: until the last chunk).",
            ["model", "error_class"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.generations = Counter(
            GENERATIONS_TOTAL,
            "Logical generate calls, counted once after the SDK's own retries.",
            ["model", "error_class"],
            registry=registry,
        )
        self.generation_duration = Histogram(
            GENERATION_DURATION,
            "Duration of one logical generate call, SDK retries and waits included.",
            ["model", "error_class"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.images = Counter(
            IMAGES_TOTAL,
            "Images returned; kind is final (billed) or thought (interim, not billed).",
            ["model", "image_size", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            COST_TOTAL,
            "Estimated spend in USD: final images times the configured price; failures are not billed.",
            ["model", "image_size"],
            registry=registry,
        )
        self.tokens = Counter(
            TOKENS_TOTAL,
            "Tokens from usageMetadata; type is input, output or thoughts.",
            ["model", "type"],
            registry=registry,
        )
        self.blocks = Counter(
            BLOCKS_TOTAL,
            "Content blocks; stage is input (promptFeedback) or output (finishReason).",
            ["model", "stage", "reason"],
            registry=registry,
        )
        self.internal_errors = Counter(
            INTERNAL_ERRORS_TOTAL,
            "Errors inside nbmon's own telemetry code, swallowed so the app is never affected.",
            ["component"],
            registry=registry,
        )

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, ShimMetrics]] = weakref.WeakKeyDictionary()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> ShimMetrics:
        """One ShimMetrics per registry, so instrument/uninstrument/instrument never re-registers."""
        registry = registry if registry is not None else REGISTRY
        with cls._lock:
            metrics = cls._by_registry.get(registry)
            if metrics is None:
                metrics = cls._by_registry[registry] = cls(registry)
            return metrics


class GeneratorMetrics:
    """ImageGenerator's metrics: retries, waits, fallbacks and degraded-mode routing (a public contract)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.retries = Counter(
            RETRIES_TOTAL,
            "Attempts ImageGenerator repeated on the same model, by the class that caused the retry.",
            ["model", "error_class"],
            registry=registry,
        )
        self.retry_wait = Counter(
            RETRY_WAIT_TOTAL,
            "Seconds ImageGenerator waited between attempts (backoff and server-advised delays).",
            ["model"],
            registry=registry,
        )
        self.fallbacks = Counter(
            FALLBACKS_TOTAL,
            "Calls moved to the fallback model; reason is degraded_mode, retries_exhausted or quota_exhausted.",
            ["from_model", "to_model", "reason"],
            registry=registry,
        )
        self.routing = Counter(
            DEGRADED_ROUTING_TOTAL,
            "Routing decisions while degraded: flash (sent to the fallback) or canary (kept on the primary).",
            ["decision"],
            registry=registry,
        )

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, GeneratorMetrics]] = weakref.WeakKeyDictionary()
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def for_registry(cls, registry: CollectorRegistry | None = None) -> GeneratorMetrics:
        registry = registry if registry is not None else REGISTRY
        with cls._lock:
            metrics = cls._by_registry.get(registry)
            if metrics is None:
                metrics = cls._by_registry[registry] = cls(registry)
            return metrics
