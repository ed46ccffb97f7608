"""The sidecar daemon: read the signal, evaluate the rules, hold and serve the degraded-mode flag.

Jobs (APScheduler 3, one thread each, never overlapping): read the source every `source.interval`,
evaluate every `evaluation.interval`, poll quota every `quota.interval`. A job that raises is logged and
counted, never fatal. State is persisted on every change, so a restart (even after kill -9) resumes
degraded if it was degraded. The pieces live beside this module: the signal (`windows`), Alertmanager's hold
(`alertmanager`), the quota job (`quota_job`), the admin documents (`admin`), the HTTP server (`http`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.alerts import Action, CounterWindow, Evaluator, RuleStatus, State, Transition
from monitor.budget.job import BudgetJob, Hold
from monitor.catalog import ModelInfoCollector
from monitor.config import warn_lifecycle
from monitor.daemon import admin
from monitor.daemon.alertmanager import AlertmanagerHold
from monitor.daemon.config import DaemonConfig
from monitor.daemon.http import DaemonServer
from monitor.daemon.metrics import DaemonMetrics
from monitor.daemon.persistence import PersistenceHealth
from monitor.daemon.quota_job import QuotaJob
from monitor.daemon.rule_notices import RuleNotifier
from monitor.daemon.windows import BufferedCounters, SeriesBounds, WindowCounts, error_ratios, signal_from_config
from monitor.flagstate import FlagdFileWriter, FlagStatePersistError, FlagStore, Models, Stop, decision_to_dict
from monitor.fleet.notice_claims import notice_claims
from monitor.logs import register_secret
from monitor.notify import Dispatcher, Outbox
from monitor.notify.config import build_notifiers
from monitor.signals import CounterSource

if TYPE_CHECKING:
    from monitor.proxy.config import ProxyConfig
    from monitor.proxy.server import ProxyServer
    from monitor.quota import QuotaPoller

_log = structlog.get_logger("nbmon.daemon")
RULE_STATES = tuple(s.value for s in State)


class Disk(Protocol):
    """How the daemon's files are written: the real atomic writes and SQLite by default."""

    def write(self, path: Path, data: bytes) -> None: ...
    def write_mode(self, path: Path, data: bytes, mode: int) -> None: ...
    def connect(self, path: Path) -> sqlite3.Connection: ...


