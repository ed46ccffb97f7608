"""The daemon's budget job: read the spend, keep the budget's state, notify, and say what the action holds.

Built only with `[budget]`. The spend is read outside any lock (a PromQL query, a scrape, Redis); the state is
saved after every check, so a restart neither re-notifies nor lifts an exhausted budget's action. What the
action holds (`hold`) changes only here, so the flag is released by the budget job, with the budget's words.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from monitor.budget import notices as words
from monitor.budget.config import DEFAULT_STATE_NAME, BudgetConfig
from monitor.budget.periods import WORD, Kind, Period, local_text, period
from monitor.budget.spend import COST_METRIC, PROMQL_QUERY, CounterSpend, LocalLedger, SpendError, SpendSource
from monitor.budget.state import BudgetState, Notice, Status

if TYPE_CHECKING:
    from monitor.daemon.config import DaemonConfig
    from monitor.fleet.notice_claims import NoticeClaims
    from monitor.notify import Notification
    from monitor.notify.config import NotifyConfig

_log = structlog.get_logger("nbmon.budget")
Submit = Callable[["Notification", Iterable[str]], object]
Write = Callable[[Path, bytes], None]


class BudgetStateError(Exception):
    """The budget state file cannot be read or does not parse: the start stops, naming it."""


@dataclass(frozen=True, slots=True)
class Hold:
    """What an exhausted budget holds: degraded mode or the stop, until the last exhausted period ends."""

    action: str
    reason: str
    until: datetime
    figures: Mapping[str, float]


class BudgetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["project", "period"]
        self.spent = Gauge(
            "nbmon_budget_spent_usd", "Estimated USD spent in the current period.", labels, registry=registry
        )
        self.limit = Gauge("nbmon_budget_limit_usd", "The period's budget in USD.", labels, registry=registry)
        self.exhaustion = Gauge(
            "nbmon_budget_exhaustion_timestamp_seconds",
            "When the budget runs out at the current pace (Unix time); +Inf when it does not, or too early to say.",
            labels,
            registry=registry,
        )
        self.period_end = Gauge(
            "nbmon_budget_period_end_timestamp_seconds",
            "When the current period ends and the budget starts again (Unix time; midnight Pacific).",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "nbmon_budget_read_errors",
            "Failed reads of the spend; the budget keeps its last figures meanwhile.",
            ["source", "reason"],
            registry=registry,
        )


class BudgetJob:
    def __init__(
        self,
        config: BudgetConfig,
        spend: SpendSource,
        *,
        project: str,
        path: Path,
        registry: CollectorRegistry,
        notify: NotifyConfig,
        submit: Submit | None,
        wall: Callable[[], datetime],
        write: Write | None = None,
        on_persist: Callable[[bool, str], None] | None = None,
        claims: NoticeClaims | None = None,
    ) -> None:
        self.config, self.limits, self.spend, self.project, self.path = config, config.limits, spend, project, path
        self._notify, self._submit, self._wall = notify, submit, wall
        self._claims = claims  # a fleet: each notice is claimed in Redis, and sent by the sidecar that wins
        self._write = write or _write_private
        self._on_persist = on_persist
        self.metrics = BudgetMetrics(registry)
        self._lock = threading.Lock()
        self._failing = False
        self.state = self._load()
        self._hold: Hold | None = None
        self._hold = self._compute_hold(wall())
        self._publish(wall())

    @classmethod
    def from_config(
        cls,
        config: DaemonConfig,
        registry: CollectorRegistry,
        submit: Submit | None,
        *,
        wall: Callable[[], datetime],
        proxy_registry: CollectorRegistry | None = None,
        write: Write | None = None,
        on_persist: Callable[[bool, str], None] | None = None,
        claims: NoticeClaims | None = None,
    ) -> BudgetJob | None:
        budget = config.budget
        if budget is None:
            return None
        fleet = config.fleet if budget.project is None else replace(config.fleet, project=budget.project)
        path = budget.state_path or Path(config.state_path).parent / DEFAULT_STATE_NAME
        return cls(
            budget,
            build_spend(config, budget, fleet, proxy_registry),
            project=fleet.project,
            path=path,
            registry=registry,
            notify=config.notify,
            submit=submit,
            wall=wall,
            write=write,
            on_persist=on_persist,
            claims=claims,
        )

    # --- the job ------------------------------------------------------------------------------------------

    def check(self) -> list[Notice]:
        """Read the spend, roll the periods over, notify what is due, save. Never raises on a source failure."""
        now = self._wall()
        periods = {kind: period(kind, now, self.limits.timezone) for kind in self.limits.kinds()}
        totals: dict[Kind, float] | None
        try:
            totals = self.spend.totals(periods, now)
            if not all(math.isfinite(v) for v in totals.values()):  # never into the state: it would stay NaN
                raise SpendError("invalid", f"not a finite amount: {totals}")
        except SpendError as error:
            totals = None
            self.metrics.errors.labels(self.spend.name, error.reason).inc()
            if not self._failing:
                _log.warning("nbmon.budget.read_failed", source=self.spend.name, error=str(error)[:200])
            self._failing = True
        else:
            if self._failing:
                _log.info("nbmon.budget.read_recovered", source=self.spend.name)
            self._failing = False
        with self._lock:
            self.state, due = self.state.observe(now, totals, self.limits)
            self._save()
            for notice in due:
                self._tell(notice, now)
            self._hold = self._compute_hold(now)
            self._publish(now)
        return due

    def hold(self, now: datetime) -> Hold | None:
        """What the action holds now (None: nothing, or action none); lapses at the period's end on its own."""
        hold = self._hold
        return hold if hold is not None and now < hold.until else None

    def statuses(self, now: datetime) -> dict[str, Status]:
        found = {WORD[kind]: self.state.status(kind, now, self.limits) for kind in self.limits.kinds()}
        return {word: status for word, status in found.items() if status is not None}

    def document(self, now: datetime) -> dict[str, Any]:
        """The budget in /v1/state."""
        hold = self.hold(now)
        return {
            "project": self.project,
            "source": self.spend.name,
            "action": self.config.action,
            "holding": None
            if hold is None
            else {"action": hold.action, "reason": hold.reason, "until": _iso(hold.until)},
            "periods": {
                word: {
                    "id": s.period.id,
                    "spent_usd": round(s.spent_usd, 6),
                    "limit_usd": s.limit_usd,
                    "ends_at": _iso(s.period.end),
                    "runs_out_at": None if s.exhaustion_at is None else _iso(s.exhaustion_at),
                }
                for word, s in self.statuses(now).items()
            },
        }

    def close(self) -> None:
        self.spend.close()

    # --- inside ----------------------------------------------------------------------------------------------

    def _tell(self, notice: Notice, now: datetime) -> None:
        _log.warning(
            "nbmon.budget.notice",
            kind=notice.kind,
            period=notice.period.id,
            spent_usd=round(notice.spent_usd, 4),
            limit_usd=notice.limit_usd,
            threshold=notice.threshold,
        )
        if self._submit is None or not self._claimed(notice, now):
            return
        note = words.notification(
            notice,
            project=self.project,
            action=self.config.action,
            timezone=self.limits.timezone,
            environment=self._notify.environment,
            at=now,
            links=self._notify.links,
        )
        self._submit(note, self._notify.channels_for(note.rule, note.severity))

    def _claimed(self, notice: Notice, now: datetime) -> bool:
        """True: this sidecar sends the notice (no fleet, it won the claim, or Redis could not say). The claim id is
        the same on every sidecar for one notice: project, period, kind and threshold (reset: the period ended);
        it lasts the rest of the period and an hour, past any sidecar still telling it."""
        if self._claims is None:
            return True
        parts = ["budget", self.project, notice.period.id, notice.kind]
        if notice.kind == "threshold" and notice.threshold is not None:
            parts.append(f"{notice.threshold:g}")
        elif notice.kind == "reset" and notice.ended is not None:
            parts.append(notice.ended)
        claim_id = "/".join(parts)
        ttl_s = max((notice.period.end - now).total_seconds(), 0.0) + 3600.0
        return self._claims.claim(claim_id, ttl_s)

    def _compute_hold(self, now: datetime) -> Hold | None:
        """What the action holds. Its reason (with the spend) is frozen when the hold starts: a hold that goes on
        (the same action, until the same end) is the same hold, so nothing downstream is saved again each check."""
        hold = self._new_hold(now)
        previous = self._hold
        if hold is not None and previous is not None and (previous.action, previous.until) == (hold.action, hold.until):
            return previous
        return hold

    def _new_hold(self, now: datetime) -> Hold | None:
        if self.config.action == "none":
            return None
        spent = self.state.exhausted(now, self.limits)
        if not spent:
            return None
        last = max(spent, key=lambda s: s.period.end)
        names = " and ".join(f"{WORD[s.period.kind]} ${s.spent_usd:,.2f} of ${s.limit_usd:,.2f}" for s in spent)
        until = local_text(last.period.end, self.limits.timezone, date=True)
        reason = f"budget_exhausted: {names} spent; {self.config.action} until {until}"
        figures = {"spent_usd": round(last.spent_usd, 4), "limit_usd": last.limit_usd}
        return Hold(self.config.action, reason, last.period.end, figures)

    def _publish(self, now: datetime) -> None:
        for word, status in self.statuses(now).items():
            labels = (self.project, word)
            self.metrics.spent.labels(*labels).set(status.spent_usd)
            self.metrics.limit.labels(*labels).set(status.limit_usd)
            runs_out = status.exhaustion_at
            self.metrics.exhaustion.labels(*labels).set(math.inf if runs_out is None else runs_out.timestamp())
            self.metrics.period_end.labels(*labels).set(status.period.end.timestamp())

    def _document(self) -> dict[str, Any]:
        return {**self.spend.saved(), **self.state.to_dict()}

    def _save(self) -> None:
        data = json.dumps(self._document(), indent=2, sort_keys=True, allow_nan=False).encode() + b"\n"
        try:
            self._write(self.path, data)
        except OSError as error:  # in force in memory; the next check saves again
            if self._on_persist is not None:
                self._on_persist(False, str(error))
            return
        if self._on_persist is not None:
            self._on_persist(True, "")

    def _load(self) -> BudgetState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return BudgetState()
        except OSError as error:
            raise BudgetStateError(f"cannot read budget state file {self.path}: {error}") from error
        try:
            data = json.loads(raw)
            state = BudgetState.from_dict(data)
            self.spend.restore(data)
            return state
        except (ValueError, TypeError) as error:
            raise BudgetStateError(
                f"budget state file {self.path} is corrupt ({error}); refusing to start with every threshold "
                "re-armed and the action lifted: fix the file, or delete it to start the periods afresh"
            ) from error


