"""The demo's app: worker threads generating images through ImageGenerator, the real SDK and the shim.

Each worker asks for an image, counts what came back (served model, fallback, block, failure) and asks again.
The generator reads the degraded-mode flag from the daemon over OFREP, so the workers follow the daemon.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google import genai
from google.genai import types
from prometheus_client import CollectorRegistry

from monitor.generator import (
    ContentBlockedError,
    FlagSource,
    GenerationError,
    ImageGenerator,
    ImageResult,
    RetryPolicy,
)

PROMPTS = (
    "a banana in a tuxedo, studio light",
    "a lighthouse at dawn, watercolour",
    "an isometric city block at night",
    "a red fox in fresh snow, photo",
    "a bowl of ramen, overhead shot",
)
RECENT_S = 5.0  # "served now": the models of the calls that finished in the last few seconds


class StoppableClock:
    """The system clock, except that waits end at once when the demo stops (a 2 s retryDelay included)."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    async def asleep(self, seconds: float) -> None:  # the Clock protocol; the demo is synchronous
        self.sleep(seconds)


@dataclass
class Tally:
    """What the app saw, call by call (one generate() each); thread-safe."""

    calls: Counter[str] = field(default_factory=Counter)  # ok, blocked, failed
    served: Counter[str] = field(default_factory=Counter)  # model of each successful call
    fallbacks: Counter[str] = field(default_factory=Counter)  # fallback_reason of calls served by the fallback
    blocks: Counter[str] = field(default_factory=Counter)  # reason of ContentBlockedError
    failures: Counter[str] = field(default_factory=Counter)  # error class (or exception type) of other failures
    spend_usd: float = 0.0
    _recent: deque[tuple[float, str]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, result: ImageResult) -> None:
        with self._lock:
            self.calls["ok"] += 1
            self.served[result.served_model] += 1
            if result.fallback_reason.value != "none":
                self.fallbacks[result.fallback_reason.value] += 1
            self.spend_usd += result.estimated_cost_usd
            self._recent.append((time.monotonic(), result.served_model))

    def blocked(self, error: ContentBlockedError) -> None:
        with self._lock:
            self.calls["blocked"] += 1
            self.blocks[f"{error.stage or 'output'}:{error.reason or 'none'}"] += 1

    def failed(self, kind: str) -> None:
        with self._lock:
            self.calls["failed"] += 1
            self.failures[kind] += 1

    def recent(self) -> Counter[str]:
        """Models served in the last RECENT_S seconds."""
        cutoff = time.monotonic() - RECENT_S
        with self._lock:
            while self._recent and self._recent[0][0] < cutoff:
                self._recent.popleft()
            return Counter(model for _, model in self._recent)

    def copy(self) -> Tally:
        with self._lock:
            return Tally(
                Counter(self.calls),
                Counter(self.served),
                Counter(self.fallbacks),
                Counter(self.blocks),
                Counter(self.failures),
                self.spend_usd,
            )


def demo_policy() -> RetryPolicy:
    """The article's policy in seconds instead of minutes: 0.5 s backoff doubling to 4 s, 3 attempts per model.

    429s still wait exactly what the server says (the simulator's retryDelay)."""
    return RetryPolicy(
        max_attempts=3,
        initial_backoff_s=0.5,
        max_backoff_s=4.0,
        rate_limit_default_wait_s=2.0,
        deadline_s=30.0,
        min_call_s=0.5,
    )


class LoadGenerator:
    """`workers` threads calling ImageGenerator until stopped; every call goes to `base_url` (the simulator)."""

    def __init__(
        self,
        base_url: str,
        *,
        workers: int,
        seed: int,
        canary_share: float,
        flag_source: FlagSource,
        registry: CollectorRegistry,
    ) -> None:
        self.tally = Tally()
        self._stop = threading.Event()
        # vertexai=False: an environment set up for Vertex must not redirect the demo's calls.
        self._client = genai.Client(
            api_key="nbmon-demo-key",
            vertexai=False,
            # The simulator is on loopback: an HTTP(S)_PROXY in the environment must not capture the calls.
            http_options=types.HttpOptions(base_url=base_url, client_args={"trust_env": False}),
        )
        clock = StoppableClock(self._stop)
        self._generators = [
            ImageGenerator(
                self._client,
                policy=demo_policy(),
                flag_source=flag_source,
                canary_share=canary_share,
                clock=clock,
                rng=random.Random(seed * 1000 + i),
                registry=registry,
            )
            for i in range(workers)
        ]
        self._threads = [
            threading.Thread(target=self._work, args=(g, seed * 1000 + i), name=f"nbmon-demo-worker-{i}", daemon=True)
            for i, g in enumerate(self._generators)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            if thread.is_alive():
                thread.join(max(deadline - time.monotonic(), 0.0))
        self._client.close()

    def _work(self, generator: ImageGenerator, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            size = "2K" if rng.random() < 0.2 else "1K"
            try:
                self.tally.ok(generator.generate(rng.choice(PROMPTS), image_size=size, aspect_ratio="16:9"))
            except ContentBlockedError as error:
                self.tally.blocked(error)
            except GenerationError as error:
                self.tally.failed(error.error_class.value if error.error_class else type(error).__name__)
            except Exception as error:  # noqa: BLE001 - the SDK's own errors (e.g. 400): counted, the app goes on
                if self._stop.is_set():
                    return  # the client was closed under a call in flight
                self.tally.failed(type(error).__name__)


class LegacyJob:
    """The app's forgotten batch job: calls `model` straight through the SDK (instrumented) every `period_s`,
    so nbmon counts a deprecated model and, once Google routes it elsewhere, a silent reroute."""

    def __init__(self, base_url: str, model: str, period_s: float = 1.5) -> None:
        self.model = model
        self.calls = 0
        self.served: Counter[str] = Counter()  # the response's modelVersion
        self._period_s = period_s
        self._stop = threading.Event()
        self._client = genai.Client(
            api_key="nbmon-demo-key",
            vertexai=False,
            http_options=types.HttpOptions(base_url=base_url, client_args={"trust_env": False}),
        )
        self._thread = threading.Thread(target=self._work, name="nbmon-demo-legacy-job", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._client.close()

    def _work(self) -> None:
        config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
        while not self._stop.wait(self._period_s):
            try:
                response = self._client.models.generate_content(model=self.model, contents=PROMPTS[0], config=config)
            except Exception:  # noqa: BLE001 - its failures are in nbmon's metrics; the job goes on
                if self._stop.is_set():
                    return
                continue
            self.calls += 1
            self.served[response.model_version or self.model] += 1
