"""Pacer: what ImageGenerator and the proxy hold. It asks a window for a send slot for a model's quotas and says
whether to wait (how long) or not to send at all; it counts both. It never raises into the app."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from monitor import labels
from monitor._safety import InternalErrors, report_internal_error
from monitor.pacing.estimate import CHARS_PER_TOKEN, TOKENS_PER_IMAGE, estimate_tokens
from monitor.pacing.fallback import Window
from monitor.pacing.limits import QUOTAS, LimitProvider
from monitor.pacing.local import InProcessWindow
from monitor.pacing.metrics import PacingMetrics
from monitor.pacing.window import Reservation

# From a slot to Google's receipt: the wake-up, the SDK building the request, a new connection, the network. A
# send 0.5 s late was measured on a loaded 2-core machine (one 429 in 60); 1 s costs 1.6% of a window's throughput.
DEFAULT_MARGIN_S = 1.0
ON_LIMIT = ("wait", "fail")


@dataclass(frozen=True, slots=True)
class Decision:
    """Admitted: sleep `wait_s`, then send (the slot is reserved). Refused: do not send; `quota` and `limit` say
    which quota is full and `retry_after_s` when a slot frees up (None: never, a cost over the limit).
    `release`: gives an admitted slot back when its send will not happen (Pacer.release / arelease call it)."""

    admitted: bool
    wait_s: float = 0.0
    quota: str | None = None
    limit: float | None = None
    retry_after_s: float | None = None
    release: Callable[[], None] | None = field(default=None, compare=False, repr=False)


GO = Decision(True)


class Pacer:
    """Paces calls per project + model + quota (rpm, ipm, tpm) in rolling windows of `window_s`.

    `limits`: a LimitProvider (ConfiguredLimits, QuotaLimits). `window`: InProcessWindow (default), RedisWindow or
    FallbackWindow (Redis, with per-process limits when it is down). `on_limit`: "wait" (up to the caller's bound and
    `max_wait_s`) or "fail" (refuse at once when the window is full). `max_wait_s`: None is one window (plus the
    margin), so a batch job cannot reserve slots far ahead; math.inf: the caller's bound only. `margin_s` is added
    to the window: a send granted at t reaches Google a little after t, so the slot freed at t + 60 s is used at
    t + 60 s + margin. `tokens_per_image` and `chars_per_token` make the input-token estimate of a `tpm` limit.
    """

    def __init__(
        self,
        limits: LimitProvider,
        window: Window | None = None,
        *,
        on_limit: str = "wait",
        max_wait_s: float | None = None,
        window_s: float = 60.0,
        margin_s: float = DEFAULT_MARGIN_S,
        project: str = "default",
        key_prefix: str = "nbmon",
        registry: CollectorRegistry | None = None,
        model_label: Callable[[str | None], str] | None = None,
        tokens_per_image: int = TOKENS_PER_IMAGE,
        chars_per_token: float = CHARS_PER_TOKEN,
    ) -> None:
        if on_limit not in ON_LIMIT:
            raise ValueError(f"on_limit: must be one of {', '.join(ON_LIMIT)}, got {on_limit!r}")
        if not (math.isfinite(window_s) and window_s > 0) or not (math.isfinite(margin_s) and margin_s >= 0):
            raise ValueError("window_s must be > 0 and margin_s >= 0")
        if max_wait_s is not None and not max_wait_s >= 0:
            raise ValueError(f"max_wait_s: must be >= 0 or None, got {max_wait_s!r}")
        if not tokens_per_image >= 0 or not chars_per_token > 0:
            raise ValueError("tokens_per_image must be >= 0 and chars_per_token > 0")
        self.limits, self.window = limits, window or InProcessWindow()
        self.on_limit = on_limit
        self.max_wait_s = window_s + margin_s if max_wait_s is None else max_wait_s
        self.tokens_per_image, self.chars_per_token = tokens_per_image, chars_per_token
        self.window_s, self.margin_s = window_s, margin_s
        self._prefix = f"{key_prefix}:{{{project}}}:pace"  # FleetSettings.key(): one cluster slot per project
        self.metrics = PacingMetrics.for_registry(registry)
        self._internal_errors = InternalErrors.for_registry(registry)
        self._model_label = model_label or labels.BoundedLabel((), 20)

    def acquire(self, model: str, *, max_wait_s: float | None = None, images: int = 1, tokens: float = 0) -> Decision:
        """A slot for one call of `model` (`images` images, about `tokens` input tokens), waiting at most
        `max_wait_s` (None: the pacer's own bound, if any). The caller sleeps `wait_s`, then sends."""
        try:
            plan = self._plan(model, max_wait_s, images, tokens)
            if plan is None:
                return GO
            keys, quotas, limits, costs, bound = plan
            reservation = self.window.reserve(keys, limits, costs, bound, self.window_s + self.margin_s)
            return self._decided(model, quotas, limits, reservation)
        except Exception as error:  # noqa: BLE001 - pacing must never break the call: send unpaced
            report_internal_error("pacing", error, self._internal_errors.count)
            return GO

    async def aacquire(
        self, model: str, *, max_wait_s: float | None = None, images: int = 1, tokens: float = 0
    ) -> Decision:
        """acquire() for asyncio: a Redis window is asked from a worker thread, never on the loop."""
        try:
            plan = self._plan(model, max_wait_s, images, tokens)
            if plan is None:
                return GO
            keys, quotas, limits, costs, bound = plan
            reservation = await self.window.areserve(keys, limits, costs, bound, self.window_s + self.margin_s)
            return self._decided(model, quotas, limits, reservation)
        except Exception as error:  # noqa: BLE001 - as acquire()
            report_internal_error("pacing", error, self._internal_errors.count)
            return GO

    def estimate(self, contents: object) -> int:
        """About how many input tokens `contents` is, for a `tpm` limit; 0 (and counted) should that fail."""
        try:
            return estimate_tokens(
                contents, tokens_per_image=self.tokens_per_image, chars_per_token=self.chars_per_token
            )
        except Exception as error:  # noqa: BLE001 - pacing must never break the call
            report_internal_error("pacing", error, self._internal_errors.count)
            return 0

    def release(self, decision: Decision) -> None:
        """Give an admitted slot back: its call is abandoned (cancelled, its deadline gone, the client left) while
        it waited. A no-op for any other decision; never raises."""
        release = decision.release
        if release is None:
            return
        try:
            release()
        except Exception as error:  # noqa: BLE001 - as acquire()
            report_internal_error("pacing", error, self._internal_errors.count)

    async def arelease(self, decision: Decision) -> None:
        """release() for asyncio: a Redis window is told from a worker thread. Shielded: it is called while the
        caller is being cancelled, and completes even if the caller's task is cancelled again."""
        if decision.release is not None:
            await asyncio.shield(asyncio.to_thread(self.release, decision))

    def _plan(
        self, model: str, max_wait_s: float | None, images: int, tokens: float
    ) -> tuple[list[str], list[str], list[float], list[float], float | None] | None:
        limits = self.limits.limits(model)
        if not limits:
            return None  # no limit known for this model: nothing to pace
        quotas = [q for q in QUOTAS if q in limits]
        cost = {"rpm": 1.0, "ipm": float(images), "tpm": float(tokens)}
        bound = 0.0 if self.on_limit == "fail" else _lowest(max_wait_s, self.max_wait_s)
        if bound is not None and math.isinf(bound):
            bound = None  # no bound at all
        keys = [f"{self._prefix}:{model}:{q}" for q in quotas]
        return keys, quotas, [float(limits[q]) for q in quotas], [cost[q] for q in quotas], bound

    def _decided(self, model: str, quotas: list[str], limits: list[float], reservation: Reservation) -> Decision:
        quota = quotas[reservation.binding] if reservation.binding >= 0 else None
        limit = limits[reservation.binding] if reservation.binding >= 0 else None
        label = self._model_label(model)
        if not reservation.admitted:
            self.metrics.rejected.labels(label, quota or quotas[0]).inc()
            retry = reservation.wait_s if math.isfinite(reservation.wait_s) else None
            return Decision(False, 0.0, quota, limit, retry)
        if reservation.wait_s > 0 and quota is not None:
            self.metrics.wait.labels(label, quota).inc(reservation.wait_s)
        return Decision(True, max(reservation.wait_s, 0.0), quota, limit, release=reservation.release)


def _lowest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