def build_spend(
    config: DaemonConfig, budget: BudgetConfig, fleet: Any, proxy_registry: CollectorRegistry | None
) -> SpendSource:
    """The spend source `[budget] source` names (auto resolved against [source] and [fleet])."""
    source = budget.resolved_source(config.source_kind, config.fleet.redis_url)
    if source == "promql":
        from monitor.budget.spend import PromQLSpend
        from monitor.sources import PromQLSource

        assert config.promql_url is not None  # checked by the config
        return PromQLSpend(
            PromQLSource(config.promql_url, query_template=PROMQL_QUERY, name="budget-promql"),
            timezone=budget.limits.timezone,
        )
    from monitor.sources import InProcessSource, ScrapeSource

    counters: list[Any]
    if config.source_kind == "proxy" and proxy_registry is not None:
        counters = [InProcessSource(proxy_registry, metric=COST_METRIC, name="budget-proxy")]
    else:  # one source per target: the spend is followed per target, never as a sum whose targets change
        from monitor.sources._common import display

        counters = [ScrapeSource([t], metric=COST_METRIC, name=f"budget-scrape {display(t)}") for t in config.targets]
    if source == "redis":
        from monitor.budget.spend import RedisLedger
        from monitor.fleet.redis_client import connect

        return CounterSpend(counters, RedisLedger(connect(fleet), fleet), name="redis")
    return CounterSpend(counters, LocalLedger(), name="local")


def _write_private(path: Path, data: bytes) -> None:
    from monitor.flagstate import _atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic.atomic_write(path, data, mode=0o600)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


__all__ = ["BudgetJob", "BudgetStateError", "Hold", "Period", "build_spend"]
