"""The simulator's decisions and bookkeeping, shared by all handler threads; no HTTP here.

All mutable state (profile cursor, request index, RNG, counters) sits behind one lock, so a seeded run is
reproducible when requests arrive one at a time, and consistent when they do not.
"""

from __future__ import annotations

import random
import string
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.catalog import ModelCatalog
from monitor.simulator.files import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES, FileStore
from monitor.simulator.images import jpeg_of_about, png_of_about, solid_png
from monitor.simulator.models import SimModels
from monitor.simulator.outcomes import SimOutcome
from monitor.simulator.profiles import Draw, Profile, match_model
from monitor.simulator.responses import GenerateRequest, Media

_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Server options that do not change at run time (the profile does, via set_profile)."""

    require_key: bool = True
    latency: Mapping[str, float] = field(default_factory=lambda: {"default": 0.0})
    latency_jitter: float = 0.2  # +/- this fraction of the base latency, drawn from the seeded RNG
    slow_seconds: float = 5.0
    thought_images: int = 2
    image_bytes: int | None = None  # pad the final image to about this many bytes (None: a small solid image)
    image_format: str = "png"
    image_size: tuple[int, int] = (64, 64)
    retry_delay: str = "36s"
    allow_override_header: bool = True
    # Refuse (400, missing_thought_signature) a turn that sends back a model image without its signature.
    require_thought_signatures: bool = False
    catalog: ModelCatalog | None = None  # None: the built-in catalog
    serve_retired: bool = False  # True: retired IDs answer as if still served (no 404)
    reroutes: Mapping[str, str] = field(default_factory=dict)  # requested ID -> the model that answers it
    max_files: int = DEFAULT_MAX_FILES  # Files API: files kept (the oldest goes first), and as many open uploads
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES  # Files API: the largest upload taken
    # Requests per rolling window per model (keys as `latency`'s): over it, a per-minute 429 as Google sends it.
    rpm_limits: Mapping[str, int] = field(default_factory=dict)
    rpm_window_s: float = 60.0

    def __post_init__(self) -> None:
        for model, seconds in self.latency.items():
            if seconds < 0:
                raise ValueError(f"latency.{model}: must be >= 0, got {seconds!r}")
        if not 0 <= self.latency_jitter <= 1:
            raise ValueError(f"latency_jitter: must be between 0 and 1, got {self.latency_jitter!r}")
        if self.slow_seconds < 0:
            raise ValueError(f"slow_seconds: must be >= 0, got {self.slow_seconds!r}")
        if self.thought_images < 0:
            raise ValueError(f"thought_images: must be >= 0, got {self.thought_images!r}")
        if self.image_bytes is not None and self.image_bytes < 1:
            raise ValueError(f"image_bytes: must be >= 1, got {self.image_bytes!r}")
        if self.image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format: must be 'png' or 'jpeg', got {self.image_format!r}")
        if min(self.image_size) < 1:
            raise ValueError(f"image_size: width and height must be >= 1, got {self.image_size!r}")
        if self.max_files < 1:
            raise ValueError(f"max_files: must be >= 1, got {self.max_files!r}")
        if self.max_file_bytes < 1:
            raise ValueError(f"max_file_bytes: must be >= 1, got {self.max_file_bytes!r}")
        for model, limit in self.rpm_limits.items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ValueError(f"rpm_limits.{model}: must be a whole number >= 1, got {limit!r}")
        if not self.rpm_window_s > 0:
            raise ValueError(f"rpm_window_s: must be > 0, got {self.rpm_window_s!r}")

    def base_latency(self, model: str, line: str | None = None) -> float:
        key = match_model(self.latency, model, line)
        return float(self.latency[key] if key is not None else self.latency.get("default", 0.0))


class Simulator:
    """Picks outcomes, latencies and per-response material; counts what was served."""

    def __init__(
        self,
        config: SimConfig,
        profile: Profile,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = config
        self.seed = seed
        self._clock, self._wall_clock = clock, wall_clock
        self._lock = threading.Lock()
        self._profile = profile
        self.models = SimModels(config.catalog, serve_retired=config.serve_retired)
        self._reroutes: dict[str, str] = dict(config.reroutes)
        # Uploaded files outlive reset(): it restarts the weather, not the project's storage.
        self.files = FileStore(
            max_files=config.max_files, max_file_bytes=config.max_file_bytes, seed=seed, wall_clock=wall_clock
        )
        self.reset()

    # -- profile ---------------------------------------------------------------------------------------------

    def set_profile(self, profile: Profile) -> None:
        """Install a profile; its request index and elapsed time start from zero."""
        with self._lock:
            self._profile = profile
            self._restart_profile()

    def _restart_profile(self) -> None:
        self._profile.reset()
        self._n, self._started, self._started_at = 0, self._clock(), self._wall_clock()

    @property
    def profile(self) -> Profile:
        return self._profile

    def reset(self) -> None:
        """Zero the counters, re-seed the RNG and restart the profile (scenarios start over)."""
        with self._lock:
            self._rng = random.Random(self.seed)
            self._counts: dict[str, Counter[str]] = {
                k: Counter()
                for k in ("by_outcome", "by_model", "by_api", "by_status", "rejected", "rerouted", "rpm_rejected")
            }
            self._arrivals: dict[str, deque[float]] = {}
            self._requests = self._streamed = 0
            self._restart_profile()

    # -- models -----------------------------------------------------------------------------------------------

    def set_reroutes(self, reroutes: Mapping[str, str]) -> None:
        """Script which requested IDs another model answers (replaces the scripted set; the catalog's stay)."""
        with self._lock:
            self._reroutes = dict(reroutes)

    @property
    def reroutes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._reroutes)

    def route(self, model: str) -> tuple[str, bool]:
        """(the model that answers `model` today, whether `model` is retired and answered by nobody)."""
        with self._lock:
            scripted = dict(self._reroutes)
        served, retired = self.models.route(model, self._wall_clock().date(), scripted)
        if served != model:
            with self._lock:
                self._counts["rerouted"][f"{model}->{served}"] += 1
        return served, retired

    # -- per request ------------------------------------------------------------------------------------------

    def admit(self, model: str, *, stream: bool, api: str = "gemini") -> None:
        """Count a generate request as soon as its path is recognised (rejected ones included)."""
        with self._lock:
            self._requests += 1
            self._streamed += stream
            self._counts["by_model"][model] += 1
            self._counts["by_api"][api] += 1

    def reject(self, reason: str, status: int) -> None:
        with self._lock:
            self._counts["rejected"][reason] += 1
            self._counts["by_status"][str(status)] += 1

    def over_rate_limit(self, model: str) -> tuple[int, float] | None:
        """(limit, seconds until a slot frees) when `model`'s rolling window is full, else None (and the request
        counts in the window). Refused requests do not count, as Google's quota counts what it served."""
        limits = self.config.rpm_limits
        key = match_model(limits, model, self.models.line(model)) if limits else None
        if key is None:
            return None
        limit, window = limits[key], self.config.rpm_window_s
        with self._lock:
            now = self._clock()
            arrivals = self._arrivals.setdefault(key, deque())
            while arrivals and arrivals[0] <= now - window:
                arrivals.popleft()
            if len(arrivals) >= limit:
                self._counts["rpm_rejected"][model] += 1
                return limit, arrivals[0] + window - now
            arrivals.append(now)
            return None

    def decide(self, model: str, forced: SimOutcome | None = None) -> SimOutcome:
        """The outcome of the next request; a forced one (override header) does not consume a profile draw."""
        with self._lock:
            if forced is None:
                line = self.models.line(model)
                draw = Draw(self._n, model, self._clock() - self._started, self._started_at, line)
                self._n += 1
                forced = self._profile.pick(draw)
            self._counts["by_outcome"][forced.value] += 1
            return forced

    def delay(self, model: str, outcome: SimOutcome) -> float:
        """Seconds to wait before answering: the model's base latency with seeded jitter, plus `slow`."""
        base = self.config.base_latency(model, self.models.line(model))
        with self._lock:
            jitter = self._rng.uniform(-1, 1) * self.config.latency_jitter if base else 0.0
        extra = self.config.slow_seconds if outcome is SimOutcome.SLOW else 0.0
        return max(0.0, base * (1 + jitter)) + extra

    def served(self, status: int | str) -> None:
        with self._lock:
            self._counts["by_status"][str(status)] += 1

    def media(self, req: GenerateRequest) -> Media:
        """Images, signature and ids for one response, drawn from the seeded RNG."""
        cfg = self.config
        with self._lock:
            colors = [tuple(self._rng.randrange(256) for _ in range(3)) for _ in range(cfg.thought_images + 1)]
            signature = self._rng.randbytes(48)
            response_id = "".join(self._rng.choice(_ID_ALPHABET) for _ in range(22))
            thoughts_tokens = self._rng.randint(120, 480)
        width, height = cfg.image_size
        jpeg = req.output_mime == "image/jpeg" or (cfg.image_format == "jpeg" and req.output_mime != "image/png")
        if jpeg:
            final, mime = jpeg_of_about(cfg.image_bytes or 0, self.seed), "image/jpeg"
        elif cfg.image_bytes:
            final, mime = png_of_about(cfg.image_bytes, self.seed), "image/png"
        else:
            final, mime = solid_png(width, height, (colors[0][0], colors[0][1], colors[0][2])), "image/png"
        thoughts = tuple(solid_png(width, height, (c[0], c[1], c[2])) for c in colors[1:])
        return Media(final, mime, thoughts, signature, response_id, thoughts_tokens)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            stats: dict[str, Any] = {"requests": self._requests, "streamed": self._streamed}
            stats.update({name: dict(counter) for name, counter in self._counts.items()})
            stats["profile"] = self._profile.describe()
            return stats
