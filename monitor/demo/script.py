"""The scripted day: its phases (what the simulator serves when), and the daemon's compressed timings.

Pure: no I/O, no clock. Everything scales with the length of the day, so a 30-second day in a test plays the
same script with the same rule logic as the 2-minute `make demo`; only the windows and holds are shorter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from monitor.catalog import Lifecycle, builtin_catalog

# The demo runs on the built-in defaults: the catalog's primary and fallback (monitor/catalog/models.toml).
PRO: Final = builtin_catalog().default_primary
FLASH: Final = builtin_catalog().default_fallback
DEFAULT_DAY_SECONDS: Final = 110.0  # plus start-up and the summary: about two minutes
MIN_DAY_SECONDS: Final = 20.0  # below this the windows and holds no longer fit inside the phases
MAX_DAY_SECONDS: Final = 3600.0
THRESHOLD: Final = 0.30  # the production defaults of the degraded-mode rule: only its times are compressed
RECOVERY_THRESHOLD: Final = 0.10

# A few percent of everything, as on an ordinary day (the article: 5-10% of calls fail off-peak).
_NORMAL_PRO: Final = {
    "overloaded": 0.02,
    "server_error": 0.015,
    "bad_gateway": 0.01,
    "rate_limited": 0.01,
    "safety_block": 0.01,
    "no_image": 0.005,
}
_NORMAL_FLASH: Final = {"overloaded": 0.01, "server_error": 0.01, "safety_block": 0.01}


@dataclass(frozen=True, slots=True)
class Phase:
    key: str
    title: str
    start_hour: float  # demo clock (UTC hours) at the start of the phase
    end_hour: float
    share: float  # of the day's real seconds
    pro: dict[str, float]  # simulator outcome weights for the Pro model; the rest is ok
    flash: dict[str, float]
    reroutes: dict[str, str] = field(default_factory=dict)  # model IDs the API answers with another model

    def profile(self, seed: int) -> dict[str, Any]:
        """The simulator's JSON spec for this phase (`PUT /_sim/profile`)."""
        return {"kind": "mix", "weights": {}, "models": {"pro": self.pro, "flash": self.flash}, "seed": seed}


@dataclass(frozen=True, slots=True)
class Legacy:
    """A model the catalog lists as deprecated today, still called by the app's forgotten batch job."""

    model: str
    replacement: str
    deprecated: date


def legacy_model(today: date) -> Legacy | None:
    """The catalog's first model that is deprecated (not retired) on `today` and names a replacement."""
    for spec in builtin_catalog().specs:
        if spec.lifecycle(today) is Lifecycle.DEPRECATED and spec.replacement and spec.deprecated:
            return Legacy(spec.id, spec.replacement, spec.deprecated)
    return None


def phases(storm_share: float, legacy: Legacy | None = None) -> tuple[Phase, ...]:
    """The day, 06:00 to 22:00 UTC; `storm_share` is the share of Pro calls answered 503 at the peak. With a
    `legacy` model, Google starts routing it to its replacement in the evening (a silent reroute)."""
    storm_pro = {"overloaded": storm_share, "server_error": min(0.01, 1.0 - storm_share)}
    evening_title = "evening, normal traffic"
    reroutes = {}
    if legacy is not None:
        evening_title += f"; Google routes {legacy.model} to {legacy.replacement}"
        reroutes = {legacy.model: legacy.replacement}
    return (
        Phase("morning", "normal traffic (~7% errors)", 6.0, 10.0, 0.13, _NORMAL_PRO, _NORMAL_FLASH),
        Phase(
            "storm",
            f"peak hours: a 503 storm on Pro ({storm_share:.0%}), Flash healthy",
            10.0,
            13.0,
            0.28,
            storm_pro,
            {"overloaded": 0.02},
        ),
        Phase(
            "recovery",
            "the storm passes",
            13.0,
            16.0,
            0.22,
            {"overloaded": 0.005, "server_error": 0.01},
            _NORMAL_FLASH,
        ),
        Phase(
            "rate_limits",
            "a 429 burst (RetryInfo retryDelay)",
            16.0,
            17.0,
            0.12,
            {"rate_limited": 0.30, "overloaded": 0.01},
            {"rate_limited": 0.10},
        ),
        Phase(
            "safety",
            "safety blocks (returned as HTTP 200)",
            17.0,
            18.5,
            0.10,
            {"safety_block": 0.20, "prompt_block": 0.03, "overloaded": 0.01},
            {"safety_block": 0.10},
        ),
        Phase("evening", evening_title, 18.5, 22.0, 0.15, _NORMAL_PRO, _NORMAL_FLASH, reroutes),
    )


