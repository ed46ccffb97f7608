"""Fault profiles: which outcome request n gets at time t. Deterministic for a given seed and request order.

Profiles never read a clock: the server passes the request index and elapsed time in a Draw, so tests can
drive them with fake time. Only ScenarioProfile keeps state (its phase cursor), reset by reset().
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from monitor.simulator.models import SimModels
from monitor.simulator.outcomes import SimOutcome

# Share of requests that get a 503 by UTC hour, as a level between the off-peak floor (0) and the peak (1).
# Shape from the article (gemini-api.md §9): 10-14 UTC peak, 00-06 UTC quiet, US 15-22 UTC elevated.
HOURLY_LEVELS: Final[tuple[float, ...]] = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0,  # 00-05: quietest, the best window for batch work
    0.08, 0.16, 0.30, 0.55,  # 06-09: Europe wakes up
    0.85, 1.0, 1.0, 0.95, 0.80,  # 10-14: the peak
    0.60, 0.55, 0.55, 0.52, 0.50, 0.48, 0.45,  # 15-21: US business hours
    0.30, 0.12,  # 22-23: winding down
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Draw:
    """Everything a profile may look at for one request."""

    n: int  # index of the request since the profile was installed or reset, from 0
    model: str
    elapsed: float  # seconds since the profile was installed or reset, from the injectable clock
    started_at: datetime  # UTC wall time when the profile was installed or reset
    line: str | None = None  # the model's line in the catalog (pro, flash, lite), which profile keys may name


def uniform(seed: int, n: int) -> float:
    """A number in [0, 1) that depends only on (seed, n), so thread scheduling cannot change outcomes."""
    return random.Random(f"nbmon-sim:{seed}:{n}").random()


def weighted(weights: Mapping[SimOutcome, float], u: float) -> SimOutcome:
    """The outcome whose cumulative weight band contains u; the leftover probability is `ok`."""
    total = 0.0
    for outcome, weight in weights.items():
        total += weight
        if u < total:
            return outcome
    return SimOutcome.OK


def match_model(table: Mapping[str, Any], model: str, line: str | None = None) -> str | None:
    """The key of `table` for `model`: an exact id first, then the longest key contained in the id, then the
    model's line ("pro", "flash", "lite" from the catalog: gemini-nano-banana-2.1 is a flash model)."""
    if model in table:
        return model
    hits = [key for key in table if key != "default" and key.lower() in model.lower()]
    if hits:
        return max(hits, key=len)
    line = line if line is not None else SimModels().line(model)
    return line if line is not None and line in table else None


def _fmt_weights(weights: Mapping[SimOutcome, float]) -> str:
    return ",".join(f"{o.value}={w:.2f}" for o, w in weights.items()) or "ok=1.00"


