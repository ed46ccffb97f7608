"""The sidecar daemon: read the signal, evaluate the rules, hold and serve the degraded-mode flag.

Jobs (APScheduler 3, one thread each, never overlapping): read the source every `source.interval`,
evaluate every `evaluation.interval`. A job that raises is logged and counted, never fatal. State is
persisted on every change, so a restart (even after kill -9) resumes degraded if it was degraded.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.alerts import Action, CounterWindow, Evaluator, RuleStatus, State, Transition
from monitor.catalog import ModelInfoCollector
from monitor.config import warn_lifecycle
from monitor.daemon.alertmanager import AlertTracker, parse_payload
from monitor.daemon.config import DaemonConfig, positive_seconds
from monitor.daemon.http import DaemonServer
from monitor.daemon.metrics import DaemonMetrics
from monitor.daemon.persistence import PersistenceHealth
from monitor.flagstate import FlagdFileWriter, FlagStatePersistError, FlagStore, Models, decision_to_dict
from monitor.labels import OTHER, BoundedLabel
from monitor.logs import redact_text, register_secret
from monitor.notify import Dispatcher, Outbox
from monitor.notify import events as notify_events
from monitor.notify.config import build_notifiers
from monitor.signals import CounterSource, Counts, Series, WindowSource
from monitor.sources import InProcessSource, PromQLSource, ScrapeSource
from monitor.taxonomy import ErrorClass

_log = structlog.get_logger("nbmon.daemon")
_ERROR_CLASSES = frozenset(c.value for c in ErrorClass)
MAX_OVERRIDE_S = 7 * 86400.0
RULE_STATES = tuple(s.value for s in State)


def window_label(seconds: float) -> str:
    return f"{int(seconds // 60)}m" if seconds % 60 == 0 else f"{int(seconds)}s"


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
        source: CounterSource | WindowSource | None = None,
        quota_poller: Any = None,
        registry: CollectorRegistry | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        disk: Disk | None = None,
    ) -> None:
        """`disk`: how the state, flagd and outbox files are written (tests inject monitor.testing.FullDisk)."""
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
        self._flag_rules = {r.name for r in rules if Action.SET_FLAG in r.actions}
        longest = max((r.window_s for r in rules), default=60.0)
        self.window = CounterWindow(max_age_s=longest + 4 * config.source_interval_s)
        self._disk = disk
        # A corrupt state file stops the start, with its path.
        self.store = FlagStore(config.state_path, clock=wall, write=disk.write if disk is not None else None)
        self.flagd = (
            FlagdFileWriter(config.flagd_path, write=disk.write_mode if disk is not None else None)
            if config.flagd_path
            else None
        )
        self.source = source or self._build_source()
        # Counter sources are read on their own schedule into the window; window sources answer at evaluation.
        self._counter: CounterSource | None = self.source if hasattr(self.source, "read") else None  # type: ignore[assignment]
        self._windowed: WindowSource | None = None if self._counter is not None else self.source  # type: ignore[assignment]
        self.admin_token = config.admin_token
        self._last_ok_read: float | None = None
        # The read and evaluate jobs run on scheduler threads and the HTTP API on its own threads: one lock
        # around everything that touches the window, the evaluator and the publishing (the store has its own).
        self._lock = threading.RLock()
        self._alerts = AlertTracker()
        self._am_resolved_at: float | None = None
        self._am_restored = False
        self._ratio_keys: dict[str, set[tuple[str, str]]] = {}
        self._model_label = BoundedLabel(config.shim.known_models, config.shim.max_extra_model_labels)
        self._episodes: dict[str, datetime] = {}  # rule -> when its current episode was notified as firing
        self._rules = {r.name: r for r in rules}
        self.dispatcher = self._build_dispatcher()
        self.quota = self._build_quota(quota_poller)
        self._scheduler: BackgroundScheduler | None = None
        self._tick_origin: float | None = None  # the monotonic time of the first scheduled evaluation
        self._server: DaemonServer | None = None
        self._restore()
        self._publish()

    # --- wiring -------------------------------------------------------------------------------------------

    def _build_source(self) -> CounterSource | WindowSource:
        config = self.config
        if config.source_kind == "promql" and config.promql_url:
            return PromQLSource(config.promql_url, on_error=self._source_error)
        if config.source_kind == "inprocess":
            from prometheus_client import REGISTRY

            return InProcessSource(REGISTRY, on_error=self._source_error)
        return ScrapeSource(config.targets, on_error=self._source_error)

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

    def _build_quota(self, injected: Any) -> Any:
        """Cloud Monitoring quota polling, when projects are configured (or a poller is injected by tests)."""
        config = self.config
        if injected is None and not config.quota_projects:
            return None
        from monitor.quota import DailyCounterBaseline, QuotaCollector, QuotaRuleEngine, build_poller
        from monitor.quota.rules import quota_rules_from_mapping

        self._quota_baseline = DailyCounterBaseline()
        poller = injected or build_poller(
            config.quota_projects,
            services=config.quota_services,
            key_file=config.quota_key_file,
            timeout_s=config.quota_timeout_s,
            stale_after_s=3 * config.quota_interval_s,
            shim_counts=self._quota_baseline.since_reset,
        )
        self.registry.register(QuotaCollector(poller))
        self._quota_rules = QuotaRuleEngine(quota_rules_from_mapping(config.quota_rules))
        return poller

    def poll_quota(self) -> None:
        """The quota job: poll Cloud Monitoring, evaluate the quota rules on fresh readings, notify."""
        if self.quota is None:
            return
        from monitor.quota import quota_notification

        result = self.quota.poll()  # network I/O outside the daemon lock; never raises
        if not result.fresh:
            return
        with self._lock:
            for transition in self._quota_rules.evaluate(self._monotonic(), self.quota.snapshot.fresh_readings):
                _log.warning("nbmon.quota.transition", rule=transition.rule, reason=transition.reason)
                notify = self.config.notify
                links = {k: v for k, v in (("dashboard", notify.dashboard_url), ("runbook", notify.runbook_url)) if v}
                note = quota_notification(transition, at=self._wall(), environment=notify.environment, links=links)
                if note is not None and self.dispatcher is not None:
                    self.dispatcher.submit(note, notify.channels_for(transition.rule, transition.severity.value))

    def _notify(self, transition: Transition) -> None:
        """Queue what the people on call must know; never blocks the evaluation (an insert into the outbox)."""
        rule = self._rules.get(transition.rule)
        if self.dispatcher is None or rule is None or Action.NOTIFY not in rule.actions:
            return
        notify = self.config.notify
        links = {k: v for k, v in (("dashboard", notify.dashboard_url), ("runbook", notify.runbook_url)) if v}
        event = notify_events.event_for(transition, rule.name in self._flag_rules)
        if event is None:
            return
        # The episode's start is kept from its FIRING, so the RESOLVED message says "since" too.
        if event is notify_events.Event.FIRING:
            since: datetime | None = self._episodes.setdefault(rule.name, self._wall())
        else:
            since = self._episodes.pop(rule.name, None)
        notification = notify_events.build(
            transition,
            rule,
            flag_rule=rule.name in self._flag_rules,
            model=self.models.primary,
            environment=notify.environment,
            at=self._wall(),
            since=since,
            links=links,
        )
        if notification is not None:
            self.dispatcher.submit(notification, notify.channels_for(rule.name, rule.severity.value))

    def _source_error(self, target: str, reason: str) -> None:
        # Labelled by source name, never by target: a target URL may carry credentials.
        self.metrics.source_errors.labels(self.source_name, reason).inc()

    @property
    def source_name(self) -> str:
        return str(getattr(getattr(self, "source", None), "name", self.config.source_kind))

    def _restore(self) -> None:
        """After a restart: the rules resume in the state the persisted flag says (no transition emitted)."""
        state = self.store.state
        if state.degraded and state.rule == "alertmanager":
            self._am_restored = True  # held until Alertmanager reports the alert resolved
            return
        if not state.degraded or state.rule not in self._flag_rules:
            return
        elapsed = max((self._wall() - state.since).total_seconds(), 0.0)
        self.evaluator.restore(state.rule, State.FIRING, since=self._monotonic() - elapsed)
        _log.info("nbmon.state.restored", rule=state.rule, degraded=True, since=state.since.isoformat())

    # --- jobs ---------------------------------------------------------------------------------------------

    def read_source(self) -> None:
        if self._counter is None:
            return  # a window source answers at evaluation time
        reading = self._counter.read()  # network I/O outside the lock: a slow target blocks nobody else
        reading = dataclasses.replace(reading, values=self._bound(reading.values))
        if reading.ok:
            with self._lock:
                self.window.add(reading)
                self._last_ok_read = self._monotonic()
                if self.quota is not None:
                    # Refused calls are not in Cloud Monitoring's net usage: leave them out of the comparison.
                    totals: dict[str, float] = {}
                    for series, value in reading.values.items():
                        if series.error_class not in ("rate_limited", "quota_exhausted"):
                            totals[series.model] = totals.get(series.model, 0.0) + value
                    self._quota_baseline.observe(totals, self._wall())
            self.metrics.source_last_success.labels(self.source_name).set(time.time())

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
        fetched = self._fetch_window_counts()  # PromQL queries, outside the lock
        with self._lock:
            now = self._monotonic()
            counts = (
                fetched if fetched is not None else {w: self._window_counts(w, now) for w in self.evaluator.windows}
            )
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

    def _window_counts(self, window_s: float, now: float) -> Counts | None:
        # No readings in the window is "no data", not zero traffic: the rules then hold their state.
        return self.window.counts(window_s, now) if self.window.coverage(window_s, now) > 0 else None

    def _fetch_window_counts(self) -> dict[float, Counts | None] | None:
        if self._windowed is None:
            return None
        counts: dict[float, Counts | None] = {}
        for window_s in self.evaluator.windows:
            result, error = self._windowed.counts(window_s)
            counts[window_s] = None if error is not None or result is None else self._bound(result)
            if error is None:
                self._last_ok_read = self._monotonic()
                self.metrics.source_last_success.labels(self.source_name).set(time.time())
        return counts

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
        self._notify(transition)

    def _alertmanager_degraded(self) -> bool:
        """Alertmanager holds the flag while a watched alert fires, and for the recovery hold after the last
        one resolved (the same hysteresis as the built-in rule); after a restart, until it says otherwise."""
        if self._alerts.degraded or self._am_restored:
            return True
        if self._am_resolved_at is None:
            return False
        rule = self._rules.get("degraded-mode")
        hold = rule.recovery_hold_s if rule is not None else 0.0
        return self._monotonic() - self._am_resolved_at < hold

    def _sync_flag(self, source: str, reason: str, figures: dict[str, Any]) -> None:
        """The flag is on while ANY holder wants it: a flag rule (firing or recovering) or Alertmanager."""
        rules_hold = self.evaluator.degraded
        desired = rules_hold or self._alertmanager_degraded()
        if desired == self.store.state.degraded:
            return
        if desired and not rules_hold:
            source = "alertmanager"
        try:
            self.store.apply_transition(desired, source, reason, figures)
        except FlagStatePersistError as error:
            # In force in memory, and served; every tick retries the save. Never lose the decision.
            self.persistence.failed("state", self.config.state_path, error.__cause__ or error)
        self.metrics.transitions.labels("degraded" if desired else "normal").inc()

    def _retry_saves(self) -> None:
        """A state that could not be saved is saved again on every tick until the disk takes it."""
        if not self.store.dirty:
            return
        try:
            self.store.flush()
        except FlagStatePersistError as error:
            self.persistence.failed("state", self.config.state_path, error.__cause__ or error)
            return
        self.persistence.ok("state")

    def _publish(self, counts: dict[float, Counts | None] | None = None) -> None:
        """Gauges and the flagd file from the current state: one place, so they never disagree."""
        decision = self.store.effective()
        self.metrics.degraded_mode.set(1 if decision.value else 0)
        self.metrics.override.set(1 if decision.source == "override" else 0)
        for name, status in self.evaluator.statuses().items():
            for state in RULE_STATES:
                self.metrics.rule_state.labels(name, state).set(1 if status.state.value == state else 0)
            self.metrics.rule_insufficient_data.labels(name).set(1 if status.insufficient_data else 0)
        for window_s, window_counts in (counts or {}).items():
            self._publish_ratios(window_s, window_counts or {})
        if self.flagd is not None:
            try:
                self.flagd.write(decision, self.models)  # skipped when the file holds it: a failure retries next tick
            except OSError as error:
                self.persistence.failed("flagd", self.config.flagd_path, error)
            else:
                self.persistence.ok("flagd")

    def _publish_ratios(self, window_s: float, counts: Counts) -> None:
        label = window_label(window_s)
        ratios = self._ratios(counts)
        models = {model for model, _ in ratios}
        kept = set(ratios)
        for model, error_class in self._ratio_keys.get(label, set()) - kept:
            if model in models:  # a class that stopped happening on a model still in use drops to 0 ...
                self.metrics.error_ratio.labels(model, error_class, label).set(0)
                kept.add((model, error_class))
            else:  # ... and a model gone from the window is forgotten: label sets never pile up
                self.metrics.error_ratio.remove(model, error_class, label)
        for (model, error_class), ratio in ratios.items():
            self.metrics.error_ratio.labels(model, error_class, label).set(ratio)
        self._ratio_keys[label] = kept

    def _bound(self, counts: Counts) -> Counts:
        """Label values as the shim bounds them: the configured and catalog models plus a few more, known codes
        and classes; the rest is `other` (summed). A source with churning labels cannot grow memory or /metrics."""
        bounded: dict[Series, float] = {}
        for series, value in counts.items():
            code = series.code if series.code == "none" or (len(series.code) == 3 and series.code.isdigit()) else OTHER
            cls = series.error_class if series.error_class in _ERROR_CLASSES else OTHER
            key = Series(self._model_label(series.model), code, cls)
            bounded[key] = bounded.get(key, 0.0) + value
        return bounded

    @staticmethod
    def _ratios(counts: Counts) -> dict[tuple[str, str], float]:
        totals: dict[str, float] = {}
        for series, value in counts.items():
            totals[series.model] = totals.get(series.model, 0.0) + value
        by_class: dict[tuple[str, str], float] = {}
        for series, value in counts.items():
            key = (series.model, series.error_class)
            by_class[key] = by_class.get(key, 0.0) + value
        return {key: value / totals[key[0]] for key, value in by_class.items() if totals[key[0]] > 0}

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
        scheduler = BackgroundScheduler(timezone="UTC")
        first = datetime.now(UTC)
        options: dict[str, Any] = {"max_instances": 1, "coalesce": True, "next_run_time": first}
        scheduler.add_job(
            self._job("read", self.read_source), "interval", seconds=self.config.source_interval_s, **options
        )
        scheduler.add_job(
            self._job("evaluate", self.evaluate_tick), "interval", seconds=self.config.evaluation_interval_s, **options
        )
        if self.quota is not None:
            scheduler.add_job(
                self._job("quota", self.poll_quota), "interval", seconds=self.config.quota_interval_s, **options
            )
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
        close = getattr(self.source, "close", None)
        if callable(close):
            close()  # aborts a scrape or query in flight
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.dispatcher is not None:
            self.dispatcher.stop(timeout=1.5)  # pending notifications stay in the outbox for the next start
        if self.quota is not None:
            self.quota.close()
        _log.info("nbmon.daemon.stopped", state_saved=saved)
        return saved

    @property
    def url(self) -> str:
        return self._server.url if self._server is not None else ""

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
        if self.quota is None:
            return []
        return [f"quota: {self.quota.readiness().detail}"]

    def state(self) -> dict[str, Any]:
        with self._lock:
            return self._state_unlocked()

    def rule_statuses(self) -> dict[str, RuleStatus]:
        """Every rule's status from one evaluation: read under the lock the evaluation tick holds."""
        with self._lock:
            return self.evaluator.statuses()

    def _state_unlocked(self) -> dict[str, Any]:
        shim = self.config.shim
        statuses = {
            name: {
                "state": status.state.value,
                "degraded": status.degraded,
                "insufficient_data": status.insufficient_data,
                "no_data": status.no_data,
                "ratio": status.ratio,
                "numerator": status.numerator,
                "denominator": status.denominator,
            }
            for name, status in self.evaluator.statuses().items()
        }
        return {
            "effective": decision_to_dict(self.store.effective()),
            "rules": statuses,
            "models": {
                "primary": self.models.primary,
                "fallback": self.models.fallback,
                "configured": {"primary": shim.configured_primary, "fallback": shim.configured_fallback},
                "notes": [f"{note.key}: {note.message}" for note in shim.lifecycle_notes()],
            },
            "alertmanager": {"firing": self._alerts.names(), "holds_flag": self._alertmanager_degraded()},
            "quota": None if self.quota is None else self.quota.readiness().detail,
            "transitions": [
                {
                    "rule": t.rule,
                    "from": t.from_state.value,
                    "to": t.to_state.value,
                    "ratio": t.ratio,
                    "numerator": t.numerator,
                    "denominator": t.denominator,
                    "reason": t.reason,
                    "seconds_ago": round(self._monotonic() - t.at, 1),
                }
                for t in list(self.evaluator.history)[-50:]
            ],
            "state": self.store.snapshot(),
        }

    def set_override(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return self._set_override_unlocked(request)

    def _set_override_unlocked(self, request: dict[str, Any]) -> dict[str, Any]:
        """{"value": bool, "reason": str, "expires_in": "30m" | seconds} or {"expires_at": ISO 8601}."""
        value, reason = request.get("value"), request.get("reason")
        if not isinstance(value, bool):
            raise ValueError("value: must be true (force degraded) or false (force normal)")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: required, so the next person on call knows why")
        unknown = set(request) - {"value", "reason", "expires_in", "expires_at", "set_by"}
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
        now = self._wall()
        if "expires_at" in request:
            try:
                expires = datetime.fromisoformat(str(request["expires_at"]))
            except ValueError:
                raise ValueError("expires_at: must be an ISO 8601 date-time with a timezone") from None
            if expires.tzinfo is None:
                raise ValueError("expires_at: must carry a timezone (e.g. 2026-11-27T18:00:00Z)")
        elif "expires_in" in request:
            try:
                seconds = positive_seconds(request["expires_in"], "expires_in")
            except ValueError as exc:
                raise ValueError(str(exc)) from None
            try:
                expires = datetime.fromtimestamp(now.timestamp() + seconds, UTC)
            except (OverflowError, OSError, ValueError):
                raise ValueError("expires_in: too far in the future") from None
        else:
            raise ValueError("expires_in or expires_at: an override must expire (e.g. expires_in: 30m)")
        if expires <= now:
            raise ValueError("the expiry is in the past")
        if (expires - now).total_seconds() > MAX_OVERRIDE_S:
            raise ValueError(
                "the expiry is more than 7 days ahead: an override is a stopgap (change the rules instead)"
            )
        # Reasons are served without credentials (/v1/state, OFREP metadata): secret shapes never get that far.
        set_by = redact_text(str(request.get("set_by") or "admin-api"))[:64]
        reason = redact_text(reason.strip())[:500]
        persisted = self._saving("state", lambda: self.store.set_override(value, reason, expires, set_by=set_by))
        _log.warning("nbmon.override.set", value=value, reason=reason, expires_at=expires.isoformat(), set_by=set_by)
        self._publish()
        return self._answer(persisted)

    def clear_override(self) -> dict[str, Any]:
        with self._lock:
            return self._clear_override_unlocked()

    def _clear_override_unlocked(self) -> dict[str, Any]:
        cleared = False

        def clear() -> None:
            nonlocal cleared
            cleared = self.store.clear_override()

        persisted = self._saving("state", clear)
        if cleared or not persisted:
            _log.warning("nbmon.override.cleared")
        self._publish()
        return self._answer(persisted)

    def _saving(self, store: str, change: Callable[[], object]) -> bool:
        """Apply a change to the flag state; False when it is in force but could not be saved."""
        try:
            change()
        except FlagStatePersistError as error:
            self.persistence.failed(store, self.config.state_path, error.__cause__ or error)
            return False
        return True

    def _answer(self, persisted: bool) -> dict[str, Any]:
        """The admin API's answer says what happened: in force, and whether it will survive a restart."""
        answer = {**self._state_unlocked(), "persisted": persisted}
        if not persisted:
            answer["warning"] = (
                "in force now, but the state file could not be saved: a restart would lose it. nbmon retries the save "
                "on every evaluation; see /readyz and nbmon_persistence_ok"
            )
        return answer

    def alertmanager(self, payload: Any) -> dict[str, Any]:
        with self._lock:
            return self._alertmanager_unlocked(payload)

    def _alertmanager_unlocked(self, payload: Any) -> dict[str, Any]:
        """Alertmanager's webhook: a watched alert firing sets degraded mode; the last one resolving releases
        Alertmanager's hold after the recovery hold. The rules keep their own hold on the flag."""
        updates = parse_payload(payload, self.config.alertmanager_alerts)  # PayloadError: 400, nothing changes
        was_firing = self._alerts.degraded or self._am_restored
        self._alerts.apply(updates)
        if updates:
            if self._alerts.degraded:
                self._am_resolved_at, self._am_restored = None, False
            elif was_firing and any(not u.firing for u in updates):
                self._am_resolved_at, self._am_restored = self._monotonic(), False
        names = ", ".join(self._alerts.names() or sorted({u.name for u in updates})) or "none"
        state = "firing" if self._alerts.degraded else "resolved"
        self._sync_flag("alertmanager", f"Alertmanager: {names} {state}", {})
        self._publish()
        return {
            "accepted": len(updates),
            "firing": self._alerts.names(),
            "effective": decision_to_dict(self.store.effective()),
        }