@dataclass(frozen=True, slots=True)
class Schedule:
    """The phases laid out on real seconds from the start of the day."""

    day_seconds: float
    phases: tuple[Phase, ...]

    @property
    def starts(self) -> tuple[float, ...]:
        starts, t = [], 0.0
        for phase in self.phases:
            starts.append(t)
            t += phase.share * self.day_seconds
        return tuple(starts)

    def index_at(self, t: float) -> int:
        """The phase playing `t` seconds into the day (the last one holds after the end)."""
        index = 0
        for i, start in enumerate(self.starts):
            if t >= start:
                index = i
        return index

    def span(self, key: str) -> tuple[float, float]:
        """(start, end) in real seconds of the phase named `key`."""
        for phase, start in zip(self.phases, self.starts, strict=True):
            if phase.key == key:
                return start, start + phase.share * self.day_seconds
        raise KeyError(key)

    def hour_at(self, t: float) -> float:
        """The demo clock at `t`: each phase maps its real seconds linearly onto its hours."""
        t = min(max(t, 0.0), self.day_seconds)
        i = self.index_at(t)
        phase, start = self.phases[i], self.starts[i]
        progress = (t - start) / (phase.share * self.day_seconds)
        return phase.start_hour + min(progress, 1.0) * (phase.end_hour - phase.start_hour)

    def clock_at(self, t: float) -> str:
        hour = self.hour_at(t)
        minutes = round(hour * 60)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class Timing:
    """The daemon's and the app's times for a day of `day_seconds`: production logic, seconds for minutes."""

    interval_s: float  # scrape and evaluation (production: 15 s)
    window_s: float  # the 503 ratio's window (production: 1m)
    hold_s: float  # above the threshold this long to go degraded (production: 5m)
    recovery_hold_s: float  # below the recovery threshold this long to recover (production: 10m)
    probe_after_s: float  # too little canary traffic this long: probe the primary (production: 10m)
    min_volume: int  # requests per window below which the rule holds (production: 20)
    flag_ttl_s: float  # how long the app caches the OFREP flag (production default: 5 s)
    retry_delay_s: float  # the simulator's RetryInfo retryDelay during the 429 burst (the article: 36s)

    @classmethod
    def for_day(cls, day_seconds: float) -> Timing:
        scale = day_seconds / DEFAULT_DAY_SECONDS
        interval = round(min(max(scale, 0.5), 1.0), 2)  # faster scrapes cost more CPU than they buy
        window = round(max(5.0 * scale, 4 * interval), 2)  # the window must span several scrapes to hold a delta
        return cls(
            interval_s=interval,
            window_s=window,
            hold_s=round(max(4.0 * scale, 2 * interval), 2),
            recovery_hold_s=round(max(6.0 * scale, 3 * interval), 2),
            probe_after_s=round(max(10.0 * scale, 2 * window), 2),
            min_volume=max(4, round(6 * scale)),
            flag_ttl_s=interval,
            retry_delay_s=round(max(2.0 * scale, 0.5), 1),
        )

    def rule(self) -> dict[str, Any]:
        """The `[rules.degraded-mode]` table: the production thresholds with these times."""
        return {
            "threshold": THRESHOLD,
            "recovery_threshold": RECOVERY_THRESHOLD,
            "window_s": self.window_s,
            "hold_s": self.hold_s,
            "min_volume": self.min_volume,
            "recovery_hold_s": self.recovery_hold_s,
            "probe_after_s": self.probe_after_s,
        }

    def describe(self) -> str:
        return (
            f"503 ratio > {THRESHOLD:.0%} over {self.window_s:g}s for {self.hold_s:g}s -> degraded; "
            f"< {RECOVERY_THRESHOLD:.0%} for {self.recovery_hold_s:g}s -> normal "
            f"(production: 1m / 5m / 10m); evaluated every {self.interval_s:g}s"
        )