class Profile(ABC):
    """Chooses the outcome of each request."""

    kind: str = ""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def pick(self, draw: Draw) -> SimOutcome: ...

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """A JSON-compatible spec that parse_profile() turns back into an equivalent profile."""

    @abstractmethod
    def describe(self) -> str: ...

    def reset(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Forget any progress (scenario phases); stateless profiles have nothing to do."""


class FixedProfile(Profile):
    kind = "fixed"

    def __init__(self, outcome: SimOutcome, seed: int = 0) -> None:
        super().__init__(seed)
        self.outcome = outcome

    def pick(self, draw: Draw) -> SimOutcome:
        return self.outcome

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "outcome": self.outcome.value, "seed": self.seed}

    def describe(self) -> str:
        return f"fixed {self.outcome.value}"


class SequenceProfile(Profile):
    """An exact script: outcomes[n] for the first requests, then `then` forever."""

    kind = "sequence"

    def __init__(self, outcomes: Sequence[SimOutcome], then: SimOutcome = SimOutcome.OK, seed: int = 0) -> None:
        super().__init__(seed)
        self.outcomes = tuple(outcomes)
        self.then = then

    def pick(self, draw: Draw) -> SimOutcome:
        return self.outcomes[draw.n] if draw.n < len(self.outcomes) else self.then

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "outcomes": [o.value for o in self.outcomes],
            "then": self.then.value,
            "seed": self.seed,
        }

    def describe(self) -> str:
        return f"sequence {','.join(o.value for o in self.outcomes)} then {self.then.value}"


class MixProfile(Profile):
    """Independent random outcomes with fixed probabilities, optionally per model (exact id or substring)."""

    kind = "mix"

    def __init__(
        self,
        weights: Mapping[SimOutcome, float],
        models: Mapping[str, Mapping[SimOutcome, float]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.weights = dict(weights)
        self.models = {name: dict(w) for name, w in (models or {}).items()}

    def weights_for(self, model: str, line: str | None = None) -> dict[SimOutcome, float]:
        key = match_model(self.models, model, line)
        return self.models[key] if key is not None else self.weights

    def pick(self, draw: Draw) -> SimOutcome:
        return weighted(self.weights_for(draw.model, draw.line), uniform(self.seed, draw.n))

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "weights": {o.value: w for o, w in self.weights.items()}}
        if self.models:
            spec["models"] = {m: {o.value: w for o, w in ws.items()} for m, ws in self.models.items()}
        spec["seed"] = self.seed
        return spec

    def describe(self) -> str:
        extra = f" (+{len(self.models)} model overrides)" if self.models else ""
        return f"mix {_fmt_weights(self.weights)}{extra}"


class HourlyProfile(Profile):
    """503s (`overloaded`) following the hour-of-day curve; time can run faster than real time for demos."""

    kind = "hourly"

    def __init__(
        self,
        peak: float = 0.45,
        offpeak: float = 0.08,
        speed: float = 1.0,
        start_hour: float | None = None,
        flash_factor: float = 0.15,
        seed: int = 0,
    ) -> None:
        super().__init__(seed)
        self.peak, self.offpeak, self.speed = peak, offpeak, speed
        self.start_hour, self.flash_factor = start_hour, flash_factor

    def share(self, hour: float, model: str | None = None, line: str | None = None) -> float:
        """The 503 share at a UTC hour (fraction of a day allowed) for a Pro model (the default); other lines
        (the catalog's model_tier, else read from the ID) get flash_factor of it."""
        level = HOURLY_LEVELS[int(hour % 24)]
        share = self.offpeak + level * (self.peak - self.offpeak)
        pro = line == "pro" if line is not None else model is None or "pro" in model.lower()
        return share if pro else share * self.flash_factor

    def hour_at(self, draw: Draw) -> float:
        """Simulated UTC hour: the start hour plus elapsed time scaled by speed."""
        start = self.start_hour
        if start is None:
            start = draw.started_at.hour + draw.started_at.minute / 60 + draw.started_at.second / 3600
        return (start + draw.elapsed * self.speed / 3600) % 24

    def pick(self, draw: Draw) -> SimOutcome:
        u = uniform(self.seed, draw.n)
        return SimOutcome.OVERLOADED if u < self.share(self.hour_at(draw), draw.model, draw.line) else SimOutcome.OK

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "peak": self.peak,
            "offpeak": self.offpeak,
            "speed": self.speed,
            "start_hour": self.start_hour,
            "flash_factor": self.flash_factor,
            "seed": self.seed,
        }

    def describe(self) -> str:
        start = "now" if self.start_hour is None else f"{self.start_hour:g}h"
        return f"hourly peak={self.peak:.2f} offpeak={self.offpeak:.2f} speed={self.speed:g} start={start}"


@dataclass(frozen=True, slots=True)
class Phase:
    """One scenario step: a fixed outcome or weights, for `requests` requests or `seconds` (None = forever)."""

    outcome: SimOutcome | None = None
    weights: Mapping[SimOutcome, float] | None = None
    requests: int | None = None
    seconds: float | None = None

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.outcome is not None:
            spec["outcome"] = self.outcome.value
        if self.weights is not None:
            spec["weights"] = {o.value: w for o, w in self.weights.items()}
        if self.requests is not None:
            spec["requests"] = self.requests
        if self.seconds is not None:
            spec["seconds"] = self.seconds
        return spec


class ScenarioProfile(Profile):
    """Phases that advance by request count or elapsed seconds; the last holds forever unless `loop`."""

    kind = "scenario"

    def __init__(self, phases: Sequence[Phase], loop: bool = False, name: str | None = None, seed: int = 0) -> None:
        super().__init__(seed)
        self.phases, self.loop, self.name = tuple(phases), loop, name
        self.reset()

    def reset(self) -> None:
        # The cursor: current phase, and the request index and elapsed time at which it began.
        self._index, self._start_n, self._start_t = 0, 0, 0.0

    def phase_at(self, n: int, elapsed: float) -> int:
        """Advance the cursor to the phase that request n at `elapsed` falls in, and return its index."""
        while True:
            phase = self.phases[self._index]
            if phase.requests is not None and n - self._start_n >= phase.requests:
                self._start_n, self._start_t = self._start_n + phase.requests, elapsed
            elif phase.seconds is not None and elapsed - self._start_t >= phase.seconds:
                self._start_n, self._start_t = n, self._start_t + phase.seconds
            else:
                return self._index
            if self._index + 1 < len(self.phases):
                self._index += 1
            elif self.loop:
                self._index = 0
            else:  # validation guarantees a final phase without a limit; this guards hand-built profiles
                return self._index

    def pick(self, draw: Draw) -> SimOutcome:
        phase = self.phases[self.phase_at(draw.n, draw.elapsed)]
        if phase.outcome is not None:
            return phase.outcome
        return weighted(phase.weights or {}, uniform(self.seed, draw.n))

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind}
        if self.name is not None:
            spec["name"] = self.name
        spec.update(phases=[p.spec() for p in self.phases], loop=self.loop, seed=self.seed)
        return spec

    def describe(self) -> str:
        label = self.name or "custom"
        return f"scenario {label} ({len(self.phases)} phases{', looping' if self.loop else ''})"