class Daemon:
    """Everything `nbmon run` does, with its clocks, source and registry injectable for tests and embed()."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        source: CounterSource | None = None,
        quota_poller: QuotaPoller | None = None,
        registry: CollectorRegistry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        disk: Disk | None = None,
    ) -> None:
        """`source`: a counter source to read instead of the configured one (its owner closes it).
        `disk`: how the state, flagd and outbox files are written (tests inject monitor.testing.FullDisk)."""
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = DaemonMetrics(self.registry)
        # Configured secrets are redacted from every log line, libraries' included (httpx logs URLs).
        for secret in (config.admin_token, *(channel.secret for channel in config.notify.channels)):
            register_secret(secret)
        self.persistence = PersistenceHealth(
            lambda store, ok: self.metrics.persistence_ok.labels(store).set(1 if ok else 0),
            lambda store: self.metrics.persistence_errors.labels(store).inc(),
            _log,
        )
        ModelInfoCollector(self.registry, config.shim)  # nbmon_model_info: the rules join on its roles
        self._monotonic, self._wall = monotonic, wall
        self.models = Models(config.primary_model, config.fallback_model)
        rules = config.rule_set  # parsed once, by the config: what check-config checked
        self.evaluator = Evaluator(rules)
        self._rules = {r.name: r for r in rules}
        self._flag_rules = frozenset(r.name for r in rules if Action.SET_FLAG in r.actions)
        self._disk = disk
        # A corrupt state file stops the start, with its path.
        self.store = FlagStore(config.state_path, clock=wall, write=disk.write if disk is not None else None)
        self.flagd = (
            FlagdFileWriter(config.flagd_path, write=disk.write_mode if disk is not None else None)
            if config.flagd_path
            else None
        )
        self._last_ok_read: float | None = None
        self._source_name = source.name if source is not None else config.source_kind
        longest = max((r.window_s for r in rules), default=60.0)
        window = CounterWindow(max_age_s=longest + 4 * config.source_interval_s)
        bound = SeriesBounds(config.shim.known_models, config.shim.max_extra_model_labels)
        # [proxy]: its metrics on a registry of their own (served on its port), read in-process by the rules.
        self.proxy_registry = CollectorRegistry() if config.proxy is not None else None
        self.signal = (
            BufferedCounters(source, window, bound, self._source_ok)
            if source is not None
            else signal_from_config(
                config, window, bound, self._source_ok, self._source_error, proxy_registry=self.proxy_registry
            )
        )
        self._source_name = self.signal.name
        self.admin_token = config.admin_token
        # The jobs run on scheduler threads and the HTTP API on its own: one lock around the evaluator, the
        # flag's holders and the publishing (the store and the signal have their own).
        self._lock = threading.RLock()
        degraded_rule = self._rules.get("degraded-mode")
        self._alertmanager = AlertmanagerHold(
            config.alertmanager_alerts, degraded_rule.recovery_hold_s if degraded_rule is not None else 0.0
        )
        self.dispatcher = self._build_dispatcher()
        submit = self.dispatcher.submit if self.dispatcher is not None else None
        # A fleet: every notice is claimed in Redis first, so the sidecars seeing the same figures send it once.
        self.notice_claims = notice_claims(config.fleet, self.registry) if submit is not None else None
        claim_ttl_s = config.notify.rule_claim_ttl_s(config.evaluation_interval_s)
        self._notifier = (
            RuleNotifier(
                self._rules,
                self._flag_rules,
                config.notify,
                self.models.primary,
                submit,
                wall,
                claims=self.notice_claims,
                claim_ttl_s=claim_ttl_s,
            )
            if submit is not None
            else None
        )
        self.quota = QuotaJob.from_config(
            config, self.registry, submit, poller=quota_poller, monotonic=monotonic, wall=wall
        )
        # [budget]: its state file is read here, so a corrupt one stops the start, naming it.
        self.budget = BudgetJob.from_config(
            config,
            self.registry,
            submit,
            wall=wall,
            proxy_registry=self.proxy_registry,
            write=disk.write if disk is not None else None,
            on_persist=self._budget_persisted,
            claims=self.notice_claims,
        )
        self._scheduler: BackgroundScheduler | None = None
        self._tick_origin: float | None = None  # the monotonic time of the first scheduled evaluation
        self._server: DaemonServer | None = None
        self.proxy: ProxyServer | None = None
        self._restore()
        self._publish()

    # --- wiring -------------------------------------------------------------------------------------------

    def _build_dispatcher(self) -> Dispatcher | None:
        notify = self.config.notify
        if not notify.channels:
            return None
        # A corrupt outbox stops the start, naming the file.
        outbox = Outbox(notify.outbox_path, connect=self._disk.connect if self._disk is not None else None)
        return Dispatcher(
            outbox,
            build_notifiers(notify),
            clock=self._wall,
            on_result=lambda channel, result: self.metrics.notifications.labels(channel, result.value).inc(),
            on_depth=self.metrics.notification_queue_depth.set,
            on_persist=self._outbox_persisted,
        )

    def _outbox_persisted(self, ok: bool, detail: str) -> None:
        if ok:
            self.persistence.ok("outbox")
        else:
            self.persistence.failed("outbox", self.config.notify.outbox_path, detail)

    def _budget_persisted(self, ok: bool, detail: str) -> None:
        if ok:
            self.persistence.ok("budget")
        elif self.budget is not None:
            self.persistence.failed("budget", self.budget.path, detail)

    def _source_ok(self) -> None:
        self._last_ok_read = self._monotonic()
        self.metrics.source_last_success.labels(self.source_name).set(time.time())

    def _source_error(self, target: str, reason: str) -> None:
        # Labelled by source name, never by target: a target URL may carry credentials.
        self.metrics.source_errors.labels(self.source_name, reason).inc()

    @property
    def source_name(self) -> str:
        return self._source_name

    def _restore(self) -> None:
        """After a restart: the rules resume in the state the persisted flag says (no transition emitted)."""
        state = self.store.state
        if state.degraded and state.rule == "alertmanager":
            self._alertmanager.restore()
            return
        if not state.degraded or state.rule not in self._flag_rules:
            return
        elapsed = max((self._wall() - state.since).total_seconds(), 0.0)
        self.evaluator.restore(state.rule, State.FIRING, since=self._monotonic() - elapsed)
        _log.info("nbmon.state.restored", rule=state.rule, degraded=True, since=state.since.isoformat())

    # --- jobs ---------------------------------------------------------------------------------------------

    def read_source(self) -> None:
        """The read job: a counter source's reading into its window (a queried source answers at evaluation)."""
        reading = self.signal.read()
        if reading is not None and reading.ok and self.quota is not None:
            self.quota.observe(reading)

    def poll_quota(self) -> None:
        """The quota job: poll Cloud Monitoring, evaluate the quota rules on fresh readings, notify."""
        if self.quota is not None:
            self.quota.poll()

    def check_budget(self) -> None:
        """The budget job: read the spend (outside the lock), notify, then hold or release the budget's action."""
        if self.budget is None:
            return
        self.budget.check()
        with self._lock:
            self._sync_flag("budget", "the budget's period ended: the budget starts again", {})
            self._sync_stop()
            self._publish()

    def _budget_hold(self, action: str) -> Hold | None:
        hold = self.budget.hold(self._wall()) if self.budget is not None else None
        return hold if hold is not None and hold.action == action else None

    def _sync_stop(self) -> None:
        """`generation-allowed` is false while a spent budget with action "stop" holds it."""
        hold, current = self._budget_hold("stop"), self.store.state.stop
        since = current.since if current is not None else self._wall()
        stop = None if hold is None else Stop(hold.reason, since, hold.until, "budget")
        going_on = (
            stop is not None and current is not None and (current.set_by, current.until) == ("budget", stop.until)
        )
        if stop != current and not going_on:  # the same hold (action, until) is not saved again
            _log.warning("nbmon.budget.stop", stopped=stop is not None, reason=None if stop is None else stop.reason)
            self._saving("state", lambda: self.store.set_stop(stop))

    def evaluate_tick(self) -> list[Transition]:
        """The scheduled evaluation: at the time the tick was due, not when its thread got the lock.

        Ticks are due on a grid of evaluation.interval from the first one. Reading the clock instead lets
        scheduling jitter shorten a hold: pending at 1.012 s, then the tick due at 5 s measures 3.988 s of a
        4 s hold and the rule fires one evaluation late (5m15s instead of 5m in production)."""
        now = self._monotonic()
        origin, interval = self._tick_origin, self.config.evaluation_interval_s
        if origin is None:
            self._tick_origin = origin = now
        due = origin + round((now - origin) / interval) * interval
        return self.evaluate(at=due)

    def evaluate(self, at: float | None = None) -> list[Transition]:
        """One evaluation: the windows end now (every reading taken counts); holds are measured at `at`, the
        tick's due time (default: now)."""
        started = time.perf_counter()
        now = self._monotonic()
        counts = self.signal.counts(self.evaluator.windows, now)  # a PromQL query: outside the lock
        with self._lock:
            transitions = self.evaluator.evaluate(now if at is None else at, counts)
            for transition in transitions:
                self._on_transition(transition)
            self._retry_saves()
            self._sync_flag("alertmanager", "Alertmanager alerts resolved for the recovery hold", {})
            if self.store.expire_override():
                _log.info("nbmon.override.expired")
            self._publish(counts)
        self.metrics.evaluation_duration.observe(time.perf_counter() - started)
        return transitions

    def _on_transition(self, transition: Transition) -> None:
        figures = {
            "ratio": transition.ratio,
            "numerator": transition.numerator,
            "denominator": transition.denominator,
            "window_s": transition.window_s,
            "threshold": transition.threshold,
        }
        _log.warning(
            "nbmon.rule.transition",
            rule=transition.rule,
            from_state=transition.from_state.value,
            to_state=transition.to_state.value,
            reason=transition.reason,
            **figures,
        )
        if transition.rule in self._flag_rules and transition.degraded_changed:
            self._sync_flag(transition.rule, transition.reason, figures)
        if self._notifier is not None:
            self._notifier.on_transition(transition)

    def _sync_flag(self, source: str, reason: str, figures: dict[str, Any]) -> None:
        """The flag is on while ANY holder wants it: a flag rule (firing or recovering), Alertmanager, or a spent
        budget with action "degraded"."""
        rules_hold = self.evaluator.degraded
        alertmanager_holds = self._alertmanager.holds(self._monotonic())
        budget = self._budget_hold("degraded")
        desired = rules_hold or alertmanager_holds or budget is not None
        if desired == self.store.state.degraded:
            return
        if desired and not rules_hold:
            source = "alertmanager" if alertmanager_holds or budget is None else "budget"
            if source == "budget" and budget is not None:
                reason, figures = budget.reason, dict(budget.figures)
        if not desired and self.store.state.rule == "budget":  # its period ended, whichever job noticed first
            source, reason, figures = "budget", "the budget's period ended: the budget starts again", {}
        self._saving("state", lambda: self.store.apply_transition(desired, source, reason, figures))
        self.metrics.transitions.labels("degraded" if desired else "normal").inc()

    def _retry_saves(self) -> None:
        """A state that could not be saved is saved again on every tick until the disk takes it."""
        if self.store.dirty and self._saving("state", self.store.flush):
            self.persistence.ok("state")

    def _saving(self, store: str, change: Callable[[], object]) -> bool:
        """Apply a change to the flag state; False when it is in force (and served) but could not be saved.
        Every tick retries the save: the decision is never lost."""
        try:
            change()
        except FlagStatePersistError as error:
            self.persistence.failed(store, self.config.state_path, error.__cause__ or error)
            return False
        return True

    def _publish(self, counts: WindowCounts | None = None) -> None:
        """Gauges and the flagd file from the current state: one place, so they never disagree."""
        decision = self.store.effective()
        self.metrics.degraded_mode.set(1 if decision.value else 0)
        self.metrics.override.set(1 if decision.source == "override" else 0)
        for name, status in self.evaluator.statuses().items():
            for state in RULE_STATES:
                self.metrics.rule_state.labels(name, state).set(1 if status.state.value == state else 0)
            self.metrics.rule_insufficient_data.labels(name).set(1 if status.insufficient_data else 0)
        for window_s, window_counts in (counts or {}).items():
            self.metrics.publish_error_ratios(window_s, error_ratios(window_counts or {}))
        if self.flagd is not None:
            try:
                self.flagd.write(decision, self.models)  # skipped when the file holds it: a failure retries next tick
            except OSError as error:
                self.persistence.failed("flagd", self.config.flagd_path, error)
            else:
                self.persistence.ok("flagd")

    def _job(self, name: str, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            try:
                job()
            except Exception:  # noqa: BLE001 - one failed run is logged and counted; the daemon goes on
                self.metrics.job_errors.labels(name).inc()
                _log.exception("nbmon.job.failed", job=name)

        return run

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self, *, serve_http: bool = True) -> None:
        if serve_http:
            self._server = DaemonServer(self, self.config.listen_host, self.config.listen_port, self._http_error)
            self._server.start()
            _log.info("nbmon.daemon.listening", url=self.url)  # the first line: where to reach it
        if self.config.proxy is not None and self.proxy_registry is not None:
            self.proxy = self._start_proxy(self.config.proxy, self.proxy_registry)
        if self.quota is not None:
            self.quota.start()  # a fleet's poller lease: claimed before the first quota tick
        scheduler = BackgroundScheduler(timezone="UTC")
        options: dict[str, Any] = {"max_instances": 1, "coalesce": True, "next_run_time": datetime.now(UTC)}
        jobs = [
            ("read", self.read_source, self.config.source_interval_s),
            ("evaluate", self.evaluate_tick, self.config.evaluation_interval_s),
        ]
        if self.quota is not None:
            jobs.append(("quota", self.poll_quota, self.config.quota_interval_s))
        if self.budget is not None:
            jobs.append(("budget", self.check_budget, self.budget.config.interval_s))
        for name, job, seconds in jobs:
            scheduler.add_job(self._job(name, job), "interval", seconds=seconds, **options)
        scheduler.start()
        self._scheduler = scheduler
        warn_lifecycle(self.config.shim, _log)
        for warning in self.config.warnings:
            if not warning.startswith("models."):  # the lifecycle notes are logged once, above
                _log.warning("nbmon.config.warning", warning=warning)
        if self.dispatcher is not None:
            self.dispatcher.start()  # re-sends what a crash left unacknowledged
        _log.info("nbmon.daemon.started", source=self.source_name, rules=sorted(self._flag_rules))

    def stop(self) -> bool:
        """Stop within a few seconds: state first, then everything that may be waiting on the network.

        Returns False when the state could not be saved at the end (the process should exit non-zero)."""
        saved = True
        try:
            self.store.flush()
        except FlagStatePersistError as error:
            saved = False
            _log.error(
                "nbmon.state.unsaved_at_stop", path=str(self.config.state_path), error=str(error.__cause__ or error)
            )
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)  # a job stuck on a slow target must not hold the shutdown
            self._scheduler = None
        self.signal.close()  # aborts a scrape or query in flight
        if self.proxy is not None:
            self.proxy.stop()  # requests in flight get the server's shutdown timeout
            self.proxy = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=1.5)  # pending notifications stay in the outbox for the next start
        if self.quota is not None:
            self.quota.close()
        if self.budget is not None:
            self.budget.close()
        if self.notice_claims is not None:
            self.notice_claims.close()
        _log.info("nbmon.daemon.stopped", state_saved=saved)
        return saved

    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else ""

    def _start_proxy(self, config: ProxyConfig, registry: CollectorRegistry) -> ProxyServer:
        """The proxy steers by this daemon's own flag: no OFREP round trip, never a stale read."""
        from monitor.proxy.otel import tracer_provider_from_env
        from monitor.proxy.server import ProxyServer, build_forwarder
        from monitor.proxy.stop import stop_check

        async def degraded() -> bool:
            return self.store.effective().value

        stopped = stop_check(self.store)  # generation-allowed false: generate requests refused with a 429
        pacer = None
        if config.pace and self.config.pacing.enabled:  # the poller's per-minute limits too, with from_quota
            from monitor.pacing import build_pacer

            # The fleet's view: on a follower the leader's published readings, not its own empty snapshot.
            quotas = self.quota.view if self.quota is not None else None
            pacer = build_pacer(self.config.pacing, self.config.fleet, registry=registry, quota_source=quotas)
        forwarder = build_forwarder(
            config,
            self.config.shim,
            registry,
            degraded,
            tracer_provider=tracer_provider_from_env(),
            pacer=pacer,
            stopped=stopped,
        )
        proxy = ProxyServer(forwarder, registry, on_error=self._http_error)
        proxy.start()
        _log.info(
            "nbmon.proxy.listening", url=proxy.url, upstream=config.upstream, steer=config.steer, retry=config.retry
        )
        return proxy

    def _http_error(self, path: str, error: Exception) -> None:
        self.metrics.job_errors.labels("http").inc()
        _log.error("nbmon.http.error", error_type=type(error).__name__, exc_info=error)

    # --- the HTTP API (monitor.daemon.http.DaemonAPI) ------------------------------------------------------

    def metrics_exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def ready(self) -> tuple[bool, list[str]]:
        """Ready once the state is loaded (it is, once constructed) and the source answered recently."""
        reasons = []
        stale_after = 3 * max(self.config.source_interval_s, self.config.evaluation_interval_s)
        if self._last_ok_read is None:
            reasons.append(f"source {self.source_name}: no successful read yet")
        elif self._monotonic() - self._last_ok_read > stale_after:
            reasons.append(f"source {self.source_name}: no successful read for over {stale_after:.0f}s")
        reasons.extend(self.persistence.problems())
        return not reasons, reasons

    def readiness_notes(self) -> list[str]:
        """Said on /readyz without failing it: a missing Google credential must not pull the flag server."""
        return [] if self.quota is None else [f"quota: {self.quota.readiness_detail()}"]

    def rule_statuses(self) -> dict[str, RuleStatus]:
        """Every rule's status from one evaluation: read under the lock the evaluation tick holds."""
        with self._lock:
            return self.evaluator.statuses()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state_document()

    def _state_document(self) -> dict[str, Any]:
        now = self._monotonic()
        document = admin.state_document(
            effective=self.store.effective(),
            statuses=self.evaluator.statuses(),
            models=self.models,
            shim=self.config.shim,
            alertmanager=admin.AlertmanagerView(self._alertmanager.firing(), self._alertmanager.holds(now)),
            quota=None if self.quota is None else self.quota.readiness_detail(),
            history=self.evaluator.history,
            now=now,
            stored=self.store.snapshot(),
        )
        if self.budget is not None:
            document["budget"] = self.budget.document(self._wall())
        return document

    def set_override(self, request: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/override`: a ValueError (the 400's reason) when the request is not one to accept."""
        with self._lock:
            override = admin.parse_override(request, self._wall())
            persisted = self._saving(
                "state",
                lambda: self.store.set_override(
                    override.value, override.reason, override.expires_at, set_by=override.set_by
                ),
            )
            _log.warning(
                "nbmon.override.set",
                value=override.value,
                reason=override.reason,
                expires_at=override.expires_at.isoformat(),
                set_by=override.set_by,
            )
            self._publish()
            return self._answer(persisted)

    def clear_override(self) -> dict[str, Any]:
        with self._lock:
            had_override = self.store.state.override is not None
            persisted = self._saving("state", self.store.clear_override)
            if had_override or not persisted:
                _log.warning("nbmon.override.cleared")
            self._publish()
            return self._answer(persisted)

    def _answer(self, persisted: bool) -> dict[str, Any]:
        """The admin API's answer says what happened: in force, and whether it will survive a restart."""
        answer = {**self._state_document(), "persisted": persisted}
        if not persisted:
            answer["warning"] = admin.UNSAVED_WARNING
        return answer

    def alertmanager(self, payload: Any) -> dict[str, Any]:
        """Alertmanager's webhook: a watched alert firing sets degraded mode; the last one resolving releases
        Alertmanager's hold after the recovery hold. The rules keep their own hold on the flag."""
        with self._lock:
            accepted, reason = self._alertmanager.apply(payload, self._monotonic())  # PayloadError: 400
            self._sync_flag("alertmanager", reason, {})
            self._publish()
            return {
                "accepted": accepted,
                "firing": self._alertmanager.firing(),
                "effective": decision_to_dict(self.store.effective()),
            }
