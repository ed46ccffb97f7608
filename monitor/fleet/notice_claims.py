"""One notice per fleet: the sidecars that see the same figures claim each notice in Redis before queueing it.

With a sidecar per pod reading the fleet's PromQL (or the budget's shared Redis ledger), every sidecar sees the
same transitions and the same budget thresholds: without this, Slack gets one copy per replica (PagerDuty collapses
them by dedup_key, Slack does not). Before a notice is queued, the daemon claims it:

    SET <prefix>:{<project>}:notice:<claim id> <holder> NX PX <ttl>

Only the sidecar whose SET created the key queues it. The claim id is the same on every sidecar for the same notice
and differs between notices (a rule: its dedup_key and event; a budget: project, period, kind and threshold); the
ttl covers the sidecars' spread. A claim may name the claims it `supersedes` (a rule's `resolved` supersedes its
`firing`): the winner deletes them in the same script, so the next episode's `firing` is claimable at once, however
soon it comes.

Redis unreachable (or a bug here): the notice is sent anyway (a duplicate is better than a lost page), counted as
`nbmon_notice_claims_total{result="error"}`. Never raises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Counter

from monitor._safety import report_internal_error
from monitor.fleet.settings import FleetSettings

if TYPE_CHECKING:
    import redis

__all__ = ["ClaimMetrics", "NoticeClaims", "notice_claims"]
_log = structlog.get_logger("nbmon.fleet")
# SET NX PX, and on a win delete what the new notice supersedes. Every key has the fleet's {project} hash tag.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
  return 1
end
return 0
"""


class ClaimMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.claims = Counter(
            "nbmon_notice_claims",
            "Notices claimed in the fleet's Redis before they are queued: won (queued here), lost (another "
            "replica queued it), error (Redis unreachable: queued anyway).",
            ["result"],
            registry=registry,
        )


class NoticeClaims:
    """Claims of one fleet (`settings`: its Redis key prefix and project) by one sidecar (`holder`)."""

    def __init__(
        self, client: redis.Redis, settings: FleetSettings, metrics: ClaimMetrics, *, holder: str | None = None
    ) -> None:
        from monitor.fleet.lease import holder_id

        self._client, self._settings, self._metrics = client, settings, metrics
        self.holder = holder or holder_id()
        self._script = client.register_script(_CLAIM)
        self._failing = False  # a Redis error streak: logged once

    def key(self, claim_id: str) -> str:
        return self._settings.key("notice", claim_id)

    def claim(self, claim_id: str, ttl_s: float, *, supersedes: Iterable[str] = ()) -> bool:
        """True: queue the notice (this sidecar won the claim, or Redis could not say). Never raises."""
        ttl_ms = max(round(ttl_s * 1000), 1) if math.isfinite(ttl_s) else 86_400_000
        keys = [self.key(claim_id), *(self.key(other) for other in supersedes)]
        try:
            won = bool(self._script(keys=keys, args=[self.holder, ttl_ms]))
        except Exception as exc:  # noqa: BLE001 - Redis down, or a bug: either way the notice goes out
            self._failed(claim_id, exc)
            return True
        if self._failing:
            self._failing = False
            _log.info("nbmon.notice_claims.redis_recovered")
        self._metrics.claims.labels("won" if won else "lost").inc()
        if not won:
            _log.info("nbmon.notice_claims.lost", claim=claim_id, detail="another replica sends it")
        return won

    def close(self) -> None:
        self._client.close()

    def _failed(self, claim_id: str, exc: Exception) -> None:
        import redis

        self._metrics.claims.labels("error").inc()
        if not isinstance(exc, redis.RedisError):
            report_internal_error("notice_claims.claim", exc, None)
        if not self._failing:  # once per streak; redis-py's messages name the host, never the URL's password
            self._failing = True
            _log.warning(
                "nbmon.notice_claims.redis_error",
                claim=claim_id,
                error_type=type(exc).__name__,
                error=str(exc),
                detail="sending anyway: every replica may send this notice",
            )


def notice_claims(fleet: FleetSettings, registry: CollectorRegistry) -> NoticeClaims | None:
    """The daemon's claims: None without `[fleet] redis_url` (one sidecar, or each on its own)."""
    if not fleet.redis_url:
        return None
    from monitor.fleet.redis_client import connect

    return NoticeClaims(connect(fleet), fleet, ClaimMetrics(registry))
